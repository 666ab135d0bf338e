"""Bottlenecks: what the critical paths of traces, and of each agent's tasks, are spent in."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

from .._records.records import SpanRecord
from .base import EVIDENCE_TRACES, Evidence, Window
from .critical import Segment, SpanTree, attribute, spent_in

#: Dimensions of trace-level attribution ("spent_in": tool:<name> / llm:<model> / self:<kind>).
TRACE_DIMENSIONS: Final = ("agent", "task_type", "tool", "model", "spent_in")
#: How a query names each dimension's key ("spent in 'tool:lookup'", "of agent 'writer'").
_WHERE: Final = {"spent_in": "spent in", "agent": "of agent", "task_type": "of task type", "tool": "in tool",
                 "model": "in model"}


@dataclasses.dataclass(frozen=True)
class Bottleneck:
    """``key`` takes ``share`` of the critical-path time in ``scope``.

    ``scope`` is ``"traces"`` (critical paths of whole traces, from their roots) or
    ``"agent:<name>"`` (critical paths of that agent's task spans)."""

    scope: str
    dimension: str
    key: str
    critical_s: float
    share: float
    occurrences: int  # traces (or tasks) whose critical path includes it
    evidence: Evidence

    def headline(self) -> str:
        where = "the critical paths of traces" if self.scope == "traces" else \
            f"the critical paths of the tasks of agent {self.scope.split(':', 1)[1]!r}"
        what = "time spent in" if self.dimension == "spent_in" else self.dimension
        return (f"{what} {self.key!r} is {self.share:.0%} of {where} "
                f"({self.critical_s * 1000:.4g} ms over {self.occurrences})")


def _rank(scope: str, dimension: str, per_unit: list[tuple[str, dict[str, int]]], total_ns: int,
          window: Window, units: str) -> list[Bottleneck]:
    """Sum per-unit (trace or task) attributions into ranked bottlenecks."""
    totals: dict[str, int] = {}
    where: dict[str, list[tuple[int, str]]] = {}
    for trace_id, parts in per_unit:
        for key, ns in parts.items():
            totals[key] = totals.get(key, 0) + ns
            where.setdefault(key, []).append((ns, trace_id))
    out: list[Bottleneck] = []
    for key, ns in sorted(totals.items(), key=lambda kv: kv[1], reverse=True):
        biggest: list[str] = []
        for _, trace_id in sorted(where[key], reverse=True):
            if trace_id not in biggest:
                biggest.append(trace_id)
            if len(biggest) >= EVIDENCE_TRACES:
                break
        share = ns / total_ns if total_ns else 0.0
        scope_words = "all traces" if scope == "traces" else f"the tasks of agent {scope.split(':', 1)[1]!r}"
        evidence = Evidence(
            query=f"share of critical-path time of {scope_words} {_WHERE.get(dimension, 'in ' + dimension)} {key!r} "
                  f"(critical path: last-finishing-child walk, overlapping children not double counted)",
            expression=f'sum(critical_path_ns{{{dimension}="{key}"}}) / sum(critical_path_ns) over {units}'
                       + ("" if scope == "traces" else f' of {{kind="task",agent="{scope.split(":", 1)[1]}"}}'),
            window=window, trace_ids=tuple(biggest), n=len(where[key]), statistic=share,
            numbers={"critical_s": ns / 1e9, "total_critical_s": total_ns / 1e9})
        out.append(Bottleneck(scope, dimension, key, ns / 1e9, share, len(where[key]), evidence))
    return out


def bottlenecks(records: Sequence[SpanRecord], window: Window, tree: SpanTree | None = None,
                max_units: int = 5000) -> list[Bottleneck]:
    """Ranked bottlenecks of root spans (traces) and of each agent's tasks ending in ``window``.

    At most ``max_units`` (the longest) traces and tasks are walked, to bound the cost."""
    tree = SpanTree(records) if tree is None else tree
    out: list[Bottleneck] = []
    roots = [r for r in tree.roots if window.contains(r.end_ns)]
    roots = sorted(roots, key=lambda r: r.end_ns - r.start_ns, reverse=True)[:max_units]
    paths: list[tuple[str, list[Segment]]] = [(r.trace_id, tree.critical_path(r)) for r in roots]
    total = sum(seg.duration_ns for _, segs in paths for seg in segs)
    for dim in TRACE_DIMENSIONS:
        per = [(tid, dict(spent_in(segs)) if dim == "spent_in" else attribute(segs, dim)) for tid, segs in paths]
        out.extend(_rank("traces", dim, per, total, window, "root spans"))
    tasks = [r for r in tree.by_id.values() if r.kind == "task" and window.contains(r.end_ns)]
    tasks = sorted(tasks, key=lambda r: r.end_ns - r.start_ns, reverse=True)[:max_units]
    by_agent: dict[str, list[tuple[str, dict[str, int]]]] = {}
    agent_total: dict[str, int] = {}
    for task in tasks:
        agent = task.agent or tree.inherited(task)[0]
        if agent is None:
            continue
        segs = tree.critical_path(task)
        by_agent.setdefault(agent, []).append((task.trace_id, dict(spent_in(segs))))
        agent_total[agent] = agent_total.get(agent, 0) + sum(s.duration_ns for s in segs)
    for agent, per in sorted(by_agent.items()):
        out.extend(_rank(f"agent:{agent}", "spent_in", per, agent_total[agent], window, "task spans"))
    return out
