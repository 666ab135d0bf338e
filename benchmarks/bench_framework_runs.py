"""What a framework integration adds per agent run: the framework alone vs under our instrumentor.

Run (from the repo root; name one framework to run only that one)::

    python benchmarks/bench_framework_runs.py autogen agent_framework      # 12 rounds of 40 runs each

Each run is the framework's offline example (``examples/frameworks/<name>.py``): one agent, one
tool, two scripted model calls. Variants, interleaved round by round in one process so machine
load hits them alike:

  alone     the framework as installed (its own telemetry at its defaults, to the API's no-op
            global provider: what an application without any SDK pays)
  ours      our instrumentor, spans into ``otel_agentmon.testing.capture()`` (in-memory export;
            the metric derivation, tasks and health bookkeeping all run), drained after each run
            (the TracerProvider's ``force_flush()``: every span derived and exported)

Reported: per variant the median of the per-round medians of one run's process CPU time, and the
median added time per run (ours - alone), with the min/max of the per-round differences.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUNDS, RUNS = 12, 40


def _example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / "frameworks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def autogen() -> tuple[Callable[[], None], Any]:
    from autogen_agentchat.agents import AssistantAgent

    from otel_agentmon.instrumentation.autogen import AutoGenInstrumentor

    ex = _example("autogen")

    def run() -> None:
        agent = AssistantAgent("weather", model_client=ex.scripted_model(), tools=[ex.get_weather],
                               reflect_on_tool_use=True)
        asyncio.run(agent.run(task="What is the weather in Paris?"))

    return run, AutoGenInstrumentor()


def agent_framework() -> tuple[Callable[[], None], Any]:
    from agent_framework import Agent

    from otel_agentmon.instrumentation.agent_framework import AgentFrameworkInstrumentor

    ex = _example("agent_framework")

    def run() -> None:
        agent = Agent(client=ex.ScriptedChatClient(), name="weather", tools=[ex.get_weather])

        async def go() -> Any:
            return await agent.run("What is the weather in Paris?")

        asyncio.run(go())

    return run, AgentFrameworkInstrumentor()


FRAMEWORKS = {"autogen": autogen, "agent_framework": agent_framework}


def one_round(run: Callable[[], None], flush: Callable[[], Any] | None) -> float:
    """Median CPU time of the whole process (every thread: our derivation thread's work counts)
    per run; CPU, not wall time, so a busy machine's waits do not land in it."""
    times = []
    for _ in range(RUNS):
        start = time.process_time()
        run()
        if flush is not None:
            flush()
        times.append(time.process_time() - start)
    return statistics.median(times)


def bench(name: str) -> None:
    from otel_agentmon.testing import capture

    run, instrumentor = FRAMEWORKS[name]()
    for _ in range(5):
        run()  # warm-up: imports, first-call caches
    alone: list[float] = []
    ours: list[float] = []
    for _ in range(ROUNDS):
        alone.append(one_round(run, None))
        cap, close = capture()
        provider = cap.monitor.tracer_provider
        assert provider is not None
        instrumentor.instrument()

        def drain(provider: Any = provider, cap: Any = cap) -> None:
            provider.force_flush()  # every span processed: metrics derived, exported (in memory)
            cap.clear()

        try:
            ours.append(one_round(run, drain))
        finally:
            instrumentor.uninstrument()
            close()
    diffs = [o - a for o, a in zip(ours, alone, strict=True)]
    print(f"{name}: alone {statistics.median(alone) * 1e3:.2f} ms, ours {statistics.median(ours) * 1e3:.2f} ms, "
          f"added {statistics.median(diffs) * 1e3:+.2f} ms (rounds {min(diffs) * 1e3:+.2f} .. "
          f"{max(diffs) * 1e3:+.2f}) per run; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    for framework in sys.argv[1:] or list(FRAMEWORKS):
        bench(framework)
