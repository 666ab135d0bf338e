"""Message content capture: off by default; on spans, as events, or both when opted in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import otel_agentmon as agentmon
from otel_agentmon.testing import Capture, capture
from tests.support.spans import span_attrs

CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")
EVENT_NAME = "gen_ai.client.inference.operation.details"
ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

INPUT = [{"role": "user", "parts": [{"type": "text", "content": "What is OTel? \ud800"}]}]
OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Telemetry."}], "finish_reason": "stop"}]
SYSTEM = [{"type": "text", "content": "Be brief."}]


@pytest.fixture
def make_capture() -> Iterator[Any]:
    closers: list[Any] = []

    def make(**options: Any) -> Capture:
        cap, close = capture(**options)
        closers.append(close)
        return cap

    yield make
    for close in reversed(closers):
        close()


def _record_everything() -> None:
    """Content through every entry point: the handle, the module function, on a current span."""
    with agentmon.agent("a"), agentmon.llm("gpt-4o", provider="openai") as call:
        call.record_messages(input=INPUT, output=OUTPUT, system=SYSTEM)
    with agentmon.llm("gpt-4o-mini", provider="openai"):
        agentmon.record_llm_messages(input=INPUT, output=OUTPUT, system=SYSTEM)


def _content_on_spans(cap: Capture) -> dict[str, dict[str, Any]]:
    return {s.name: {k: span_attrs(s)[k] for k in CONTENT_KEYS if k in span_attrs(s)} for s in cap.spans()}


def _events(cap: Capture) -> list[Any]:
    return [r.log_record for r in cap.logs() if r.log_record.event_name == EVENT_NAME]


def _assert_content_on_span(attrs: dict[str, Any]) -> None:
    assert set(attrs) == set(CONTENT_KEYS)
    for value in attrs.values():
        assert isinstance(value, str)
        value.encode("utf-8")  # valid UTF-8: a lone surrogate would poison the OTLP batch
    assert json.loads(attrs["gen_ai.output.messages"]) == OUTPUT
    assert json.loads(attrs["gen_ai.system_instructions"]) == SYSTEM
    messages = json.loads(attrs["gen_ai.input.messages"])
    assert messages[0]["role"] == "user"
    assert messages[0]["parts"][0]["content"].startswith("What is OTel?")


def test_no_content_by_default(agentmon_capture: Capture) -> None:
    _record_everything()
    assert _content_on_spans(agentmon_capture) == {
        "chat gpt-4o": {}, "invoke_agent a": {}, "chat gpt-4o-mini": {},
    }
    assert agentmon_capture.logs() == []


def test_span_only(make_capture: Any) -> None:
    cap = make_capture(capture_content="SPAN_ONLY")
    _record_everything()
    content = _content_on_spans(cap)
    _assert_content_on_span(content["chat gpt-4o"])
    _assert_content_on_span(content["chat gpt-4o-mini"])
    assert content["invoke_agent a"] == {}
    assert cap.logs() == []


def test_event_only(make_capture: Any) -> None:
    cap = make_capture(capture_content="EVENT_ONLY")
    _record_everything()
    assert all(attrs == {} for attrs in _content_on_spans(cap).values())
    events = _events(cap)
    assert len(events) == 2
    _assert_content_on_span(dict(events[0].attributes))
    span = cap.span("chat gpt-4o")
    assert (events[0].trace_id, events[0].span_id) == (span.context.trace_id, span.context.span_id)


def test_span_and_event(make_capture: Any) -> None:
    cap = make_capture(capture_content="SPAN_AND_EVENT")
    _record_everything()
    _assert_content_on_span(_content_on_spans(cap)["chat gpt-4o"])
    assert len(_events(cap)) == 2


@pytest.mark.parametrize(("raw", "on_spans", "events"), [
    ("span_only", True, 0),
    ("event_only", False, 2),
    ("no_content", False, 0),
])
def test_env_var_is_honoured(make_capture: Any, monkeypatch: pytest.MonkeyPatch, raw: str, on_spans: bool,
                             events: int) -> None:
    monkeypatch.setenv(ENV, raw)
    cap = make_capture()
    _record_everything()
    assert bool(_content_on_spans(cap)["chat gpt-4o"]) is on_spans
    assert len(_events(cap)) == events


def test_argument_beats_env_var(make_capture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "SPAN_ONLY")
    cap = make_capture(capture_content="NO_CONTENT")
    _record_everything()
    assert not _content_on_spans(cap)["chat gpt-4o"]


def test_closing_a_capture_restores_no_content(agentmon_capture: Capture) -> None:
    _, close = capture(capture_content="SPAN_AND_EVENT")
    close()
    _record_everything()
    assert not _content_on_spans(agentmon_capture)["chat gpt-4o"]
    assert agentmon_capture.logs() == []


def test_hostile_content_still_gives_valid_json(make_capture: Any) -> None:
    cyclic: list[Any] = ["loop"]
    cyclic.append(cyclic)

    class Opaque:
        def __str__(self) -> str:
            raise RuntimeError("no")

    cap = make_capture(capture_content="SPAN_ONLY")
    with agentmon.llm("m", provider="openai") as call:
        call.record_messages(input=cyclic, output={1: Opaque(), "x": float("nan")}, system=b"\xff")
    attrs = cap.span("chat m").attributes
    for key in CONTENT_KEYS:
        json.loads(attrs[key])
        attrs[key].encode("utf-8")


def test_record_messages_never_raises_outside_a_span(make_capture: Any) -> None:
    cap = make_capture(capture_content="SPAN_AND_EVENT")
    agentmon.record_llm_messages(input=INPUT)
    assert cap.spans() == []
