"""Bad input never raises and always survives the real OTLP encoder (B.7 "Bad input")."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan

import otel_agentmon as agentmon
from otel_agentmon._spans import sanitize as _sanitize
from otel_agentmon._spans.sanitize import clean_attributes, clean_name, clean_value, to_json
from otel_agentmon.testing import Capture, capture
from tests.support.spans import span_attrs

_TRACER = TracerProvider(shutdown_on_exit=False).get_tracer("sanitize-tests")
PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
DEFAULT_LIMIT = 8192


@pytest.fixture(autouse=True)
def _default_length_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is process-wide and set by every Monitor; pin the default for the direct calls here."""
    monkeypatch.setattr(_sanitize, "_max_length", DEFAULT_LIMIT)


class BadStr:
    """An object whose ``__str__`` raises (``__repr__`` works, so hypothesis can report examples)."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        return "BadStr()"

    def __hash__(self) -> int:
        return 1


class Hostile(BadStr):
    """``__str__`` and ``__repr__`` both raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BadStrSubclass(str):
    def __str__(self) -> str:
        raise RuntimeError("no str")


text = st.text(alphabet=st.characters(codec=None) | st.characters(categories=["Cs"]) | st.sampled_from("\x00\ud800"))
floats = st.floats(allow_nan=True, allow_infinity=True)
integers = st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
leaves = st.one_of(st.none(), st.booleans(), integers, floats, text, st.binary(), st.builds(BadStr),
                   text.map(BadStrSubclass))
hashables = st.one_of(integers, text, st.booleans(), st.builds(BadStr), st.none(), floats)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.lists(inner, max_size=6).map(tuple),
        st.dictionaries(hashables, inner, max_size=6),
        st.sets(hashables, max_size=6),
        st.frozensets(hashables, max_size=6),
    ),
    max_leaves=25,
)


def _encode(name: str, attributes: Mapping[str, Any]) -> ReadableSpan:
    """Start and end a real SDK span, encode it with the OTLP encoder, and check nothing was dropped."""
    span = cast(SdkSpan, _TRACER.start_span(name, attributes=attributes))  # the SDK tracer's spans
    span.add_event("ev", attributes=attributes)
    span.end()
    data = encode_spans([span]).SerializeToString()
    decoded = ExportTraceServiceRequest.FromString(data).resource_spans[0].scope_spans[0].spans[0]
    assert decoded.name == span.name
    assert {kv.key for kv in decoded.attributes} == set(span.attributes or {}), "the encoder dropped attributes"
    assert {kv.key for kv in decoded.events[0].attributes} == set(span.attributes or {})
    return span


def _is_encodable_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


# --- properties ------------------------------------------------------------------------------


@PROPERTY
@given(values)
@example("\ud800\x00")
@example([2**63, 1])
@example(2**63)
def test_clean_value_never_raises_and_encodes(value: Any) -> None:
    cleaned = clean_value(value)
    assert isinstance(cleaned, (str, bool, int, float, list, tuple))
    _encode("span", {"k": cleaned})


@PROPERTY
@given(st.dictionaries(hashables, values, max_size=8))
@example({"\udc00": b"\xff", None: BadStr()})
@example({0: -(2**63) - 1})
def test_clean_attributes_never_raises_and_encodes(attributes: dict[Any, Any]) -> None:
    cleaned = clean_attributes(attributes)
    assert all(isinstance(k, str) and _is_encodable_text(k) and k for k in cleaned)
    _encode("span", cleaned)


@PROPERTY
@given(st.one_of(text, values))
def test_clean_name_is_a_non_empty_encodable_name(value: Any) -> None:
    name = clean_name(value)
    assert isinstance(name, str) and name
    assert _is_encodable_text(name)
    assert len(name) <= _sanitize.MAX_NAME_LENGTH
    _encode(name, {name: 1})


@PROPERTY
@given(values)
def test_to_json_is_always_valid_encodable_json(value: Any) -> None:
    out = to_json(value)
    json.loads(out)
    assert _is_encodable_text(out)
    _encode("span", {"payload": out})


# --- the nasty cases, explicitly -------------------------------------------------------------


def _cyclic_list() -> list[Any]:
    items: list[Any] = [1, "a"]
    items.append(items)
    return items


def _cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def _deep(n: int, as_dict: bool) -> Any:
    value: Any = "bottom"
    for _ in range(n):
        value = {"k": value} if as_dict else [value]
    return value


NASTY = {
    "cyclic list": _cyclic_list(),
    "cyclic dict": _cyclic_dict(),
    "10k-deep list": _deep(10_000, as_dict=False),
    "10k-deep dict": _deep(10_000, as_dict=True),
    "non-str keys": {1: "a", (2, 3): "b", None: "c", Hostile(): "d", "\ud800": "e"},
    "set": {1, 2, 3},
    "frozenset of text": frozenset({"a\x00", "\udfff"}),
    "bad bytes": b"\xff\xfe\x00abc",
    "nan": math.nan,
    "inf list": [math.inf, -math.inf, math.nan],
    "bad str": BadStr(),
    "bad str and repr": Hostile(),
    "bad str subclass": BadStrSubclass("x"),
    "list of bad str": [BadStr(), BadStr()],
    "generator": (i for i in range(3)),
    "none": None,
    "mixed list": [1, "a", None, 2.5, True],
    "long list": list(range(5000)),
}


@pytest.mark.parametrize("value", list(NASTY.values()), ids=list(NASTY))
def test_nasty_values(value: Any) -> None:
    _encode("span", {"v": clean_value(value)})
    _encode("span", clean_attributes({"v": value, value if _hashable(value) else "x": 1}))
    assert json.loads(to_json(value)) is not None or value is None
    _encode(clean_name(value), {})


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def test_ten_megabyte_string_is_truncated_to_the_default_limit() -> None:
    huge = "x" * 10_000_000
    cleaned = clean_value(huge)
    assert isinstance(cleaned, str)
    assert len(cleaned) <= DEFAULT_LIMIT
    assert cleaned.startswith("xxxx")
    assert len(clean_name(huge)) <= _sanitize.MAX_NAME_LENGTH
    _encode("span", {"huge": cleaned})


@pytest.mark.parametrize("payload", [
    {"a": "x" * 10_000_000},
    ['"' * 20_000],
    ["\x01" * 20_000],
    ["\\" * 20_000],
], ids=["10MB in a dict", "quotes", "control chars", "backslashes"])
def test_to_json_output_respects_the_length_limit(payload: Any) -> None:
    """Message content goes on spans as JSON; it must obey OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT too."""
    out = to_json(payload)
    json.loads(out)
    assert len(out) <= DEFAULT_LIMIT


def test_thousand_attributes_are_capped_and_encode() -> None:
    cleaned = clean_attributes({f"k{i}": i for i in range(1000)})
    assert 0 < len(cleaned) <= 128
    _encode("span", cleaned)


# --- through the public API -------------------------------------------------------------------


def test_public_api_accepts_hostile_names_and_values(agentmon_capture: Capture) -> None:
    with agentmon.tool("\ud800bad\x00name") as t:
        t.set_attribute("k", BadStr())
        t.set_attribute("k2", Hostile())
        t.set_attribute(Hostile(), "value")  # type: ignore[arg-type]
        t.set_attribute("\udc00key\x00", b"\xff")
        t.set_attributes({1: {2, 3}, "cyc": _cyclic_list(), "deep": _deep(10_000, as_dict=True)})  # type: ignore[dict-item]
        t.add_event("\ud800event", {"nan": math.nan, "bad": BadStr()})
        t.set_attribute("huge", "y" * 10_000_000)
    (span,) = agentmon_capture.spans()
    assert _is_encodable_text(span.name) and span.name.startswith("execute_tool ")
    assert isinstance(span_attrs(span)["k"], str)
    assert len(span_attrs(span)["huge"]) <= DEFAULT_LIMIT
    data = encode_spans([span]).SerializeToString()
    decoded = ExportTraceServiceRequest.FromString(data).resource_spans[0].scope_spans[0].spans[0]
    assert {kv.key for kv in decoded.attributes} == set(span_attrs(span))
    assert decoded.events[0].name == span.events[0].name


def test_hostile_agent_and_task_names(agentmon_capture: Capture) -> None:
    with agentmon.agent(None), agentmon.task(""), agentmon.workflow("\x00"):  # type: ignore[arg-type]
        pass
    spans = agentmon_capture.spans()
    assert len(spans) == 3
    for span in spans:
        assert _is_encodable_text(span.name)
    encode_spans(spans).SerializeToString()


@pytest.mark.parametrize("big", [2**63, -(2**63) - 1, 2**100], ids=["2**63", "-2**63-1", "2**100"])
def test_integers_outside_int64_survive_encoding(agentmon_capture: Capture, big: int) -> None:
    with agentmon.llm("m", provider="openai") as call:
        call.set_attribute("big", big)
        call.set_attributes({"big_list": [big, 1]})
        call.record_usage(input_tokens=abs(big))
    span = agentmon_capture.span("chat m")
    decoded = ExportTraceServiceRequest.FromString(encode_spans([span]).SerializeToString())
    keys = {kv.key for kv in decoded.resource_spans[0].scope_spans[0].spans[0].attributes}
    assert keys == set(span_attrs(span))  # nothing silently dropped by the encoder


def test_llm_with_a_non_numeric_port_does_not_raise(agentmon_capture: Capture) -> None:
    with agentmon.llm("m", provider="openai", server_address="api.example", server_port="https"):  # type: ignore[arg-type]
        pass
    assert span_attrs(agentmon_capture.span("chat m"))["server.address"] == "api.example"


def test_attribute_length_limit_option_truncates() -> None:
    cap, close = capture(attribute_value_length_limit=100)
    try:
        with agentmon.tool("t") as t:
            t.set_attribute("long", "z" * 1000)
        assert len(span_attrs(cap.span("execute_tool t"))["long"]) <= 100
    finally:
        close()


def test_capture_restores_the_length_limit_on_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """``capture()`` promises to restore the package state: including the attribute length limit."""
    monkeypatch.setattr(_sanitize, "_max_length", 5000)
    _, close = capture(attribute_value_length_limit=100)
    close()
    assert len(clean_value("z" * 20_000)) == 5000  # type: ignore[arg-type]
