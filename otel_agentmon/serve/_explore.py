"""The trace explorer's API: one trace with every span's detail (``/api/trace/<id>``), and the
searchable, sortable list of tasks (``/api/search``).

The list's rows are the store's *units* (task spans, or the root of a trace that has none). The
filters that look inside a task (``tool``, free text ``q``) read the task's own subtree: its
spans' names, attribute keys and values, event names and event attribute values (so an exception
message matches), case-insensitive.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .._names.semconv import EXCEPTION_EVENT
from .._records.records import SpanRecord
from .._records.walks import acyclic_parents, trace_view
from ._detail import SpanDetail, detail_json
from ._store import Store

MAX_TRACE_SPANS: Final = 20_000  # spans of one trace in one answer (the rest: ``truncated``)
MAX_ROWS: Final = 500


def span_json(r: SpanRecord) -> dict[str, Any]:
    return {"trace_id": r.trace_id, "span_id": r.span_id, "parent_id": r.parent_id, "name": r.name,
            "kind": r.kind, "agent": r.agent, "tool": r.tool, "model": r.model, "task_type": r.task_type,
            "service": r.service, "start": r.start_ns / 1e9, "duration": round(r.duration_s, 6),
            "error": r.error, "tokens": r.input_tokens + r.output_tokens}


def trace_link(template: str | None, trace_id: str) -> str | None:
    """The "open in Jaeger/Tempo" address of a trace (only ``{trace_id}`` is replaced)."""
    return None if not template else template.replace("{trace_id}", trace_id)


def trace_json(store: Store, trace_id: str, focus: str | None, template: str | None, tree: bool = False,
               detail: str | None = None) -> dict[str, Any]:
    """One trace: every span (or, with ``focus``, that span's ancestors and subtree) with its
    attributes, events, links, status and the index of its resource in ``resources``.

    ``tree``: each span's place, timing and outcome only (``exc``: it has an exception event), for
    drawing a large trace; ``detail``: that one span in full (what the detail pane fetches)."""
    records, details = store.trace_details(trace_id)
    if detail is not None:
        records = [r for r in records if r.span_id == detail][:1]
    # Cycle-safe: a span that is its own parent (or a loop of them) is drawn as a root, once.
    shown = trace_view(records, focus or None, MAX_TRACE_SPANS)
    resources: list[Mapping[str, Any]] = []
    index: dict[int, int] = {}
    spans = []
    for s, parent, cut in shown:
        info = details.get(s.span_id)
        if tree:
            item = span_json(s)
            del item["trace_id"]
            item["parent_id"] = parent
            item["exc"] = info is not None and any(e[0] == EXCEPTION_EVENT for e in info.events)
        else:
            item = {**span_json(s), "parent_id": parent, **detail_json(s, info)}
            if info is not None and info.resource:
                key = id(info.resource)
                if key not in index:
                    index[key] = len(resources)
                    resources.append(info.resource)
                item["resource"] = index[key]
        if cut:
            item["cycle"] = True
        spans.append(item)
    whole = len({r.span_id for r in records})
    return {"trace_id": trace_id, "focus": focus, "spans": spans, "resources": [dict(r) for r in resources],
            "truncated": not focus and whole > len(spans), "external": trace_link(template, trace_id)}


@dataclasses.dataclass(frozen=True)
class Query:
    agent: str = ""
    task_type: str = ""
    tool: str = ""
    status: str = ""  # "", "ok" or "error"
    min_s: float | None = None
    max_s: float | None = None
    trace_id: str = ""  # a prefix
    q: str = ""
    sort: str = "time"  # "time" (newest first) or "duration" (longest first); "-" before: reversed
    limit: int = 100

    @classmethod
    def from_params(cls, params: Mapping[str, list[str]]) -> Query:
        def text(key: str) -> str:
            return params.get(key, [""])[0].strip()[:200]

        def seconds(key: str) -> float | None:
            try:
                value = float(text(key))
            except ValueError:
                return None
            return value if math.isfinite(value) and value >= 0 else None

        try:
            limit = max(1, min(MAX_ROWS, int(text("limit") or 100)))
        except ValueError:
            limit = 100
        sort = text("sort") or "time"
        return cls(agent=text("agent"), task_type=text("task_type"), tool=text("tool"),
                   status=text("status").lower(), min_s=seconds("min_s"), max_s=seconds("max_s"),
                   trace_id=text("trace_id").lower(), q=text("q").lower(),
                   sort=sort if sort.lstrip("-") in ("time", "duration") else "time", limit=limit)


def _matches(unit: SpanRecord, q: Query) -> bool:
    if q.agent and unit.agent != q.agent:
        return False
    if q.task_type and unit.task_type != q.task_type:
        return False
    if (q.status == "error" and unit.error is None) or (q.status == "ok" and unit.error is not None):
        return False
    duration = round(unit.duration_s, 6)  # as shown
    if (q.min_s is not None and duration < q.min_s) or (q.max_s is not None and duration > q.max_s):
        return False
    return not q.trace_id or unit.trace_id.startswith(q.trace_id)


def _values(record: SpanRecord, detail: SpanDetail | None) -> Iterable[str]:
    yield record.name
    for key, value in record.attributes.items():
        yield key
        yield str(value)
    if detail is not None:
        for key, value in detail.attrs.items():
            yield key
            yield str(value)
        for name, _, attrs in detail.events:
            yield name
            yield from (str(v) for v in attrs.values())


def _text(records: list[SpanRecord], details: Mapping[str, SpanDetail]) -> str:
    """What free text is matched against in a whole trace, lowercase (``_values`` of every span)."""
    parts: list[str] = []
    for r in records:
        parts.append(r.name)
        parts.extend(r.attributes)
        parts.extend(map(str, r.attributes.values()))
        detail = details.get(r.span_id)
        if detail is not None:
            parts.extend(detail.attrs)
            parts.extend(map(str, detail.attrs.values()))
            for name, _, attrs in detail.events:
                parts.append(name)
                parts.extend(map(str, attrs.values()))
    return "\n".join(parts).lower()


class _Subtrees:
    """The spans under each unit of one trace (built once per trace and search)."""

    def __init__(self, store: Store, trace_id: str) -> None:
        records, self.details = store.trace_details(trace_id)
        self.by_id = {r.span_id: r for r in reversed(records)}  # the first received of a repeated id
        parents = acyclic_parents({sid: r.parent_id for sid, r in self.by_id.items()})
        self.children: dict[str, list[str]] = {}
        for sid, parent in parents.items():
            if parent is not None:
                self.children.setdefault(parent, []).append(sid)

    def spans_under(self, span_id: str) -> Iterable[SpanRecord]:
        stack = [span_id]
        while stack:
            sid = stack.pop()
            record = self.by_id.get(sid)
            if record is not None:
                yield record
            stack.extend(self.children.get(sid, ()))


def _deep_match(unit: SpanRecord, q: Query, trees: dict[str, _Subtrees], store: Store,
                has_text: dict[str, bool]) -> bool:
    if q.q:  # first, once per trace: is the text anywhere in it (most traces are out at this step)
        found = has_text.get(unit.trace_id)
        if found is None:
            records, details = store.trace_details(unit.trace_id)
            found = has_text[unit.trace_id] = q.q in _text(records, details)
        if not found:
            return False
    tree = trees.get(unit.trace_id)
    if tree is None:
        tree = trees[unit.trace_id] = _Subtrees(store, unit.trace_id)
    tool_found, text_found = not q.tool, not q.q
    for record in tree.spans_under(unit.span_id):
        if not tool_found and record.tool == q.tool:
            tool_found = True
        if not text_found and any(q.q in v.lower() for v in _values(record, tree.details.get(record.span_id))):
            text_found = True
        if tool_found and text_found:
            return True
    return False


def search(store: Store, q: Query, template: str | None = None) -> dict[str, Any]:
    """The tasks matching ``q``, sorted, at most ``q.limit``; ``total``: how many matched."""
    units = store.live_units()
    trees: dict[str, _Subtrees] = {}
    has_text: dict[str, bool] = {}
    found = [u for u in reversed(units)
             if _matches(u, q) and (not (q.tool or q.q) or _deep_match(u, q, trees, store, has_text))]
    key = q.sort.lstrip("-")
    descending = not q.sort.startswith("-")
    if key == "duration":
        pick = heapq.nlargest if descending else heapq.nsmallest
        rows = pick(q.limit, found, key=lambda r: r.end_ns - r.start_ns)
    else:
        rows = found[:q.limit] if descending else found[::-1][:q.limit]  # ``found`` is newest first
    with store.lock:
        agents = sorted(store.agent_instances)
        tools = sorted(store.tools)
    return {"rows": [{**span_json(r), "link": trace_link(template, r.trace_id)} for r in rows],
            "total": len(found), "kept": len(units),
            "facets": {"agents": agents, "task_types": sorted({u.task_type for u in units if u.task_type}),
                       "tools": tools}}
