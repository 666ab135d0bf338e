"""What a framework integration adds per agent run: the framework alone vs instrumented.

Run (from the repo root, with the framework's extra installed)::

    python benchmarks/bench_frameworks.py llama_index
    python benchmarks/bench_frameworks.py crewai          # in a venv with '.[crewai]'

Each run is the example's agent (examples/frameworks/<name>.py: one agent, one tool, two model
turns on the scripted offline model), built and run afresh. Configurations, interleaved round by
round (in rotating order) so a busy machine slows all of them alike:

  bare       the framework alone (no tracer provider, nothing instrumented)
  official   (llama_index only) the official GenAI instrumentation alone, on our pipeline
  ours       otel_agentmon's instrumentor, on our pipeline (otel_agentmon.testing.capture():
             the real configure() with an in-memory span exporter)

Printed: the median wall time and process CPU time (all threads: the framework's, our
derivation and export threads) per run for each, and the difference to ``bare``. On a busy
machine the CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / "frameworks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def llama_index_run(ex: ModuleType) -> Callable[[], None]:
    from llama_index.core.agent.workflow import FunctionAgent

    def run() -> None:
        agent = FunctionAgent(name="weather", description="Reports the weather", tools=[ex.get_weather],
                              llm=ex.ScriptedLLM())
        assert asyncio.run(ex.ask(agent)) == "It is sunny in Paris."

    return run


def crewai_run(ex: ModuleType) -> Callable[[], None]:
    from crewai import Agent, Crew, Task

    def run() -> None:
        agent = Agent(role="weather", goal="Report the weather", backstory="Knows the weather.",
                      llm=ex.ScriptedLLM(model="scripted", provider="scripted"), tools=[ex.get_weather],
                      verbose=False, allow_delegation=False, max_iter=3)
        task = Task(description="What is the weather in Paris?", expected_output="One sentence.", agent=agent)
        assert Crew(agents=[agent], tasks=[task], verbose=False, name="weather-crew").kickoff().raw == \
            "It is sunny in Paris."

    return run


def _switches(framework: str, provider: Any) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    """Configuration -> (turn on, turn off)."""
    out: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {"bare": (lambda: None, lambda: None)}
    if framework == "llama_index":
        from opentelemetry.instrumentation.genai.llama_index import LlamaIndexInstrumentor as Official

        from otel_agentmon.instrumentation.llama_index import LlamaIndexInstrumentor

        out["official"] = (lambda: Official().instrument(tracer_provider=provider), lambda: Official().uninstrument())
        out["ours"] = (lambda: LlamaIndexInstrumentor().instrument(tracer_provider=provider),
                       lambda: LlamaIndexInstrumentor().uninstrument())
    else:
        from otel_agentmon.instrumentation.crewai import CrewAIInstrumentor

        out["ours"] = (lambda: CrewAIInstrumentor().instrument(tracer_provider=provider),
                       lambda: CrewAIInstrumentor().uninstrument())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("framework", choices=["llama_index", "crewai"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=4, help="runs per configuration per round")
    args = parser.parse_args()
    ex = _example(args.framework)
    run = llama_index_run(ex) if args.framework == "llama_index" else crewai_run(ex)

    from otel_agentmon.testing import capture

    cap, close = capture()
    switches = _switches(args.framework, cap.monitor.tracer_provider)
    times: dict[str, list[float]] = {name: [] for name in switches}
    cpu: dict[str, list[float]] = {name: [] for name in switches}
    for on, off in switches.values():  # warm-up: imports, caches, first-use files
        on()
        run()
        off()
    order = list(switches)
    for r in range(args.rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:  # rotated: no config always last
            on, off = switches[name]
            on()
            for _ in range(args.runs):
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
            off()
            cap.clear()
    close()
    scratch = getattr(ex, "_SCRATCH", None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    bare, bare_cpu = statistics.median(times["bare"]), statistics.median(cpu["bare"])
    for name, values in times.items():
        median, median_cpu = statistics.median(values), statistics.median(cpu[name])
        print(f"{args.framework:12} {name:9} wall {median * 1e3:7.2f} ms ({(median - bare) * 1e3:+6.2f})  "
              f"process CPU {median_cpu * 1e3:7.2f} ms ({(median_cpu - bare_cpu) * 1e3:+6.2f})  n={len(values)}")


if __name__ == "__main__":
    main()
