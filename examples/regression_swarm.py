"""A small swarm that records its run, with a regression injected halfway: then analyse it.

    python examples/regression_swarm.py run.jsonl
    agentmon report --from run.jsonl --html report.html --markdown report.md

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set it also exports (to ``agentmon serve`` or a Collector),
so the same report can come from ``--from http://127.0.0.1:4318`` or ``--prometheus URL``.

Three kinds of agents work for a few seconds: two researchers (web_search twice, then a small
model; one task in ten fails), a writer (a large model, then write_file) and a reviewer
(db_query, then a small model). After the baseline phase the ``db_query`` tool gets three times
slower: the injected regression the report must find. Everything is recorded in-process with
``RecordingSpanProcessor`` (spans) and an alert notifier (alert transitions) into one JSON Lines
file; without an endpoint nothing is exported.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import otel_agentmon as agentmon

#: Seconds per phase (default); the regression phase starts after the baseline.
PHASE_S = 1.5
#: db_query latency in the baseline and after the injected regression.
DB_QUERY_S = {"baseline": 0.010, "regressed": 0.030}
BATCH = 4  # tasks per agent invocation (one trace each)


class Clock:
    """Which phase the run is in."""

    def __init__(self, phase_s: float) -> None:
        self.start = time.monotonic()
        self.phase_s = phase_s

    def phase(self) -> str | None:
        elapsed = time.monotonic() - self.start
        if elapsed < self.phase_s:
            return "baseline"
        return "regressed" if elapsed < 2 * self.phase_s else None


def call_llm(model: str, seconds: float, prompt_tokens: int) -> None:
    with agentmon.llm(model, provider="openai") as call:
        time.sleep(seconds)
        call.record_usage(input_tokens=prompt_tokens, output_tokens=prompt_tokens // 4, response_model=model)


class ToolError(RuntimeError):
    """A tool failed (recorded on the tool's and the task's spans; the agent carries on)."""


@agentmon.tool("web_search")
def web_search(query: str, fail: bool = False) -> str:
    time.sleep(0.006)
    if fail:
        raise ToolError(f"search backend timed out for {query!r}")
    return f"results for {query}"


@agentmon.tool("write_file")
def write_file(text: str) -> int:
    time.sleep(0.004)
    return len(text)


def db_query(phase: str) -> None:
    with agentmon.tool("db_query"):
        time.sleep(DB_QUERY_S[phase])


def research(n: int, phase: str) -> None:
    with agentmon.task("research", task_id=f"r{n}"):
        web_search(f"topic {n}")
        web_search(f"topic {n} details", fail=n % 10 == 9)  # one research task in ten fails, in both phases
        call_llm("gpt-4o-mini", 0.008, 400)


def write(n: int, phase: str) -> None:
    with agentmon.task("write", task_id=f"w{n}"):
        call_llm("gpt-4o", 0.045, 1200)
        write_file(f"draft {n}")


def review(n: int, phase: str) -> None:
    with agentmon.task("review", task_id=f"v{n}"):
        db_query(phase)
        call_llm("gpt-4o-mini", 0.004, 300)


def run_agent(name: str, work: object, clock: Clock, idle_s: float) -> None:
    n = 0
    while (phase := clock.phase()) is not None:
        with agentmon.agent(name):  # one invocation: a batch of tasks, waiting for work between them
            for _ in range(BATCH):
                phase = clock.phase()
                if phase is None:
                    break
                try:
                    work(n, phase)  # type: ignore[operator]
                except ToolError:
                    pass
                n += 1
                time.sleep(idle_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("recording", help="JSON Lines file to write (e.g. run.jsonl)")
    parser.add_argument("--phase-seconds", type=float, default=PHASE_S, help="length of each phase")
    args = parser.parse_args()
    exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    options = {} if exporting else {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
    recorder = agentmon.RecordingSpanProcessor(args.recording)

    slow_reviews = agentmon.AlertRule(name="ReviewerSlow", signal="latency_p95", op=">", threshold=0.025,
                                      window=0.5, agent="reviewer", severity="warning",
                                      annotations={"summary": "{agent} p95 {value}s > {threshold}s"})
    monitor = agentmon.configure(service_name="regression-swarm", system_metrics="off", health_interval=0.1,
                                 alert_rules=[slow_reviews],
                                 notifiers=[agentmon.CallbackNotifier(recorder.record_alert)], **options)
    provider = monitor.tracer_provider
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        raise SystemExit("otel_agentmon is disabled (OTEL_SDK_DISABLED): nothing to record")
    add(recorder)
    clock = Clock(args.phase_seconds)
    agents = [("researcher", research, 0.004), ("researcher", research, 0.004), ("writer", write, 0.01),
              ("reviewer", review, 0.002)]
    threads = [threading.Thread(target=agentmon.with_context(run_agent), args=(name, fn, clock, idle),
                                name=f"agent-{name}-{i}") for i, (name, fn, idle) in enumerate(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monitor.force_flush()
    monitor.shutdown()
    recorder.shutdown()
    print(f"recorded {recorder.writer.written} lines to {args.recording} "
          f"({recorder.dropped} dropped); now run: agentmon report --from {args.recording}")


if __name__ == "__main__":
    main()
