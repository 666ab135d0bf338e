"""Recorded runs: the JSON Lines format, the bounded writer and the in-process span recorder."""

from __future__ import annotations

import threading
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

import otel_agentmon as agentmon
from otel_agentmon._alerts.engine import AlertEvent, AlertRule
from otel_agentmon._records.recording import (
    AlertRecord,
    MetricSample,
    RecordingSpanProcessor,
    RecordingWriter,
    read_recording,
)
from otel_agentmon._records.records import SpanRecord
from otel_agentmon.testing import Capture


def _span(i: int) -> SpanRecord:
    return SpanRecord(trace_id=f"{i:032x}", span_id=f"{i:016x}", parent_id=None, name=f"task t{i}", kind="task",
                      start_ns=1_000 * i, end_ns=1_000 * i + 500, agent="a", task_type="research",
                      input_tokens=3, output_tokens=4, attributes={"k": "v"})


def test_round_trip_of_every_line_type(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    alert = AlertRecord(rule="HighErrorRate", state="firing", severity="critical", time_ns=5, agent="a",
                        value=0.5, summary="a fails", labels={"team": "x"})
    metric = MetricSample(name="process.cpu.utilization", value=0.25, time_ns=6, unit="1",
                          attributes={"cpu.mode": "user"})
    writer = RecordingWriter(path, max_bytes=1 << 20)
    assert writer.write_span(_span(1))
    assert writer.write_alert(alert)
    assert writer.write_metric(metric)
    writer.close()
    rec = read_recording(path)
    assert rec.spans == [_span(1)]
    assert rec.alerts == [alert]
    assert rec.metrics == [metric]
    assert rec.skipped == 0
    assert '"type":"alert"' in path.read_text()


def test_a_truncated_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = RecordingWriter(path)
    writer.write_span(_span(1))
    writer.write_span(_span(2))
    writer.close()
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # the process died mid-line
    rec = read_recording(path)
    assert [s.span_id for s in rec.spans] == [f"{1:016x}"]
    assert rec.skipped == 1


def test_writer_is_bounded_on_disk_and_keeps_one_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = RecordingWriter(path, max_bytes=4096)
    for i in range(1000):
        writer.write_span(_span(i))
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["run.jsonl", "run.jsonl.1"]
    assert path.stat().st_size <= 4096
    assert (tmp_path / "run.jsonl.1").stat().st_size <= 4096
    assert writer.rotations > 1
    rec = read_recording(path)
    # The newest spans survive, in order, and the old file is read first.
    ids = [int(s.span_id, 16) for s in rec.spans]
    assert ids == sorted(ids)
    assert ids[-1] == 999
    assert rec.skipped == 0


def test_oversized_line_and_writes_after_close_are_counted_not_raised(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "run.jsonl", max_bytes=1024)
    big = MetricSample(name="x", value=1.0, time_ns=1, attributes={"blob": "y" * 5000})
    assert not writer.write_metric(big)
    writer.close()
    assert not writer.write_span(_span(1))
    assert writer.dropped == 2


def test_unwritable_path_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    writer = RecordingWriter(blocker / "run.jsonl")  # a parent that is a file
    assert not writer.write_span(_span(1))
    assert writer.errors >= 1 and writer.dropped == 1
    writer.close()


def test_concurrent_writers_produce_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = RecordingWriter(path)

    def work(base: int) -> None:
        for i in range(200):
            writer.write_span(_span(base + i))

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    rec = read_recording(path)
    assert len(rec.spans) == 800 and rec.skipped == 0


def test_alert_record_from_engine_event() -> None:
    rule = AlertRule(name="AgentDown", signal="up", op="<", threshold=1, severity="critical",
                     annotations={"summary": "{agent} is down"})
    event = AlertEvent(rule, "writer", "firing", "pending", 0.0, 12.5, 10.0)
    rec = AlertRecord.from_event(event)
    assert rec is not None
    assert (rec.rule, rec.state, rec.agent, rec.summary, rec.time_ns) == (
        "AgentDown", "firing", "writer", "writer is down", 12_500_000_000)
    assert rec.labels["alertname"] == "AgentDown"
    assert AlertRecord.from_event(AlertEvent(rule, "writer", "pending", "inactive", 0.0, 1.0, 1.0)) is None


def test_span_processor_records_the_package_spans(agentmon_capture: Capture, tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    recorder = RecordingSpanProcessor(path)
    tp = agentmon_capture.monitor.tracer_provider
    assert isinstance(tp, TracerProvider)
    tp.add_span_processor(recorder)
    with agentmon.agent("researcher"), agentmon.task("research"), agentmon.tool("web_search"):
        pass
    assert recorder.force_flush()
    recorder.shutdown()
    rec = read_recording(path)
    kinds = sorted(s.kind for s in rec.spans)
    assert kinds == ["agent", "task", "tool"]
    (tool,) = [s for s in rec.spans if s.kind == "tool"]
    assert (tool.agent, tool.tool) == ("researcher", "web_search")
    assert recorder.dropped == 0


def test_span_processor_drops_and_counts_when_its_queue_is_full(tmp_path: Path) -> None:
    recorder = RecordingSpanProcessor(tmp_path / "run.jsonl", max_queue_size=1)
    provider = TracerProvider()
    provider.add_span_processor(recorder)
    tracer = provider.get_tracer("t")
    recorder.shutdown()  # stopped: every later span is dropped and counted
    for _ in range(5):
        with tracer.start_as_current_span("s"):
            pass
    assert recorder.dropped == 5
    provider.shutdown()


def _memory_of_writing(writer: RecordingWriter, spans: list[SpanRecord], rounds: int) -> tuple[int, int]:
    """(bytes still held after ``2 * rounds`` passes over ``spans``, peak bytes of the second half above its start).

    Both are traced after full collections: ``SpanRecord.to_json`` (``dataclasses.asdict``) leaves
    interpreter caches and garbage behind (~400 KB on CPython 3.11: the tuple free list fills with
    ``fields()`` tuples), bounded but only freed by ``gc.collect()``, and how much of it is pending
    depends on which tests ran before. The first half fills those caches; the peak is measured in the
    second, so it is what writing a line costs, not what the interpreter keeps for reuse.
    """
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            for s in spans:
                writer.write_span(s)
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            for s in spans:
                writer.write_span(s)
        peak = tracemalloc.get_traced_memory()[1]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, peak - start


def test_writer_memory_does_not_grow_with_what_it_wrote(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "run.jsonl", max_bytes=16 * 1024)
    spans = [_span(i) for i in range(200)]
    for s in spans:  # warm up (file buffers, json encoder caches)
        writer.write_span(s)
    retained, transient = _memory_of_writing(writer, spans, rounds=10)
    writer.close()
    assert writer.written == 4_200 and writer.rotations > 10
    # 4,000 lines of ~350 bytes: a writer that kept its lines (or their dicts) would hold > 1 MB.
    assert retained < 32 * 1024  # nothing retained per line
    assert transient < 256 * 1024  # nor buffered between rotations


def test_span_processor_queue_is_bounded_while_the_writer_is_stuck(tmp_path: Path) -> None:
    recorder = RecordingSpanProcessor(tmp_path / "run.jsonl", max_queue_size=10)
    provider = TracerProvider()
    provider.add_span_processor(recorder)
    tracer = provider.get_tracer("t")
    with recorder.writer._lock:  # the disk "hangs": the recorder thread blocks on its first write
        for _ in range(50):
            with tracer.start_as_current_span("s"):
                pass
        dropped = recorder.dropped
    # At most the queue (10) plus the one span being written were kept; the rest were counted.
    assert dropped >= 50 - 10 - 1
    assert recorder.force_flush()
    provider.shutdown()
    assert len(read_recording(tmp_path / "run.jsonl").spans) == 50 - dropped
