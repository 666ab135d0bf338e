"""Walks over parent links end, and see each span once, whatever the parent links say.

Span data comes from any process (or anyone who can reach ``agentmon serve``'s OTLP endpoint):
a span can name itself as its parent, two spans can name each other, an id can repeat. Random
parent graphs go through every walk: ``_walks``, the critical-path tree (and the analytics and
report built on it), serve's trace view, and ``testing``'s span tree.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from otel_agentmon._analytics.change import task_tokens
from otel_agentmon._analytics.critical import SpanTree
from otel_agentmon._records.records import SpanRecord
from otel_agentmon._records.walks import acyclic_parents, trace_view
from otel_agentmon._report import html as _report_html
from otel_agentmon._report import md as _report_md
from otel_agentmon._report import model as _report_model
from otel_agentmon.analytics import analyze
from otel_agentmon.serve import ServeConfig, Server
from otel_agentmon.testing import _span_tree

IDS = [f"{i:016x}" for i in range(1, 9)]  # few ids: duplicates and cycles are common
OUTSIDE = "00000000000000ff"  # a parent that is never among the spans (remote / not received)
TRACES = ["a" * 32, "b" * 32]
KINDS = ["task", "tool", "llm", "agent", "workflow", "other"]
T0 = 1_700_000_000_000_000_000

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def span_records(draw: st.DrawFn, max_size: int = 24) -> list[SpanRecord]:
    n = draw(st.integers(0, max_size))
    out = []
    for i in range(n):
        start = T0 + draw(st.integers(0, 2_000)) * 1_000_000
        out.append(SpanRecord(
            trace_id=draw(st.sampled_from(TRACES)), span_id=draw(st.sampled_from(IDS)),
            parent_id=draw(st.one_of(st.none(), st.sampled_from([*IDS, OUTSIDE]))), name=f"s{i}",
            kind=draw(st.sampled_from(KINDS)), start_ns=start,
            end_ns=start + draw(st.integers(-5, 2_000)) * 1_000_000,
            agent=draw(st.sampled_from([None, "planner", "writer"])),
            task_type=draw(st.sampled_from([None, "plan", "write"])), tool=draw(st.sampled_from([None, "search"])),
            model=draw(st.sampled_from([None, "gpt-4o"])), error=draw(st.sampled_from([None, None, "TimeoutError"])),
            input_tokens=draw(st.integers(0, 50)), output_tokens=draw(st.integers(0, 50))))
    return out


def rec(span_id: str, parent_id: str | None, kind: str = "task", trace_id: str = TRACES[0], start_ms: int = 0,
        end_ms: int = 100, **kw: Any) -> SpanRecord:
    return SpanRecord(trace_id, span_id, parent_id, f"span {span_id[-2:]}", kind,  # type: ignore[arg-type]
                      T0 + start_ms * 1_000_000, T0 + end_ms * 1_000_000, **kw)


SELF_PARENT = [rec(IDS[0], IDS[0], agent="a"), rec(IDS[1], IDS[0], "llm", input_tokens=5)]
TWO_CYCLE = [rec(IDS[0], IDS[1]), rec(IDS[1], IDS[0], "tool", tool="search"), rec(IDS[2], IDS[1], "llm")]


def follow(parents: dict[Any, Any], key: Any) -> list[Any]:
    """The chain of ancestors of ``key``; fails the test if it loops."""
    seen = {key}
    chain = []
    while (key := parents[key]) is not None:
        assert key not in seen, f"cycle through {key!r}"
        seen.add(key)
        chain.append(key)
    return chain


# --- the core -----------------------------------------------------------------------------------


@PROPERTY
@given(st.dictionaries(st.integers(0, 12), st.one_of(st.none(), st.integers(0, 14)), max_size=13))
@example({0: 0})
@example({0: 1, 1: 0, 2: 1})
@example({0: 1, 1: 2, 2: 3, 3: 1, 4: 0})
def test_acyclic_parents_cuts_exactly_the_cycles(parents: dict[int, int | None]) -> None:
    out = acyclic_parents(parents)
    assert out.keys() == parents.keys()
    for key, parent in out.items():
        follow(out, key)  # ends
        if parent is not None:
            assert parent == parents[key]  # a link is kept as it was, or cut
        else:  # cut only where the parent is missing or the original chain comes back to the key
            original = parents[key]
            if original is not None and original in parents:
                node: int | None = original
                for _ in range(len(parents) + 1):
                    if node == key or node is None or node not in parents:
                        break
                    node = parents[node]
                assert node == key, f"{key} lost its parent {original} but is on no cycle"


# --- the critical-path tree, and the analytics and reports built on it ---------------------------


def reachable(tree: SpanTree) -> list[tuple[str, str]]:
    """Every span reached from the roots by children links, failing on a second visit."""
    seen: list[tuple[str, str]] = []
    stack = list(tree.roots)
    while stack:
        node = stack.pop()
        key = (node.trace_id, node.span_id)
        assert key not in seen, f"{key} reached twice"
        seen.append(key)
        stack.extend(tree.children.get(key, []))
    return seen


@PROPERTY
@given(span_records())
@example(SELF_PARENT)
@example(TWO_CYCLE)
def test_span_tree_holds_each_span_once_and_its_walks_end(records: list[SpanRecord]) -> None:
    tree = SpanTree(records)
    assert sorted(reachable(tree)) == sorted({(r.trace_id, r.span_id) for r in records})  # none lost, none twice
    for r in tree.by_id.values():
        chain: list[SpanRecord] = []
        node = tree.parent(r)
        while node is not None:
            assert node not in chain and len(chain) <= len(records)
            chain.append(node)
            node = tree.parent(node)
        tree.inherited(r)
        segments = tree.critical_path(r)
        assert sum(s.duration_ns for s in segments) == max(0, r.end_ns - r.start_ns)  # tiles the span, once
    tokens = task_tokens(records, tree)
    assert sum(tokens.values()) <= sum(r.input_tokens + r.output_tokens for r in tree.by_id.values()
                                       if r.kind == "llm")  # each call counted under one task at most


@PROPERTY
@given(span_records())
@example(SELF_PARENT)
@example(TWO_CYCLE)
def test_analytics_and_reports_end_on_any_parent_graph(records: list[SpanRecord]) -> None:
    insights = analyze(records)
    model = _report_model.from_insights(insights, "test")
    assert _report_md.render(model)
    assert _report_html.render(model)


def test_a_self_parent_and_a_two_cycle_become_roots_with_their_subtrees() -> None:
    tree = SpanTree(SELF_PARENT)
    assert [r.span_id for r in tree.roots] == [IDS[0]]
    assert [r.span_id for r in tree.children[(TRACES[0], IDS[0])]] == [IDS[1]]
    assert tree.inherited(SELF_PARENT[1]) == ("a", None)
    tree = SpanTree(TWO_CYCLE)
    assert sorted(r.span_id for r in tree.roots) == [IDS[0], IDS[1]]
    assert [r.span_id for r in tree.children[(TRACES[0], IDS[1])]] == [IDS[2]]  # the tail hangs under the cycle


# --- serve's trace view ----------------------------------------------------------------------------


def check_view(records: Sequence[SpanRecord], focus: str | None) -> list[str]:
    shown = trace_view(records, focus, 5000)
    ids = [r.span_id for r, _, _ in shown]
    assert len(ids) == len(set(ids)), "a span shown twice"
    links = {r.span_id: parent for r, parent, _ in shown}
    for sid in ids:
        follow({k: (v if v in links else None) for k, v in links.items()}, sid)  # the page's walk ends
    for r, parent, cut in shown:
        assert parent == (None if cut else r.parent_id)
    return ids


@PROPERTY
@given(span_records(), st.one_of(st.none(), st.sampled_from(IDS)))
@example(SELF_PARENT, IDS[0])
@example(TWO_CYCLE, IDS[1])
@example(TWO_CYCLE, IDS[2])
def test_trace_view_shows_each_span_once_and_its_links_form_a_forest(records: list[SpanRecord],
                                                                      focus: str | None) -> None:
    one_trace = [r for r in records if r.trace_id == TRACES[0]]
    ids = check_view(one_trace, focus)
    distinct = {r.span_id for r in one_trace}
    if focus is None:
        assert set(ids) == distinct  # nothing lost
    elif focus in distinct:
        assert focus in ids
    else:
        assert ids == []
    assert len(trace_view(one_trace, None, 3)) == min(3, len(distinct))  # the cap holds


def test_trace_view_of_a_self_parent_and_a_two_cycle() -> None:
    shown = trace_view(SELF_PARENT, IDS[1], 5000)
    assert [(r.span_id, parent, cut) for r, parent, cut in shown] == [(IDS[0], None, True), (IDS[1], IDS[0], False)]
    shown = trace_view(TWO_CYCLE, IDS[2], 5000)
    assert [(r.span_id, parent, cut) for r, parent, cut in shown] == [(IDS[1], None, True), (IDS[2], IDS[1], False)]


# --- testing's span tree ---------------------------------------------------------------------------


def readable(r: SpanRecord) -> ReadableSpan:
    trace_id = int(r.trace_id, 16)
    context = SpanContext(trace_id, int(r.span_id, 16), False, TraceFlags(1))
    parent = None if r.parent_id is None else SpanContext(trace_id, int(r.parent_id, 16), False, TraceFlags(1))
    return ReadableSpan(name=r.name, context=context, parent=parent, start_time=r.start_ns, end_time=r.end_ns)


def names_in(tree: list[Any]) -> Iterator[str]:
    stack = list(tree)
    while stack:
        name, kids = stack.pop()
        yield name
        stack.extend(kids)


@PROPERTY
@given(span_records())
@example(SELF_PARENT)
@example(TWO_CYCLE)
def test_testing_tree_holds_every_span_exactly_once(records: list[SpanRecord]) -> None:
    tree = _span_tree([readable(r) for r in records])
    assert sorted(names_in(tree)) == sorted(r.name for r in records)


def test_testing_tree_of_a_self_parent_and_a_deep_chain() -> None:
    assert _span_tree([readable(r) for r in SELF_PARENT]) == [("span 01", [("span 02", [])])]
    chain = [rec(f"{i + 1:016x}", None if i == 0 else f"{i:016x}", start_ms=i) for i in range(3000)]
    tree = _span_tree([readable(r) for r in chain])  # deeper than the recursion limit
    assert sum(1 for _ in names_in(tree)) == 3000


# --- through serve's HTTP API ------------------------------------------------------------------------


def otlp_span(trace_id: str, span_id: str, parent_id: str | None, name: str) -> dict[str, Any]:
    span: dict[str, Any] = {"traceId": trace_id, "spanId": span_id, "name": name,
                            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 250_000_000),
                            "attributes": [{"key": "agentmon.task.type", "value": {"stringValue": "loop"}},
                                           {"key": "gen_ai.agent.name", "value": {"stringValue": "looper"}}]}
    if parent_id is not None:
        span["parentSpanId"] = parent_id
    return span


@pytest.fixture
def server() -> Iterator[Server]:
    with Server(ServeConfig(port=0)) as srv:
        yield srv


def get_json(srv: Server, path: str) -> Any:
    # No answer at all is the failure this guards against: serve looping on the parent links.
    with urllib.request.urlopen(srv.url + path, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.mark.timeout(120)
def test_serve_answers_a_trace_with_a_self_parent_and_a_two_cycle(server: Server) -> None:
    t_self, t_two = "c" * 32, "d" * 32
    spans = [otlp_span(t_self, IDS[0], IDS[0], "self parent"), otlp_span(t_self, IDS[1], IDS[0], "child"),
             otlp_span(t_two, IDS[0], IDS[1], "one"), otlp_span(t_two, IDS[1], IDS[0], "two")]
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]},
                               "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}]}]}
    req = urllib.request.Request(server.url + "/v1/traces", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
    # What the dashboard does by itself: open the slowest task (here: each of them), then the trace.
    for trace_id, focus in ((t_self, IDS[0]), (t_self, IDS[1]), (t_two, IDS[0]), (t_two, IDS[1])):
        wf = get_json(server, f"/api/trace/{trace_id}?span={focus}")
        ids = [s["span_id"] for s in wf["spans"]]
        assert focus in ids and len(ids) == len(set(ids))
        assert all(s["parent_id"] is None for s in wf["spans"] if s.get("cycle"))
    whole = get_json(server, f"/api/trace/{t_self}")["spans"]
    assert [(s["name"], s["parent_id"], s.get("cycle", False)) for s in whole] == [
        ("self parent", None, True), ("child", IDS[0], False)]
    whole = get_json(server, f"/api/trace/{t_two}")["spans"]
    assert sorted((s["name"], s["parent_id"]) for s in whole) == [("one", None), ("two", None)]
    assert get_json(server, "/api/insights") is not None  # the analytics over the same spans end too
