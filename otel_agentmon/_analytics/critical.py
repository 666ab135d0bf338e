"""Critical paths of span trees: which spans determine when a root (or a task) ends.

Walking back from a span's end: the time until its last-finishing child ended is the span's
own ("self") time on the path; then the path goes into that child, recursively, and continues
from the child's start with the last child that finished before it. Children that overlap the
chosen one without finishing before its start ran in parallel and are off the path, so time is
never double counted: the segments of one path tile the span's duration exactly. Children are
clipped to their parent's interval (an asynchronous child that outlives its parent only counts
up to the parent's end). This is the algorithm of Jaeger's critical-path view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from .._records.records import SpanRecord
from .._records.walks import acyclic_parents


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the critical path spent in ``span`` itself (not in one of its children)."""

    span: SpanRecord
    start_ns: int
    end_ns: int
    agent: str | None  # the span's agent, else the nearest ancestor's
    task_type: str | None  # the span's task type, else the nearest ancestor's

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class SpanTree:
    """The spans of many traces, indexed for critical-path walks.

    A span whose parent is not among the records is a root (a remote parent, or a parent that
    was not recorded), and so is each span on a cycle of parent links (see ``_walks``): walks
    over the tree end, and see each span once. A repeated span id keeps its last record.
    """

    def __init__(self, records: Iterable[SpanRecord]) -> None:
        self.by_id: dict[tuple[str, str], SpanRecord] = {}
        for rec in records:
            self.by_id[(rec.trace_id, rec.span_id)] = rec
        self._parents = acyclic_parents({key: None if rec.parent_id is None else (rec.trace_id, rec.parent_id)
                                         for key, rec in self.by_id.items()})
        self.children: dict[tuple[str, str], list[SpanRecord]] = {}
        self.roots: list[SpanRecord] = []
        for key, rec in self.by_id.items():
            parent = self._parents[key]
            if parent is not None:
                self.children.setdefault(parent, []).append(rec)
            else:
                self.roots.append(rec)
        for kids in self.children.values():
            kids.sort(key=lambda r: (r.end_ns, r.start_ns))

    def parent(self, rec: SpanRecord) -> SpanRecord | None:
        """The span's parent in the tree (``None`` for a root, also one whose link closed a cycle)."""
        key = (rec.trace_id, rec.span_id)
        if key in self._parents:
            parent = self._parents[key]
        else:  # a record the tree was not built from: its own link, into the (acyclic) tree
            parent = None if rec.parent_id is None else (rec.trace_id, rec.parent_id)
        return None if parent is None else self.by_id.get(parent)

    def inherited(self, rec: SpanRecord) -> tuple[str | None, str | None]:
        """(agent, task type) of the span or its nearest ancestor that names them."""
        agent, task_type = rec.agent, rec.task_type
        node: SpanRecord | None = rec
        hops = 0
        while (agent is None or task_type is None) and node is not None and hops < 256:
            node = self.parent(node)
            hops += 1
            if node is not None:
                agent = agent or node.agent
                task_type = task_type or node.task_type
        return agent, task_type

    def critical_path(self, top: SpanRecord) -> list[Segment]:
        """The critical path of ``top``'s subtree, as self-time segments ordered by start."""
        segments: list[Segment] = []
        agent, task_type = self.inherited(top)
        self._walk(top, top.start_ns, top.end_ns, agent, task_type, segments, 0)
        segments.sort(key=lambda s: s.start_ns)
        return segments

    def _walk(self, span: SpanRecord, lo: int, hi: int, agent: str | None, task_type: str | None,
              out: list[Segment], depth: int) -> None:
        # Iterative over siblings, recursive over depth (trees are shallow; depth is capped).
        agent = span.agent or agent
        task_type = span.task_type or task_type
        kids = self.children.get((span.trace_id, span.span_id), []) if depth < 200 else []
        cursor = hi
        idx = len(kids) - 1
        while cursor > lo:
            chosen = None
            while idx >= 0:
                kid = kids[idx]
                idx -= 1
                k_start, k_end = max(kid.start_ns, lo), min(kid.end_ns, cursor)
                # A child that ended after the cursor ran in parallel with the path, except one
                # that outlived its parent: that one is clipped to the parent's end.
                if k_end > k_start and (kid.end_ns <= cursor or cursor == hi):
                    chosen = (kid, k_start, k_end)
                    break
            if chosen is None:
                out.append(Segment(span, lo, cursor, agent, task_type))
                return
            kid, k_start, k_end = chosen
            if k_end < cursor:
                out.append(Segment(span, k_end, cursor, agent, task_type))
            self._walk(kid, k_start, k_end, agent, task_type, out, depth + 1)
            cursor = k_start


def attribute(segments: Sequence[Segment], dimension: str) -> dict[str, int]:
    """Critical-path nanoseconds per value of ``dimension``: ``agent``, ``task_type`` (both
    inherited), ``tool``, ``model`` (the span's own) or ``span`` (``kind:name``)."""
    out: dict[str, int] = {}
    for seg in segments:
        key = _dimension_value(seg, dimension)
        if key is not None:
            out[key] = out.get(key, 0) + seg.duration_ns
    return out


def _dimension_value(seg: Segment, dimension: str) -> str | None:
    if dimension == "agent":
        return seg.agent
    if dimension == "task_type":
        return seg.task_type
    if dimension == "tool":
        return seg.span.tool if seg.span.kind == "tool" else None
    if dimension == "model":
        return seg.span.model if seg.span.kind == "llm" else None
    if dimension == "span":
        return f"{seg.span.kind}:{seg.span.tool or seg.span.model or seg.span.name}"
    raise ValueError(f"unknown dimension {dimension!r}")


def spent_in(segments: Sequence[Segment]) -> Mapping[str, int]:
    """Critical-path time by what the time was spent in: ``tool:<name>``, ``llm:<model>`` or
    ``self:<kind>`` (the agent's/task's own code between calls)."""
    out: dict[str, int] = {}
    for seg in segments:
        span = seg.span
        if span.kind == "tool":
            key = f"tool:{span.tool or span.name}"
        elif span.kind == "llm":
            key = f"llm:{span.model or span.name}"
        else:
            key = f"self:{span.kind}"
        out[key] = out.get(key, 0) + seg.duration_ns
    return out
