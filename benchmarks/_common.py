"""Shared pieces of the otel_agentmon benchmarks: the workloads, how each pipeline is built, and
the statistics used to report them.

Three pipelines do the same work for one agent invocation:

* ``Bare(processor="stock")``: hand-written OTel SDK code. TracerProvider + the SDK's
  ``BatchSpanProcessor`` + a no-op exporter; the span is ``start_as_current_span`` and the
  caller records the three metrics our pipeline derives for that span.
* ``Bare(processor="agentmon")``: the same hand-written code, but the TracerProvider's
  processor is the one ``configure()`` installs: ``AgentmonSpanProcessor`` (its ``Deriver`` runs,
  with no instruments, so it records no metric) in front of our ``BatchWorker`` with a no-op
  export. Only the decorator layer and where the metrics are recorded differ from ours.
* ``install_ours()``: the real ``otel_agentmon.configure()``, with the OTLP span and metric
  exporters replaced by no-ops (see there).

Both bare variants use a MeterProvider with the same Views, instruments and bucket advice as
ours (``_metrics.views`` / ``_metrics.Instruments``) and a periodic reader at the realtime
profile's interval, so the metric work is identical.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import otel_agentmon as agentmon
from otel_agentmon._export.exporters import DeadlineMetricExporter, SpanExport
from otel_agentmon._export.processor import AgentmonSpanProcessor
from otel_agentmon._export.worker import BatchWorker, Outcome
from otel_agentmon._metrics.derive import Deriver
from otel_agentmon._metrics.instruments import Instruments, views
from otel_agentmon._setup import providers as _providers
from otel_agentmon._setup.settings import (
    REALTIME_METRIC_INTERVAL_MS,
    REALTIME_SPAN_DELAY_MS,
    Settings,
)

# The defaults configure() uses (Settings: span queue 2048, batch 512, shutdown 3 s).
SPAN_QUEUE = 2048
SPAN_BATCH = 512
SHUTDOWN_TIMEOUT_S = 3.0

INTERNAL = SpanKind.INTERNAL


# --- no-op exporters ------------------------------------------------------------------------------
class NoopSpanExporter(SpanExporter):
    """Accepts everything, does nothing (after perf-scripts/perfcommon.py)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class NoopMetricExporter(MetricExporter):
    """Accepts every collection, does nothing (after perf-scripts/bench_metrics.py)."""

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def noop_span_export(batch: Sequence[ReadableSpan]) -> Outcome:
    return Outcome(True)


def noop_close() -> None:
    pass


# --- the pipelines --------------------------------------------------------------------------------
def metric_pipeline(endpoint: str | None = None) -> tuple[MeterProvider, Instruments]:
    """A MeterProvider configured like ours (Views, instruments, realtime interval); no-op export
    unless ``endpoint`` is given (then OTLP/HTTP)."""
    exporter: MetricExporter = NoopMetricExporter()
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=REALTIME_METRIC_INTERVAL_MS)
    mp = MeterProvider(metric_readers=[reader], views=views(2000))
    return mp, Instruments(mp.get_meter("otel_agentmon"), lambda: [], mp)  # our Views select our meter


def agentmon_processor(deriver: Deriver) -> tuple[AgentmonSpanProcessor, BatchWorker[ReadableSpan]]:
    """Our span processor in front of our BatchWorker with a no-op export, as configure() builds it."""
    worker: BatchWorker[ReadableSpan] = BatchWorker(
        "spans", noop_span_export, noop_close, max_queue_size=SPAN_QUEUE, max_batch_size=SPAN_BATCH,
        schedule_delay_s=REALTIME_SPAN_DELAY_MS / 1000.0)
    return AgentmonSpanProcessor(deriver, worker, SHUTDOWN_TIMEOUT_S), worker


ProcessorKind = Literal["stock", "agentmon"]


class Bare:
    """Hand-written OTel SDK code doing what one agent span of ours does.

    With ``endpoint`` (stock processor only) spans and metrics go over OTLP/HTTP instead, with
    the realtime profile's settings: 200 ms span batch delay, 500 ms metric interval.
    """

    def __init__(self, processor: ProcessorKind, endpoint: str | None = None) -> None:
        self.tp = TracerProvider(shutdown_on_exit=False)
        self.deriver: Deriver | None = None
        self.worker: BatchWorker[ReadableSpan] | None = None
        if endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
                                                          schedule_delay_millis=REALTIME_SPAN_DELAY_MS))
        elif processor == "stock":
            self.tp.add_span_processor(BatchSpanProcessor(NoopSpanExporter()))
        else:
            self.deriver = Deriver()  # no instruments: it records no metric (the caller does)
            proc, self.worker = agentmon_processor(self.deriver)
            self.tp.add_span_processor(proc)
        self.start = self.tp.get_tracer("bench").start_as_current_span
        self.mp, inst = metric_pipeline(endpoint)
        self.agent_duration = inst.agent_duration.record
        self.tool_calls = inst.tool_calls.record
        self.inference_calls = inst.inference_calls.record
        self.tool_duration = inst.tool_duration.record

    def flush(self) -> None:
        self.tp.force_flush()
        self.mp.force_flush()

    def drops(self) -> str:
        """What our processor lost, if it is in use and lost anything ("" otherwise)."""
        if self.worker is None or self.deriver is None:
            return ""
        dropped = self.worker.counts()[2]
        return f"spans_dropped={dropped} derivation_dropped={self.deriver.dropped}" if (
            dropped or self.deriver.dropped) else ""

    def shutdown(self) -> None:
        self.tp.shutdown()
        self.mp.shutdown()


def work(x: int) -> int:
    """The trivial body every span wraps."""
    return x + 1


def bare_agent(b: Bare, x: int) -> int:
    """``invoke_agent planner`` plus the duration, tool_calls and inference_calls records."""
    t0 = time.perf_counter()
    with b.start("invoke_agent planner", kind=INTERNAL,
                 attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}) as span:
        result = work(x)
    duration = time.perf_counter() - t0
    ctx = trace.set_span_in_context(span)  # exemplars link to the span, as ours do
    labels = {"gen_ai.agent.name": "planner"}
    b.agent_duration(duration, labels, ctx)
    b.tool_calls(0, labels, ctx)
    b.inference_calls(0, labels, ctx)
    return result


def bare_tool(b: Bare, x: int) -> int:
    """``execute_tool search`` inside an agent, plus the tool duration record."""
    t0 = time.perf_counter()
    with b.start("execute_tool search", kind=INTERNAL,
                 attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                             "gen_ai.tool.type": "function", "gen_ai.agent.name": "planner"}) as span:
        result = work(x)
    duration = time.perf_counter() - t0
    b.tool_duration(duration, {"gen_ai.tool.name": "search", "gen_ai.tool.type": "function",
                               "gen_ai.agent.name": "planner"}, trace.set_span_in_context(span))
    return result


def _noop_build_span_export(settings: Settings, *spool: object) -> SpanExport | None:  # spool: issue 15
    return noop_span_export, noop_close


def _noop_build_metric_exporter(settings: Settings, *spool: object) -> DeadlineMetricExporter | None:
    return DeadlineMetricExporter(NoopMetricExporter())


def install_ours(**options: Any) -> agentmon.Monitor:
    """``otel_agentmon.configure()`` with no-op exporters behind our real pipeline.

    The two exporter factories ``configure()`` calls are replaced, so everything else is the
    shipping code: TracerProvider, AgentmonSpanProcessor, Deriver and its metric instruments,
    BatchWorker (its export is a no-op returning success), MeterProvider with our Views and a
    periodic reader wrapped in DeadlineMetricExporter (inner export a no-op). Logs export and
    system metrics are off: no span produces either.
    """
    _providers.build_span_export = _noop_build_span_export  # type: ignore[attr-defined]
    _providers.build_metric_exporter = _noop_build_metric_exporter  # type: ignore[attr-defined]
    opts: dict[str, Any] = {"service_name": "bench", "logs_exporter": "none", "system_metrics": "off"}
    opts.update(options)
    return agentmon.configure(**opts)


# --- statistics -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile, ``0 <= q <= 100``."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(len(values), statistics.median(values), percentile(values, 25), percentile(values, 75),
                   min(values), max(values))


@dataclass(frozen=True)
class Ratio:
    """``num / den`` from two sets of values of the same run."""

    median: float  # ratio of the medians
    ci_low: float  # bootstrap 95% interval of the ratio of medians
    ci_high: float
    of_minimums: float  # ratio of the fastest values (least disturbed by noise)
    iqr_low: float  # q1(num) / q3(den): the ratio if num ran at its quartile-best and den at its worst
    iqr_high: float  # q3(num) / q1(den)


def ratio(num: Sequence[float], den: Sequence[float], resamples: int = 2000, seed: int = 1) -> Ratio:
    rng = random.Random(seed)
    boot: list[float] = []
    for _ in range(resamples):
        a = statistics.median(rng.choices(num, k=len(num)))
        b = statistics.median(rng.choices(den, k=len(den)))
        boot.append(a / b)
    sn, sd = Summary.of(num), Summary.of(den)
    return Ratio(sn.median / sd.median, percentile(boot, 2.5), percentile(boot, 97.5),
                 sn.minimum / sd.minimum, sn.q1 / sd.q3, sn.q3 / sd.q1)


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f}"


def paced(op: Callable[[int], object], rate: float, seconds: float, tick: float = 0.005) -> tuple[int, float]:
    """Call ``op`` ``rate`` times a second in bursts every ``tick`` s (after perf-scripts/throughput.py).

    Returns (calls made, elapsed seconds); the burst size carries fractions over between ticks.
    """
    per_tick = rate * tick
    owed = 0.0
    made = 0
    t0 = time.perf_counter()
    nxt = t0
    while True:
        if time.perf_counter() - t0 >= seconds:
            break
        owed += per_tick
        k = int(owed)
        owed -= k
        for _ in range(k):
            op(made)
            made += 1
        nxt += tick
        slack = nxt - time.perf_counter()
        if slack > 0:
            time.sleep(slack)
    return made, time.perf_counter() - t0

