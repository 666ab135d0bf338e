"""Walks over parent links that end, whatever the spans say.

Span data comes from outside (any SDK, any process, ``agentmon serve``'s OTLP endpoint): a span
may name itself as its parent, two spans may name each other, a span id may repeat. Every walk
over parent links (serve's trace view, critical paths, analytics, reports, ``testing``) goes
through :func:`acyclic_parents` first: a link that would close a cycle is cut, so each span on
a cycle becomes a root. No span is lost, none is visited twice, and every walk ends.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from .records import SpanRecord

K = TypeVar("K", bound=Hashable)


def acyclic_parents(parents: Mapping[K, K | None]) -> dict[K, K | None]:
    """Each key's parent, where the parent is a key too and following parents from it never
    comes back; ``None`` (a root) otherwise: for a missing parent, and for every key on a cycle.

    Keys whose chain only leads into a cycle keep their links (they hang under the cycle's
    spans, which are roots now). O(n): each key is walked once.
    """
    out: dict[K, K | None] = {}
    done: set[K] = set()
    for start in parents:
        if start in done:
            continue
        path: list[K] = []
        on_path: set[K] = set()
        node: K | None = start
        while node is not None and node in parents and node not in done and node not in on_path:
            on_path.add(node)
            path.append(node)
            node = parents[node]
        if node is not None and node in on_path:  # the walk came back: path[cut:] is a cycle
            cut = path.index(node)
            for key in path[cut:]:
                out[key] = None
            path = path[:cut]
        for key in path:
            parent = parents[key]
            out[key] = parent if parent is not None and parent in parents else None
        done.update(on_path)
    return out


def trace_view(spans: Sequence[SpanRecord], focus: str | None, limit: int
               ) -> list[tuple[SpanRecord, str | None, bool]]:
    """The spans of one trace a waterfall shows: all of them, or with ``focus`` the focused
    span's ancestors (root first) then its subtree (depth first); at most ``limit``.

    Each entry is ``(span, parent_id, cut)``: the parent id to draw it under (as received, unless
    the link closed a cycle: then ``None`` and ``cut``). A span id that repeats is shown once (the
    first received), so the links returned form a forest and any walk over them ends.
    """
    by_id: dict[str, SpanRecord] = {}
    for rec in spans:
        by_id.setdefault(rec.span_id, rec)
    parents = acyclic_parents({sid: rec.parent_id for sid, rec in by_id.items()})
    if focus is None:
        chosen = list(by_id.values())[:limit]
    elif focus not in by_id:
        chosen = []
    else:
        chain: list[SpanRecord] = []
        up = parents[focus]
        while up is not None and len(chain) < limit:  # acyclic: ends at a root
            chain.append(by_id[up])
            up = parents[up]
        chain.reverse()
        children: dict[str, list[str]] = {}
        for sid, parent in parents.items():
            if parent is not None:
                children.setdefault(parent, []).append(sid)
        chosen = chain
        stack = [focus]
        while stack and len(chosen) < limit:  # a forest: each span is pushed at most once
            sid = stack.pop()
            chosen.append(by_id[sid])
            stack.extend(children.get(sid, ()))
    return [(rec, _shown_parent(rec, parents, by_id), _cut(rec, parents, by_id)) for rec in chosen]


def _cut(rec: SpanRecord, parents: Mapping[str, str | None], by_id: Mapping[str, SpanRecord]) -> bool:
    return rec.parent_id is not None and rec.parent_id in by_id and parents[rec.span_id] is None


def _shown_parent(rec: SpanRecord, parents: Mapping[str, str | None], by_id: Mapping[str, SpanRecord]
                  ) -> str | None:
    # A parent outside the trace (remote, or not received) is shown as received: the view treats it as a root.
    return parents[rec.span_id] if rec.parent_id in by_id else rec.parent_id
