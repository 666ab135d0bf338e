"""A small, deterministic run for the report's file-format tests: records itself in-process and
exports over OTLP to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a Collector with a file exporter).

    python tests/scripts/small_run.py run.jsonl [TASKS]

Two agents, TASKS (default 12) tasks each: ``planner`` calls ``lookup`` and ``gpt-4o-mini``; ``coder`` calls
``compile`` and ``gpt-4.1-nano`` (not in the price table: unpriced, never gpt-4.1's price), and
every fourth coder task fails. ``CoderSlow`` (p95 of coder's tasks > 15 ms) fires once.
"""

from __future__ import annotations

import sys
import time

import otel_agentmon as agentmon


def llm(model: str, seconds: float) -> None:
    with agentmon.llm(model, provider="openai") as call:
        time.sleep(seconds)
        call.record_usage(input_tokens=300, output_tokens=60, response_model=model)


def main() -> None:
    recorder = agentmon.RecordingSpanProcessor(sys.argv[1])
    rule = agentmon.AlertRule(name="CoderSlow", signal="latency_p95", op=">", threshold=0.015, window=5.0,
                              agent="coder", severity="warning", annotations={"summary": "{agent} p95 {value}s"})
    monitor = agentmon.configure(service_name="small-run", system_metrics="off", health_interval=0.05,
                                 alert_rules=[rule], notifiers=[agentmon.CallbackNotifier(recorder.record_alert)])
    provider = monitor.tracer_provider
    getattr(provider, "add_span_processor")(recorder)  # noqa: B009 - the SDK provider (not the API type) has it
    for n in range(int(sys.argv[2]) if len(sys.argv) > 2 else 12):
        with agentmon.agent("planner"), agentmon.task("plan", task_id=f"p{n}"):
            with agentmon.tool("lookup"):
                time.sleep(0.003)
            llm("gpt-4o-mini", 0.004)
        try:
            with agentmon.agent("coder"), agentmon.task("code", task_id=f"c{n}"):
                with agentmon.tool("compile"):
                    time.sleep(0.012)
                llm("gpt-4.1-nano", 0.006)
                if n % 4 == 3:
                    raise RuntimeError("tests failed")
        except RuntimeError:
            pass
    time.sleep(0.3)  # the health loop evaluates the rule
    monitor.force_flush()
    monitor.shutdown()
    recorder.shutdown()


if __name__ == "__main__":
    main()
