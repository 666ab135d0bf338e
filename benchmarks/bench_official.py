"""Overhead per framework run: no framework instrumentation vs ours vs the official OpenTelemetry
GenAI instrumentation (opentelemetry-instrumentation-genai-langchain / -openai-agents 1.3b0,
-smolagents 1.2b0), on the same offline scripted agent: one agent, one tool call, two model calls.

Run (from the repo root)::

    python benchmarks/bench_official.py --out benchmarks/results/bench_official.json   # ~3 min
    python benchmarks/bench_official.py --fast                                        # a quick look

Every (framework, variant) pair runs in a fresh interpreter (instrumentation patches process-wide
state), ``--rounds`` times, the pairs shuffled within each round so background load falls on all
variants alike. Each child calls ``agentmon.configure()`` (exporters off, so what is measured is the
instrumentation plus our span processor and metric derivation, not the network), warms up, then
times each run on the calling thread (``perf_counter``) and the whole process's CPU over all runs
and a final flush (``process_time``: includes our derivation thread). Reported: the median of the
per-run times with the 25th-75th percentile range, pooled over the rounds, and the median over the
rounds of CPU per run.

The variants do not make the same spans (docs/frameworks.md, "Official GenAI instrumentations vs
ours"): ours makes agent, model-call and tool spans for all three; the official ones no model-call
span for the OpenAI Agents SDK (it leaves those to the OpenAI client's instrumentation) nor for a
smolagents model of your own, and no tool span for smolagents.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMEWORKS = ("langgraph", "openai_agents", "smolagents")
VARIANTS = ("none", "ours", "official")
INSTRUMENTORS = {
    ("langgraph", "ours"): "otel_agentmon.instrumentation.langgraph:LangGraphInstrumentor",
    ("langgraph", "official"): "opentelemetry.instrumentation.genai.langchain:LangChainInstrumentor",
    ("openai_agents", "ours"): "otel_agentmon.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
    ("openai_agents", "official"): "opentelemetry.instrumentation.genai.openai_agents:OpenAIAgentsInstrumentor",
    ("smolagents", "ours"): "otel_agentmon.instrumentation.smolagents:SmolagentsInstrumentor",
    ("smolagents", "official"): "opentelemetry.instrumentation.genai.smolagents:SmolagentsInstrumentor",
}


# --- the scripted agents (each returns a function that does one run) ----------------------------------


def langgraph_run() -> Callable[[], Any]:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    class Model(BaseChatModel):
        model_name: str = "scripted"

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
            if isinstance(messages[-1], ToolMessage):
                msg = AIMessage(content="It is sunny.", usage_metadata={"input_tokens": 20, "output_tokens": 7,
                                                                        "total_tokens": 27})
            else:
                msg = AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}],
                                usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15})
            return ChatResult(generations=[ChatGeneration(message=msg)])

        def bind_tools(self, tools: Any, **kw: Any) -> Model:
            return self

    @tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"sunny in {city}"

    model = Model()
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    app = graph.compile(name="weather")
    return lambda: app.invoke({"messages": [HumanMessage("Weather in Paris?")]})


def openai_agents_run() -> Callable[[], Any]:
    from agents import Agent, Runner, function_tool, set_trace_processors
    from agents.testing import ScriptedModel, assistant_message, function_call

    set_trace_processors([])  # offline: no exporter to the OpenAI backend (instrumentors add theirs after)

    @function_tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"sunny in {city}"

    def run() -> Any:
        steps: list[Any] = [{"output": [function_call("get_weather", {"city": "Paris"}, call_id="c1")]},
                            {"output": [assistant_message("It is sunny.")]}]
        agent = Agent(name="weather", tools=[get_weather], model=ScriptedModel(steps, emit_traces=True))
        return asyncio.run(Runner.run(agent, "Weather in Paris?"))

    return run


def smolagents_run() -> Callable[[], Any]:
    from smolagents import ToolCallingAgent, tool
    from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole, Model
    from smolagents.monitoring import LogLevel, TokenUsage

    class Scripted(Model):  # type: ignore[misc]  # smolagents ships no type information
        def __init__(self) -> None:
            super().__init__(model_id="scripted")
            self.replies = [("get_weather", {"city": "Paris"}, (10, 5)), ("final_answer", {"answer": "sunny"}, (20, 7))]

        def generate(self, messages: Any, stop_sequences: Any = None, response_format: Any = None,
                     tools_to_call_from: Any = None, **kwargs: Any) -> ChatMessage:
            name, args, usage = self.replies.pop(0)
            return ChatMessage(role=MessageRole.ASSISTANT, content="", token_usage=TokenUsage(*usage), tool_calls=[
                ChatMessageToolCall(id="c1", type="function",
                                    function=ChatMessageToolCallFunction(name=name, arguments=args))])

    @tool  # type: ignore[untyped-decorator]  # smolagents ships no type information
    def get_weather(city: str) -> str:
        """Return the weather for a city.

        Args:
            city: the city name
        """
        return f"sunny in {city}"

    def run() -> Any:
        agent = ToolCallingAgent(tools=[get_weather], model=Scripted(), name="weather", max_steps=3,
                                 verbosity_level=LogLevel.OFF)
        return agent.run("Weather in Paris?")

    return run


BUILD = {"langgraph": langgraph_run, "openai_agents": openai_agents_run, "smolagents": smolagents_run}


def child(framework: str, variant: str, runs: int, warmup: int) -> dict[str, Any]:
    import importlib

    import otel_agentmon as agentmon

    monitor = agentmon.configure(service_name="bench-official", traces_exporter="none", metrics_exporter="none",
                                 logs_exporter="none", system_metrics="off", health=False)
    run = BUILD[framework]()
    if variant != "none":
        module, cls = INSTRUMENTORS[(framework, variant)].split(":")
        # skip_dep_check: the official LangChain package declares `langchain`, which LangGraph does not need
        getattr(importlib.import_module(module), cls)().instrument(skip_dep_check=True)
    for _ in range(warmup):
        run()
    monitor.force_flush(10)
    times = []
    cpu0 = time.process_time()
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    monitor.force_flush(10)
    cpu = (time.process_time() - cpu0) / runs
    monitor.shutdown(5)
    return {"framework": framework, "variant": variant, "times": times, "cpu_per_run": cpu}


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def report(results: list[dict[str, Any]]) -> None:
    print(f"{'framework':<14} {'variant':<9} {'median ms':>10} {'p25-p75 ms':>14} {'added ms':>9} {'CPU ms/run':>11}"
          f" {'(min-max)':>12} {'added CPU':>9}")
    for fw in FRAMEWORKS:
        base = base_cpu = None
        for variant in VARIANTS:
            mine = [r for r in results if r["framework"] == fw and r["variant"] == variant]
            times = [t * 1e3 for r in mine for t in r["times"]]
            median = statistics.median(times)
            base = median if variant == "none" else base
            cpus = [r["cpu_per_run"] * 1e3 for r in mine]
            cpu = statistics.median(cpus)
            base_cpu = cpu if variant == "none" else base_cpu
            added = "" if variant == "none" else f"{median - (base or 0):+.2f}"
            added_cpu = "" if variant == "none" else f"{cpu - (base_cpu or 0):+.2f}"
            print(f"{fw:<14} {variant:<9} {median:>10.2f} {quantile(times, .25):>6.2f}-{quantile(times, .75):<7.2f}"
                  f" {added:>9} {cpu:>11.2f} {min(cpus):>5.2f}-{max(cpus):<6.2f} {added_cpu:>9}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--fast", action="store_true", help="1 round of 60 runs")
    ap.add_argument("--out", help="write the raw results as JSON")
    ap.add_argument("--report", help="re-report a saved --out file")
    ap.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fast:
        args.rounds, args.runs, args.warmup = 1, 60, 10
    if args.report:
        with open(args.report) as fh:
            report(json.load(fh)["results"])
        return
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.runs, args.warmup)))
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
           "OTEL_SDK_DISABLED": "false"}
    env = {k: v for k, v in env.items() if not k.startswith("OTEL_") or k == "OTEL_SDK_DISABLED"}
    results: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        pairs = [(fw, v) for fw in FRAMEWORKS for v in VARIANTS]
        random.shuffle(pairs)
        for fw, variant in pairs:
            out = subprocess.run([sys.executable, __file__, "--child", fw, variant, "--runs", str(args.runs),
                                  "--warmup", str(args.warmup)], env=env, cwd=ROOT, capture_output=True, text=True,
                                 timeout=600, check=True)
            results.append({**json.loads(out.stdout.strip().splitlines()[-1]), "round": rnd})
        print(f"round {rnd + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    report(results)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"results": results, "load": os.getloadavg()}, fh)


if __name__ == "__main__":
    main()
