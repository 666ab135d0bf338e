"""Recorded runs: JSON Lines of spans, alert transitions and metric samples.

One JSON object per line, told apart by ``"type"``:

* ``{"type": "span", ...}``: a ``SpanRecord`` (see ``_records``);
* ``{"type": "alert", "rule", "state", "severity", "labels", "agent", "value", "summary", "time_ns"}``;
* ``{"type": "metric", "name", "unit", "attributes", "time_ns", "value"}`` (process CPU, memory,
  network, gauges such as ``agentmon.agent.up``).

``RecordingWriter`` is bounded on disk: when the file would pass ``max_bytes`` it is renamed to
``<path>.1`` (replacing any older one) and a fresh file starts, so a recording never takes more
than about ``2 * max_bytes``; ``read_recording`` reads ``<path>.1`` first, then ``<path>``.
Nothing here raises into a caller: write failures are counted and logged once a minute.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Final, Literal

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .._alerts.engine import AlertEvent
from .._core.counting import count_value
from .._core.guard import after_fork_in_child, log_once, report_internal_error
from .records import SpanRecord, from_readable

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
AlertState = Literal["firing", "resolved"]


@dataclasses.dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert transition (``firing`` or ``resolved``)."""

    rule: str
    state: AlertState
    severity: str
    time_ns: int
    agent: str | None = None
    value: float | None = None
    summary: str = ""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"type": "alert", "rule": self.rule, "state": self.state, "severity": self.severity,
                "labels": dict(self.labels), "agent": self.agent, "value": self.value,
                "summary": self.summary, "time_ns": self.time_ns}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AlertRecord:
        labels = data.get("labels")
        value = data.get("value")
        agent = data.get("agent")
        return cls(rule=str(data["rule"]), state="resolved" if data.get("state") == "resolved" else "firing",
                   severity=str(data.get("severity", "")), time_ns=int(str(data["time_ns"])),
                   agent=agent if isinstance(agent, str) else None,
                   value=float(value) if isinstance(value, (int, float)) else None,
                   summary=str(data.get("summary", "")),
                   labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {})

    @classmethod
    def from_event(cls, event: AlertEvent) -> AlertRecord | None:
        """The record of an engine transition; ``None`` for pending/inactive ones (not recorded)."""
        if event.state not in ("firing", "resolved"):
            return None
        summary = event.rule.annotations.get("summary", "")
        return cls(rule=event.rule.name, state=event.state, severity=event.rule.severity,
                   time_ns=int(event.at * 1e9), agent=event.agent, value=event.value,
                   summary=event.render(summary) if summary else "", labels=event.labels)


@dataclasses.dataclass(frozen=True, slots=True)
class MetricSample:
    """One sample of a metric (a gauge value, or a counter's cumulative value)."""

    name: str
    value: float
    time_ns: int
    unit: str = ""
    attributes: Mapping[str, str | int | float | bool] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"type": "metric", "name": self.name, "unit": self.unit, "attributes": dict(self.attributes),
                "time_ns": self.time_ns, "value": self.value}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MetricSample:
        attrs = data.get("attributes")
        kept: dict[str, str | int | float | bool] = {}
        if isinstance(attrs, dict):
            for key, val in attrs.items():
                if isinstance(val, (str, int, float, bool)):
                    kept[str(key)] = val
        value = data["value"]
        return cls(name=str(data["name"]), value=float(value) if isinstance(value, (int, float)) else float("nan"),
                   time_ns=int(str(data["time_ns"])), unit=str(data.get("unit", "")), attributes=kept)


@dataclasses.dataclass
class Recording:
    """What a recording holds; ``skipped`` counts lines that could not be read (e.g. a cut last line)."""

    spans: list[SpanRecord] = dataclasses.field(default_factory=list[SpanRecord])
    alerts: list[AlertRecord] = dataclasses.field(default_factory=list[AlertRecord])
    metrics: list[MetricSample] = dataclasses.field(default_factory=list[MetricSample])
    skipped: int = 0


def parse_lines(lines: Iterable[str | bytes], into: Recording | None = None) -> Recording:
    """Parse JSON Lines into a ``Recording``; unreadable lines and unknown types are skipped."""
    rec = Recording() if into is None else into
    for raw in lines:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        text = text.strip()
        if not text:
            continue
        try:
            data = json.loads(text)
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "span":
                rec.spans.append(SpanRecord.from_json(data))
            elif kind == "alert":
                rec.alerts.append(AlertRecord.from_json(data))
            elif kind == "metric":
                rec.metrics.append(MetricSample.from_json(data))
            else:
                rec.skipped += 1
        except (ValueError, TypeError, KeyError):
            rec.skipped += 1
    return rec


def read_recording(path: str | os.PathLike[str], *, include_rotated: bool = True) -> Recording:
    """Read a recording (and, by default, its rotated ``<path>.1`` first). Raises ``OSError``
    only when ``path`` itself cannot be opened."""
    main = Path(path)
    rec = Recording()
    old = main.with_name(main.name + ".1")
    if include_rotated and old.is_file():
        with old.open("rb") as fh:
            parse_lines(fh, rec)
    with main.open("rb") as fh:
        parse_lines(fh, rec)
    return rec


class RecordingWriter:
    """Thread-safe, size-bounded JSON Lines writer (rotates to ``<path>.1``; at most one old file).

    A single line larger than ``max_bytes`` is dropped and counted (``dropped``). After ``close()``
    writes are dropped and counted. I/O errors are counted, logged once a minute, never raised.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max(1024, int(max_bytes))
        self._lock = threading.Lock()
        self._fh: IO[bytes] | None = None
        self._size = 0
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.rotations = 0
        self.errors = 0
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
            self._size = self._fh.tell()
        except OSError as exc:
            self._fh = None
            self.errors += 1
            log_once(logging.WARNING, f"recording:open:{self.path}", "cannot open recording %s: %s", self.path, exc)

    def write_span(self, record: SpanRecord) -> bool:
        return self.write_json(record.to_json())

    def write_alert(self, record: AlertRecord) -> bool:
        return self.write_json(record.to_json())

    def write_metric(self, sample: MetricSample) -> bool:
        return self.write_json(sample.to_json())

    def write_json(self, obj: Mapping[str, object]) -> bool:
        """Write one line; returns whether it was written."""
        try:
            line = (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        except (TypeError, ValueError):
            report_internal_error("RecordingWriter.write_json")
            with self._lock:
                self.dropped += 1
            return False
        with self._lock:
            if self._closed or len(line) > self.max_bytes:
                self.dropped += 1
                return False
            try:
                if self._size + len(line) > self.max_bytes:
                    self._rotate()
                if self._fh is None:
                    self.dropped += 1
                    return False
                self._fh.write(line)
                self._size += len(line)
                self.written += 1
                return True
            except OSError as exc:
                self.errors += 1
                self.dropped += 1
                log_once(logging.WARNING, f"recording:write:{self.path}", "cannot write recording %s: %s",
                         self.path, exc)
                return False

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        try:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self.rotations += 1
        except OSError:
            # Could not keep the old file: start over in place rather than grow past the bound.
            self.path.unlink(missing_ok=True)
        self._open()

    def flush(self) -> None:
        with self._lock:
            try:
                if self._fh is not None:
                    self._fh.flush()
            except OSError:
                self.errors += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            try:
                if self._fh is not None:
                    self._fh.close()
            except OSError:
                self.errors += 1
            self._fh = None

    @property
    def size(self) -> int:
        """Bytes in the current file."""
        return self._size


class RecordingSpanProcessor(SpanProcessor):
    """Records every ended span of a tracer provider to a JSON Lines file, off the hot path.

    ``on_end`` only appends to a bounded deque (a full queue drops and counts the span); a daemon
    thread converts spans to ``SpanRecord`` and writes them. In a forked child the processor stops
    recording (two processes must not append to one file); its spans count as dropped.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES,
                 max_queue_size: int = 8192) -> None:
        self.writer = RecordingWriter(path, max_bytes)
        self._max_queue = max(1, max_queue_size)
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._cond = threading.Condition()
        self._dropped = itertools.count()
        self._busy = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="agentmon-recorder", daemon=True)
        self._thread.start()
        after_fork_in_child(self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        self._stopped = True
        self._queue = collections.deque()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue
        if self._stopped or len(queue) >= self._max_queue:
            next(self._dropped)
            return
        queue.append(span)
        if len(queue) == 1:
            with self._cond:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait(0.5)
                if self._stopped and not self._queue:
                    self._cond.notify_all()
                    return
                self._busy = True
            self._drain()
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _drain(self) -> None:
        while True:
            try:
                span = self._queue.popleft()
            except IndexError:
                break
            try:
                self.writer.write_span(from_readable(span))
            except Exception:  # noqa: BLE001 - one odd span must not stop the recorder
                next(self._dropped)
                report_internal_error("RecordingSpanProcessor")
        self.writer.flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._cond:
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: not self._queue and not self._busy, timeout_millis / 1000.0)
        self.writer.flush()
        return done

    def shutdown(self) -> None:
        self.force_flush(5000)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(5.0)
        self.writer.close()

    def record_alert(self, event: AlertEvent) -> None:
        """Also record alert transitions: ``notifiers=[CallbackNotifier(recorder.record_alert)]``."""
        try:
            record = AlertRecord.from_event(event)
            if record is not None:
                self.writer.write_alert(record)
        except Exception:  # noqa: BLE001 - a notifier must not fail the alert dispatch
            report_internal_error("RecordingSpanProcessor.record_alert")

    @property
    def dropped(self) -> int:
        """Spans not recorded: queue full, after shutdown, in a forked child, or unwritable."""
        return count_value(self._dropped) + self.writer.dropped
