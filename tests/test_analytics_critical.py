"""Critical paths on hand-built span trees."""

from __future__ import annotations

from otel_agentmon._analytics.critical import SpanTree, attribute, spent_in
from otel_agentmon._records.records import Kind, SpanRecord

T = "0" * 31 + "1"


def span(sid: int, parent: int | None, start: int, end: int, kind: Kind = "other", **kw: str) -> SpanRecord:
    return SpanRecord(trace_id=T, span_id=f"{sid:016x}", parent_id=None if parent is None else f"{parent:016x}",
                      name=f"s{sid}", kind=kind, start_ns=start, end_ns=end, **kw)  # type: ignore[arg-type]


def by_span(tree: SpanTree, top: SpanRecord) -> dict[str, int]:
    out: dict[str, int] = {}
    for seg in tree.critical_path(top):
        out[seg.span.name] = out.get(seg.span.name, 0) + seg.duration_ns
    return out


def test_overlapping_children_are_not_summed() -> None:
    # root [0,100]; A [10,60]; B [20,90]; C [50,80] overlaps B. The path: root 90..100, all of B,
    # then root 0..20; A and C ran in parallel with B and are off the path.
    root = span(1, None, 0, 100)
    spans = [root, span(2, 1, 10, 60), span(3, 1, 20, 90), span(4, 1, 50, 80)]
    tree = SpanTree(spans)
    assert by_span(tree, root) == {"s1": 30, "s3": 70}


def test_sequential_children_are_all_on_the_path() -> None:
    root = span(1, None, 0, 100)
    tree = SpanTree([root, span(2, 1, 0, 30), span(3, 1, 30, 70), span(4, 1, 75, 100)])
    assert by_span(tree, root) == {"s2": 30, "s3": 40, "s1": 5, "s4": 25}


def test_nested_tree_attributes_time_to_tools_models_and_inherited_agent() -> None:
    # root R [0,100] > task T [5,95] (agent a, type research) > tool X [10,40], llm L [50,90] > tool Y [55,70]
    root = span(1, None, 0, 100)
    task = span(2, 1, 5, 95, "task", agent="a", task_type="research")
    spans = [root, task, span(3, 2, 10, 40, "tool", tool="X"), span(4, 2, 50, 90, "llm", model="m"),
             span(5, 4, 55, 70, "tool", tool="Y")]
    tree = SpanTree(spans)
    assert by_span(tree, root) == {"s1": 10, "s2": 20, "s3": 30, "s4": 25, "s5": 15}
    segs = tree.critical_path(root)
    assert sum(s.duration_ns for s in segs) == 100
    assert [(s.start_ns, s.end_ns) for s in segs] == [(0, 5), (5, 10), (10, 40), (40, 50), (50, 55), (55, 70),
                                                      (70, 90), (90, 95), (95, 100)]
    assert attribute(segs, "tool") == {"X": 30, "Y": 15}
    assert attribute(segs, "model") == {"m": 25}
    assert attribute(segs, "agent") == {"a": 90}  # everything under the task inherits its agent
    assert attribute(segs, "task_type") == {"research": 90}
    assert spent_in(segs) == {"self:other": 10, "self:task": 20, "tool:X": 30, "llm:m": 25, "tool:Y": 15}
    # A task's own critical path starts at the task.
    assert sum(s.duration_ns for s in tree.critical_path(task)) == 90


def test_children_outside_their_parent_are_clipped() -> None:
    # An async child that outlives its parent counts up to the parent's end only; one that started
    # before the parent counts from the parent's start.
    root = span(1, None, 10, 100)
    tree = SpanTree([root, span(2, 1, 80, 150), span(3, 1, 0, 30)])
    assert by_span(tree, root) == {"s2": 20, "s1": 50, "s3": 20}


def test_a_span_whose_parent_was_not_recorded_is_a_root() -> None:
    orphan = span(7, 99, 0, 10)
    tree = SpanTree([orphan])
    assert tree.roots == [orphan]
    assert by_span(tree, orphan) == {"s7": 10}
