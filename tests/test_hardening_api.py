"""Arguments of the wrong type never raise into user code (issue 11, item 1).

Ids and numbers given where the conventions want strings are coerced to those strings; values
with no sensible reading are dropped with one rate-limited warning naming the argument; a bad
token count is dropped on its own, never taking the rest of the usage record with it.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

import otel_agentmon as agentmon
from otel_agentmon._setup import monitor as _monitor
from otel_agentmon.testing import Capture

PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "otel_agentmon" and r.levelno >= logging.WARNING]


def _attrs(cap: Capture, name: str) -> dict[str, Any]:
    return dict(cap.span(name).attributes or {})


# --- the holes found: ids as numbers or UUIDs -----------------------------------------------------


def test_ids_and_numbers_are_coerced_to_the_strings_the_conventions_want(agentmon_capture: Capture,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    conversation = uuid.uuid4()
    with (agentmon.agent("a", conversation_id=conversation, description=1),  # type: ignore[arg-type]  # deliberately the wrong type: the API must not raise
          agentmon.task("x", task_id=42),  # type: ignore[arg-type]  # deliberately the wrong type: the API must not raise
          agentmon.tool("t", call_id=7),  # type: ignore[arg-type]  # deliberately the wrong type: the API must not raise
          agentmon.llm("m", provider="openai") as call):
        call.record_usage(input_tokens=10, output_tokens=5, response_id=42)  # type: ignore[arg-type]  # deliberately the wrong type: the API must not raise
    assert _attrs(agentmon_capture, "invoke_agent a")["gen_ai.conversation.id"] == str(conversation)
    assert _attrs(agentmon_capture, "invoke_agent a")["gen_ai.agent.description"] == "1"
    assert _attrs(agentmon_capture, "task x")["agentmon.task.id"] == "42"
    assert _attrs(agentmon_capture, "execute_tool t")["gen_ai.tool.call.id"] == "7"
    usage = _attrs(agentmon_capture, "chat m")
    assert usage["gen_ai.response.id"] == "42"
    assert (usage["gen_ai.usage.input_tokens"], usage["gen_ai.usage.output_tokens"]) == (10, 5)
    assert _warnings(caplog) == []  # a number or UUID as an id is fine: no warning


@pytest.mark.usefixtures("fresh_log_limiter")
def test_unusable_values_are_dropped_with_one_warning_naming_the_argument(agentmon_capture: Capture,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        with (agentmon.agent("a", conversation_id={"not": "an id"}, attributes=["not", "a", "mapping"]),  # type: ignore[arg-type]  # deliberately the wrong type: the API must not raise
              agentmon.task("x", task_id=[1, 2])):  # type: ignore[arg-type]  # deliberately the wrong type: the API must not raise
            pass
    spans = agentmon_capture.spans()
    assert sorted(s.name for s in spans) == ["invoke_agent a"] * 3 + ["task x"] * 3  # every span still recorded
    for span in spans:
        attrs = dict(span.attributes or {})
        assert "gen_ai.conversation.id" not in attrs and "agentmon.task.id" not in attrs
        assert attrs["gen_ai.agent.name"] == "a"
    warnings = _warnings(caplog)
    assert len(warnings) == 3, warnings  # one per argument, not one per call
    assert any("agent(conversation_id=<dict>) ignored" in w and "expected a string" in w for w in warnings)
    assert any("agent(attributes=<list>) ignored" in w and "mapping" in w for w in warnings)
    assert any("task(task_id=<list>) ignored" in w for w in warnings)


@pytest.mark.usefixtures("fresh_log_limiter")
def test_a_name_of_the_wrong_type_is_used_as_text_with_a_warning(agentmon_capture: Capture,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with agentmon.agent(None), agentmon.tool(3), agentmon.workflow(uuid.UUID(int=1)):  # type: ignore[arg-type]
        pass
    assert {s.name for s in agentmon_capture.spans()} == {
        "invoke_agent None", "execute_tool 3", f"invoke_workflow {uuid.UUID(int=1)}"}
    assert _warnings(caplog) == ["agent(name=None) used as 'None': expected a non-empty string"]


# --- token usage ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_log_limiter")
def test_invalid_token_counts_are_dropped_one_by_one_with_one_warning_each(agentmon_capture: Capture,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(5):
        with agentmon.llm("m", provider="openai") as call:
            call.record_usage(input_tokens=math.nan, output_tokens=-3, response_model="m-1", finish_reasons="stop")  # type: ignore[arg-type]  # deliberately the wrong type: the API must not raise
    for span in agentmon_capture.spans("chat m"):
        attrs = dict(span.attributes or {})
        assert "gen_ai.usage.input_tokens" not in attrs and "gen_ai.usage.output_tokens" not in attrs
        assert attrs["gen_ai.response.model"] == "m-1"
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)  # one reason, not its letters
    warnings = _warnings(caplog)
    assert warnings == ["record_usage(input_tokens=nan) ignored: expected a non-negative integer",
                        "record_usage(output_tokens=-3) ignored: expected a non-negative integer"]


@pytest.mark.usefixtures("fresh_log_limiter")
@pytest.mark.parametrize(("value", "kept"), [(12, 12), (12.0, 12), (True, None), ("12", None), (math.inf, None),
                                             (2.5, None), (2**64, None), (None, None)])
def test_token_counts_accept_whole_numbers_only(agentmon_capture: Capture, caplog: pytest.LogCaptureFixture,
                                                value: object, kept: int | None) -> None:
    with agentmon.llm("m", provider="openai"):
        agentmon.record_llm_usage(input_tokens=value, output_tokens=1)  # type: ignore[arg-type]
    attrs = _attrs(agentmon_capture, "chat m")
    assert attrs.get("gen_ai.usage.input_tokens") == kept and attrs["gen_ai.usage.output_tokens"] == 1
    assert len(_warnings(caplog)) == (0 if kept is not None or value is None else 1)


def test_token_usage_metric_counts_coerced_and_valid_values(agentmon_capture: Capture) -> None:
    with agentmon.agent("a"), agentmon.llm("m", provider="openai") as call:
        call.record_usage(input_tokens=7.0, output_tokens=math.nan, response_id=uuid.UUID(int=5))  # type: ignore[arg-type]  # deliberately the wrong type: the API must not raise
    agentmon_capture.monitor._sync()
    points = agentmon_capture.points("gen_ai.client.token.usage")
    assert [(p.attributes["gen_ai.token.type"], p.sum) for p in points] == [("input", 7)]


# --- everything else public ------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_log_limiter")
def test_monitor_methods_take_bad_arguments_without_raising(agentmon_capture: Capture, caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = agentmon_capture.monitor
    monkeypatch.setattr(_monitor, "_current", monitor)  # as configure() would
    agentmon.heartbeat(None)  # type: ignore[arg-type]
    monitor.heartbeat(None)  # type: ignore[arg-type]
    monitor.forget_agent(5)  # type: ignore[arg-type]
    monitor.add_health_check("x", 5)  # type: ignore[arg-type]
    monitor.add_health_check("y", lambda: True, interval="soon", timeout=None)  # type: ignore[arg-type]
    assert monitor.force_flush(timeout="1") in (True, False)  # type: ignore[arg-type]
    with agentmon.llm("m", provider=3, server_address=5, server_port="http"):  # type: ignore[arg-type]
        pass
    attrs = _attrs(agentmon_capture, "chat m")
    assert attrs["gen_ai.provider.name"] == "3" and attrs["server.address"] == "5" and "server.port" not in attrs
    warnings = "\n".join(_warnings(caplog))
    for named in ("heartbeat(agent=None)", "add_health_check(check=5)", "add_health_check(interval='soon')",
                  "force_flush(timeout='1')", "llm(server_port='http')"):
        assert named in warnings
    assert monitor.shutdown(timeout=math.nan) in (True, False)


class _BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")


ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec=None) | st.sampled_from("\x00\ud800")), st.binary(max_size=8), st.uuids(),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(_BadStr), st.builds(object),
)


@PROPERTY
@given(values=st.lists(ANYTHING, min_size=18, max_size=18))
def test_any_value_for_any_argument_never_raises_and_encodes(agentmon_capture: Capture, values: list[Any]) -> None:
    v = iter(values)
    agentmon_capture.clear()
    with agentmon.workflow(next(v), attributes=next(v)), \
            agentmon.agent(next(v), description=next(v), model=next(v), conversation_id=next(v)), \
            agentmon.task(next(v), agent=next(v), task_id=next(v)), \
            agentmon.tool(next(v), type=next(v), description=next(v), call_id=next(v)), \
            agentmon.llm(next(v), provider=next(v), server_address="h", server_port=next(v)) as call:
        call.record_usage(input_tokens=next(v), output_tokens=next(v), response_model=values[0],
                          response_id=values[1], finish_reasons=values[2])
    spans = agentmon_capture.spans()
    assert len(spans) == 5
    encode_spans(spans).SerializeToString()  # the real OTLP encoder accepts every span


class _Researcher:
    name = "r1"

    def run(self) -> str:
        return "done"


@pytest.mark.usefixtures("fresh_log_limiter")
def test_instrument_takes_one_method_name_as_a_string_and_coerces_a_numeric_agent_name(
        agentmon_capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    agentmon.instrument(_Researcher, agent=7, invoke="run")  # type: ignore[arg-type]
    try:
        assert _Researcher().run() == "done"
    finally:
        agentmon.uninstrument(_Researcher)
    assert [s.name for s in agentmon_capture.spans()] == ["invoke_agent 7"]
    assert _warnings(caplog) == []
