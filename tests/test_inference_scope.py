"""The one-inference-span-per-call rule: what a lower layer (an LLM client) sees."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_agentmon._spans.inference_scope import (
    inference_scope,
    inside_inference,
    register_probe,
    unregister_probe,
)


def test_scope_marks_only_its_block() -> None:
    assert not inside_inference()
    with inference_scope():
        assert inside_inference()
    assert not inside_inference()


@pytest.mark.parametrize(
    ("operation", "expected"), [("chat", True), ("text_completion", True), ("invoke_agent", False)]
)
def test_current_inference_span_is_seen(operation: str, expected: bool) -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s", attributes={"gen_ai.operation.name": operation}):
        assert inside_inference() is expected


def test_probe_answers_and_a_raising_probe_counts_as_no() -> None:
    state = {"inside": False}

    def probe() -> bool:
        return state["inside"]

    def broken() -> bool:
        raise RuntimeError("framework internals changed")

    register_probe(broken)
    register_probe(probe)
    try:
        assert not inside_inference()
        state["inside"] = True
        assert inside_inference()
    finally:
        unregister_probe(probe)
        unregister_probe(broken)
    assert not inside_inference()
