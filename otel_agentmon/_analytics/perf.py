"""Performance and efficiency: percentiles and rates per group, sliding windows, per-agent efficiency."""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Sequence

from .._records.records import SpanRecord
from .base import (
    Dimension,
    Evidence,
    Prices,
    Window,
    cost_usd,
    failed_traces,
    group,
    key_of,
    selector,
    slowest_traces,
)
from .critical import SpanTree
from .stats import percentile


@dataclasses.dataclass(frozen=True)
class KeyStats:
    """Latency, rate and errors of one group (an agent's tasks, a tool's calls ...) in a window."""

    dimension: Dimension
    key: str
    n: int
    errors: int
    rate_per_s: float  # completions per second of the window
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    mean_s: float | None
    total_s: float  # summed duration (a tool's total time, busy-ness of an agent's tasks)
    evidence: Evidence
    max_s: float | None = None  # the slowest one (a hung task shows here, not in the percentiles)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.n if self.n else 0.0


def key_stats(records: Iterable[SpanRecord], dimension: Dimension, window: Window) -> dict[str, KeyStats]:
    """Per group of ``dimension``: n, errors, rate and p50/p95/p99 of spans ending in ``window``."""
    out: dict[str, KeyStats] = {}
    seconds = window.seconds or 1.0
    for key, spans in group(records, dimension, window).items():
        durations = [s.duration_s for s in spans]
        errors = sum(1 for s in spans if s.error is not None)
        p50, p95, p99 = (percentile(durations, q) for q in (0.5, 0.95, 0.99))
        sel = selector(dimension, key)
        evidence = Evidence(
            query=f"latency percentiles, rate and errors of {dimension} {key!r} ({len(spans)} spans)",
            expression=f"quantile(0.5|0.95|0.99, duration_s{sel}); count{sel} / {seconds:.3g}s; "
                       f'count{sel[:-1]},error!=""}} / count{sel}',
            window=window, trace_ids=slowest_traces(spans), n=len(spans),
            numbers={"p50_s": p50 or 0.0, "p95_s": p95 or 0.0, "errors": errors})
        out[key] = KeyStats(dimension, key, len(spans), errors, len(spans) / seconds, p50, p95, p99,
                            sum(durations) / len(durations), sum(durations), evidence, max(durations))
    return out


@dataclasses.dataclass(frozen=True)
class WindowStats:
    window: Window
    stats: dict[str, KeyStats]


def sliding(records: Sequence[SpanRecord], dimension: Dimension, window_s: float, step_s: float,
            span: Window) -> list[WindowStats]:
    """``key_stats`` over windows of ``window_s`` seconds every ``step_s`` seconds across ``span``
    (the last window ends at ``span.end_ns``)."""
    if window_s <= 0 or step_s <= 0:
        raise ValueError("window and step must be positive")
    ordered = sorted((r for r in records if key_of(r, dimension) is not None), key=lambda r: r.end_ns)
    ends = [r.end_ns for r in ordered]
    width, step = int(window_s * 1e9), int(step_s * 1e9)
    out: list[WindowStats] = []
    end = span.end_ns
    while end - width >= span.start_ns - step + 1 and len(out) < 10_000:
        win = Window(end - width, end)
        lo, hi = bisect.bisect_left(ends, win.start_ns), bisect.bisect_left(ends, win.end_ns)
        out.append(WindowStats(win, key_stats(ordered[lo:hi], dimension, win)))
        end -= step
    out.reverse()
    return out


@dataclasses.dataclass(frozen=True)
class AgentEfficiency:
    """How well one agent used its time and tokens in a window.

    * ``utilisation``: busy time (its tasks' durations) / available time (its ``invoke_agent``
      spans' durations, i.e. summed over instances; the window's length when none was recorded).
    * ``success_ratio``: tasks without error / tasks.
    * ``tokens_per_task``, ``cost_per_task``: over the LLM calls made under the agent's spans;
      ``cost`` is ``None`` when no call had a priced model (``unpriced_models`` lists those).
    """

    agent: str
    tasks: int
    failed: int
    busy_s: float
    available_s: float
    utilisation: float
    success_ratio: float
    input_tokens: int
    output_tokens: int
    tokens_per_task: float
    cost_usd: float | None
    cost_per_task_usd: float | None
    unpriced_models: tuple[str, ...]
    p50_s: float | None
    p95_s: float | None
    evidence: Evidence


def _clipped_ns(rec: SpanRecord, window: Window) -> int:
    return max(0, min(rec.end_ns, window.end_ns) - max(rec.start_ns, window.start_ns))


def efficiency(records: Sequence[SpanRecord], window: Window, prices: Prices,
               tree: SpanTree | None = None) -> dict[str, AgentEfficiency]:
    """``AgentEfficiency`` for every agent with tasks ending in ``window``."""
    tree = SpanTree(records) if tree is None else tree
    tasks: dict[str, list[SpanRecord]] = {}
    busy: dict[str, int] = {}
    available: dict[str, int] = {}
    tokens: dict[str, list[int]] = {}
    cost: dict[str, float] = {}
    unpriced: dict[str, set[str]] = {}
    for rec in records:
        if rec.kind == "agent" and rec.agent is not None:
            available[rec.agent] = available.get(rec.agent, 0) + _clipped_ns(rec, window)
        elif rec.kind == "task":
            agent = rec.agent or tree.inherited(rec)[0]
            if agent is None:
                continue
            busy[agent] = busy.get(agent, 0) + _clipped_ns(rec, window)
            if window.contains(rec.end_ns):
                tasks.setdefault(agent, []).append(rec)
        elif rec.kind == "llm" and window.contains(rec.end_ns):
            agent = rec.agent or tree.inherited(rec)[0]
            if agent is None:
                continue
            pair = tokens.setdefault(agent, [0, 0])
            pair[0] += rec.input_tokens
            pair[1] += rec.output_tokens
            usd = cost_usd(prices, rec.model, rec.input_tokens, rec.output_tokens)
            if usd is None:
                unpriced.setdefault(agent, set()).add(rec.model or "(no model)")
            else:
                cost[agent] = cost.get(agent, 0.0) + usd
    out: dict[str, AgentEfficiency] = {}
    for agent, spans in tasks.items():
        n = len(spans)
        failed = sum(1 for s in spans if s.error is not None)
        avail = available.get(agent) or int(window.seconds * 1e9)
        in_tok, out_tok = tokens.get(agent, [0, 0])
        spent = cost.get(agent)
        durations = [s.duration_s for s in spans]
        sel = f'{{agent="{agent}"}}'
        evidence = Evidence(
            query=f"efficiency of agent {agent!r}: busy/available time, success ratio, tokens and cost per task",
            expression=(f'sum(clip(duration{sel[:-1]},kind="task"}})) / sum(clip(duration{sel[:-1]},kind="agent"}})); '
                        f'sum(input_tokens+output_tokens{sel[:-1]},kind="llm"}}) / count{sel[:-1]},kind="task"}}'),
            window=window, trace_ids=failed_traces(spans) or slowest_traces(spans), n=n,
            numbers={"busy_s": busy.get(agent, 0) / 1e9, "available_s": avail / 1e9, "failed": failed})
        out[agent] = AgentEfficiency(
            agent=agent, tasks=n, failed=failed, busy_s=busy.get(agent, 0) / 1e9, available_s=avail / 1e9,
            utilisation=busy.get(agent, 0) / avail if avail else 0.0, success_ratio=(n - failed) / n,
            input_tokens=in_tok, output_tokens=out_tok, tokens_per_task=(in_tok + out_tok) / n,
            cost_usd=spent, cost_per_task_usd=None if spent is None else spent / n,
            unpriced_models=tuple(sorted(unpriced.get(agent, ()))),
            p50_s=percentile(durations, 0.5), p95_s=percentile(durations, 0.95), evidence=evidence)
    return out
