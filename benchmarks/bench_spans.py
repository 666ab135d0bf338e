"""pyperf: cost per operation of an agent span, ours against hand-written OTel code, in one run.

Run (from the repo root)::

    python benchmarks/bench_spans.py -o benchmarks/results/bench_spans.json \
        --summary benchmarks/results/bench_spans_ratios.json          # recorded run
    python benchmarks/bench_spans.py --fast                            # quick look
    python benchmarks/bench_spans.py --report FILE.json [--summary S.json]  # report on a saved run

Each benchmark times ``loops`` calls on the calling thread with ``time.perf_counter`` (wall
clock), like perf-scripts/bench_spans.py, whose structure this follows. The pipelines are
described in ``_common.py``. Background threads of the same process (our Deriver and
BatchWorker, the SDK's batch processor, the periodic metric reader) compete for the GIL, so
part of their work lands in these numbers, but not all of it: ``cpu_cost.py`` measures the whole
process. Ours derives the metrics on its Deriver thread; the bare variants record them on the
calling thread.

Benchmarks (one agent span = ``invoke_agent planner``, INTERNAL, 2 attributes, + 3 metric records):

  bare_call                 call of the trivial body (reference)
  api_noop_span             OTel API span with no SDK installed: the "disabled" floor of OTel
  ours_agent_disabled       @agentmon.agent with OTEL_SDK_DISABLED=true: our floor
  histogram_record_3attr    SDK Histogram.record, 3 attributes, one attribute set
  anchor_span_5attr_bsp     perf-anchors' reference span (5 attrs, BatchSpanProcessor, no-op)
  bare_agent_stock          (a) hand-written: stock BatchSpanProcessor + caller-thread metrics
  bare_agent_agentmon_proc  (a) hand-written: our processor + BatchWorker + caller-thread metrics
  ours_agent_decorator      (b) @agentmon.agent("planner") on the trivial body
  ours_agent_with           (c) with agentmon.agent("planner"): around the trivial body
  bare_tool_stock           (e) execute_tool span + duration record, stock BSP, inside an agent span
  bare_tool_agentmon_proc   (e) the same on our processor
  ours_tool_decorator       (d) @agentmon.tool("search") inside ``with agentmon.agent("planner")``
  *_drained                 the agent benchmark, with the TracerProvider's force_flush() inside the
                            timed region: a value ends when the pipeline has processed all its spans
                            (ours: every metric derived; bare: every span handed to the exporter)

In a tight loop our Deriver falls behind (it does the 3 metric records, ~25 µs a span) and works
off its backlog later, outside the timed loop; the ``_drained`` variants count that work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyperf  # type: ignore[import-untyped]
from _common import (
    INTERNAL,
    Bare,
    NoopMetricExporter,
    NoopSpanExporter,
    ProcessorKind,
    Ratio,
    Summary,
    bare_agent,
    bare_tool,
    fmt_us,
    install_ours,
    ratio,
    work,
)
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import otel_agentmon as agentmon

BenchFunc = Callable[[int], float]

# Ratios printed at the end: (numerator, denominator, what it shows).
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("ours_agent_decorator", "bare_agent_agentmon_proc", "agent @decorator vs hand-written, same processor"),
    ("ours_agent_decorator", "bare_agent_stock", "agent @decorator vs hand-written, stock BSP"),
    ("ours_agent_with", "bare_agent_agentmon_proc", "agent `with` vs hand-written, same processor"),
    ("ours_agent_with", "bare_agent_stock", "agent `with` vs hand-written, stock BSP"),
    ("ours_tool_decorator", "bare_tool_agentmon_proc", "tool @decorator vs hand-written, same processor"),
    ("ours_tool_decorator", "bare_tool_stock", "tool @decorator vs hand-written, stock BSP"),
    ("ours_agent_decorator_drained", "bare_agent_agentmon_proc_drained", "agent @decorator, drained, same processor"),
    ("ours_agent_decorator_drained", "bare_agent_stock_drained", "agent @decorator, drained, stock BSP"),
    ("ours_agent_disabled", "api_noop_span", "disabled decorator vs OTel API no-op span"),
    ("ours_agent_disabled", "bare_call", "disabled decorator vs the undecorated call"),
    ("bare_agent_stock", "anchor_span_5attr_bsp", "hand-written agent span vs perf-anchors reference"),
)
BAR = 1.25  # ours <= 1.25x the equivalent hand-written OTel code, same run

_built: dict[str, Any] = {}


def _bare(kind: ProcessorKind) -> Bare:
    key = f"bare:{kind}"
    if key not in _built:
        _built[key] = Bare(kind)
    b: Bare = _built[key]
    return b


def _ours() -> agentmon.Monitor:
    if "ours" not in _built:
        _built["ours"] = install_ours()
    m: agentmon.Monitor = _built["ours"]
    return m


_planner = agentmon.agent("planner")(work)
_search = agentmon.tool("search")(work)


# --- benchmarks -----------------------------------------------------------------------------------
def bench_bare_call(loops: int) -> float:
    f = work
    t0 = time.perf_counter()
    for i in range(loops):
        f(i)
    return time.perf_counter() - t0


def bench_api_noop_span(loops: int) -> float:
    start = trace.NoOpTracerProvider().get_tracer("bench").start_as_current_span
    f = work
    t0 = time.perf_counter()
    for i in range(loops):
        with start("invoke_agent planner", kind=INTERNAL,
                   attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}):
            f(i)
    return time.perf_counter() - t0


def bench_ours_agent_disabled(loops: int) -> float:
    os.environ["OTEL_SDK_DISABLED"] = "true"  # read by configure() (and the SDK providers)
    _ours()
    f = _planner
    t0 = time.perf_counter()
    for i in range(loops):
        f(i)
    return time.perf_counter() - t0


def bench_histogram_record(loops: int) -> float:
    if "hist" not in _built:
        reader = PeriodicExportingMetricReader(NoopMetricExporter(), export_interval_millis=3_600_000)
        meter = MeterProvider(metric_readers=[reader]).get_meter("bench")
        _built["hist"] = meter.create_histogram("gen_ai.execute_tool.duration", unit="s")
    rec = _built["hist"].record
    attrs = {"gen_ai.tool.name": "search", "gen_ai.tool.type": "function", "gen_ai.agent.name": "planner"}
    t0 = time.perf_counter()
    for _ in range(loops):
        rec(0.25, attrs)
    return time.perf_counter() - t0


def bench_anchor_span(loops: int) -> float:
    """perf-scripts/bench_spans.py ``sdk_span_batch_noop``, to relate this run to perf-anchors."""
    if "anchor" not in _built:
        tp = TracerProvider(shutdown_on_exit=False)
        tp.add_span_processor(BatchSpanProcessor(NoopSpanExporter()))
        _built["anchor"] = tp.get_tracer("bench").start_as_current_span
    start = _built["anchor"]
    f = work
    t0 = time.perf_counter()
    for i in range(loops):
        with start("agent.task", attributes={"agent.id": "agent-7", "agent.name": "planner", "agent.task.id": i,
                                             "agent.task.kind": "tool_call", "agent.step": 3}):
            f(i)
    return time.perf_counter() - t0


def make_bare_agent(kind: ProcessorKind, drained: bool = False) -> BenchFunc:
    def bench(loops: int) -> float:
        b = _bare(kind)
        t0 = time.perf_counter()
        for i in range(loops):
            bare_agent(b, i)
        if drained:
            b.tp.force_flush()
        return time.perf_counter() - t0

    return bench


def make_bare_tool(kind: ProcessorKind) -> BenchFunc:
    def bench(loops: int) -> float:
        b = _bare(kind)
        with b.start("invoke_agent planner", kind=INTERNAL,
                     attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}):
            t0 = time.perf_counter()
            for i in range(loops):
                bare_tool(b, i)
            dt = time.perf_counter() - t0
        return dt

    return bench


def bench_ours_agent_decorator(loops: int) -> float:
    _ours()
    f = _planner
    t0 = time.perf_counter()
    for i in range(loops):
        f(i)
    return time.perf_counter() - t0


def bench_ours_agent_decorator_drained(loops: int) -> float:
    tp = _ours().tracer_provider
    assert isinstance(tp, TracerProvider)
    f = _planner
    t0 = time.perf_counter()
    for i in range(loops):
        f(i)
    tp.force_flush()  # our processor: derive every pending span now, then flush the BatchWorker
    return time.perf_counter() - t0


def bench_ours_agent_with(loops: int) -> float:
    _ours()
    f = work
    op = agentmon.agent
    t0 = time.perf_counter()
    for i in range(loops):
        with op("planner"):
            f(i)
    return time.perf_counter() - t0


def bench_ours_tool_decorator(loops: int) -> float:
    _ours()
    f = _search
    with agentmon.agent("planner"):
        t0 = time.perf_counter()
        for i in range(loops):
            f(i)
        dt = time.perf_counter() - t0
    return dt


BENCHMARKS: tuple[tuple[str, BenchFunc], ...] = (
    ("bare_call", bench_bare_call),
    ("api_noop_span", bench_api_noop_span),
    ("ours_agent_disabled", bench_ours_agent_disabled),
    ("histogram_record_3attr", bench_histogram_record),
    ("anchor_span_5attr_bsp", bench_anchor_span),
    ("bare_agent_stock", make_bare_agent("stock")),
    ("bare_agent_agentmon_proc", make_bare_agent("agentmon")),
    ("ours_agent_decorator", bench_ours_agent_decorator),
    ("ours_agent_with", bench_ours_agent_with),
    ("bare_agent_stock_drained", make_bare_agent("stock", drained=True)),
    ("bare_agent_agentmon_proc_drained", make_bare_agent("agentmon", drained=True)),
    ("ours_agent_decorator_drained", bench_ours_agent_decorator_drained),
    ("bare_tool_stock", make_bare_tool("stock")),
    ("bare_tool_agentmon_proc", make_bare_tool("agentmon")),
    ("ours_tool_decorator", bench_ours_tool_decorator),
)


def _check_pipeline_at_exit() -> None:
    """In a worker: say on stderr if our pipeline dropped anything (the numbers would flatter us)."""
    for key, built in _built.items():
        lost = ""
        if isinstance(built, Bare):
            lost = built.drops()
        elif isinstance(built, agentmon.Monitor):
            built.force_flush(10.0)
            stats = built.stats()
            if stats.derivation_dropped or stats.spans_dropped_total:
                lost = f"spans_dropped={dict(stats.spans_dropped)} derivation_dropped={stats.derivation_dropped}"
        if lost:
            print(f"WARNING ({key}): {lost}", file=sys.stderr)


# --- report ---------------------------------------------------------------------------------------
def report(results: dict[str, list[float]]) -> dict[str, Any]:
    summaries = {name: Summary.of(values) for name, values in results.items()}
    print("\nper operation, µs: median [q1 - q3] (min / max), n values")
    for name, s in summaries.items():
        print(f"  {name:26} {fmt_us(s.median):>8} [{fmt_us(s.q1)} - {fmt_us(s.q3)}]"
              f" ({fmt_us(s.minimum)} / {fmt_us(s.maximum)}) n={s.n}")
    print(f"\nratios (same run): median  [bootstrap 95%]  [q1/q3 .. q3/q1]  min/min   bar <= {BAR}x")
    ratios: dict[str, Ratio] = {}
    for num, den, what in RATIOS:
        if num not in results or den not in results:
            continue
        r = ratio(results[num], results[den])
        ratios[f"{num}/{den}"] = r
        print(f"  {num} / {den}\n    {r.median:6.3f}x  [{r.ci_low:.3f} - {r.ci_high:.3f}]"
              f"  [{r.iqr_low:.3f} .. {r.iqr_high:.3f}]  {r.of_minimums:.3f}x   {what}")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join(sys.argv),
        "unit": "seconds per operation",
        "benchmarks": {n: vars(s) for n, s in summaries.items()},
        "ratios": {k: vars(r) for k, r in ratios.items()},
        "bar": BAR,
    }


def _worker_args(cmd: list[str], args: argparse.Namespace) -> None:
    if args.only:  # workers must register the same benchmarks to find theirs by index
        cmd.extend(("--only", args.only))


def _write(summary: dict[str, Any], path: str | None) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=1)


def report_file(path: str, summary_path: str | None) -> None:
    """Recompute the report from a pyperf JSON file (e.g. several rounds joined with --append)."""
    suite = pyperf.BenchmarkSuite.load(path)
    names = [name for name, _ in BENCHMARKS if name in suite.get_benchmark_names()]
    results = {name: list(suite.get_benchmark(name).get_values()) for name in names}
    _write(report(results), summary_path)


def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--report", default=None)
    pre.add_argument("--summary", default=None)
    known, _ = pre.parse_known_args()
    if known.report:
        report_file(known.report, known.summary)
        return
    runner = pyperf.Runner(add_cmdline_args=_worker_args)
    runner.argparser.add_argument("--summary", default=None, help="write medians, spreads and ratios here (JSON)")
    runner.argparser.add_argument("--only", default=None, help="comma-separated benchmark names")
    runner.argparser.add_argument("--report", default=None, help="only report on this pyperf JSON file")
    runner.metadata["description"] = "otel_agentmon agent span vs hand-written OTel code"
    args: argparse.Namespace = runner.parse_args()
    if args.worker:
        import atexit

        atexit.register(_check_pipeline_at_exit)
    only = set(args.only.split(",")) if args.only else None
    results: dict[str, list[float]] = {}
    for name, func in BENCHMARKS:
        if only is not None and name not in only:
            continue
        bench = runner.bench_time_func(name, func)
        if bench is not None:
            results[name] = list(bench.get_values())
    if args.worker or not results:
        return
    _write(report(results), args.summary)

if __name__ == "__main__":
    main()
