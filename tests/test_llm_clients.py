"""LLM clients with only configure(): one CLIENT inference span per call, tokens counted once.

Real ``openai``, ``anthropic`` and ``google-genai`` clients over a scripted transport of their own
HTTP library (``tests/support/llm_stubs.py``), instrumented by ``configure()`` through the official
GenAI instrumentations bound to the monitor's providers (the capture's private ones here; the
native Anthropic spans on the global provider are checked in ``test_llm_clients_native.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import otel_agentmon as am
from otel_agentmon._names import semconv as sc
from otel_agentmon._setup import llm_clients
from otel_agentmon._spans.inference_scope import inference_scope, register_probe, unregister_probe
from otel_agentmon.testing import Capture, capture
from tests.support import llm_stubs as st
from tests.support.spans import span_attrs

INFERENCE = {sc.OP_CHAT, "generate_content"}


@pytest.fixture
def cap() -> Iterator[Capture]:
    found, close = capture()
    try:
        yield found
    finally:
        close()


def inference_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans() if span_attrs(s).get(sc.GEN_AI_OPERATION_NAME) in INFERENCE]


def tokens_over_all_scopes(cap: Capture) -> dict[tuple[str, str], float]:
    """gen_ai.client.token.usage summed per (scope, token type), over every scope the monitor exports."""
    cap.monitor._sync()
    data = cap._metrics.get_metrics_data()
    out: dict[tuple[str, str], float] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == sc.M_CLIENT_TOKEN_USAGE:
                    for p in metric.data.data_points:
                        key = (sm.scope.name, str(span_attrs(p)[sc.GEN_AI_TOKEN_TYPE]))
                        out[key] = out.get(key, 0.0) + p.sum  # type: ignore[union-attr]
    return out


def _run(coro: Any) -> None:
    asyncio.run(coro)


# --- one call of each kind: (provider, model, tokens, the call) -------------------------------------
def _openai_chat() -> None:
    st.openai_clients()[0].chat.completions.create(model=st.OPENAI_MODEL, messages=st.USER)


def _openai_chat_async() -> None:
    _run(st.openai_clients()[1].chat.completions.create(model=st.OPENAI_MODEL, messages=st.USER))


def _openai_chat_stream() -> None:
    stream = st.openai_clients()[0].chat.completions.create(
        model=st.OPENAI_MODEL, messages=st.USER, stream=True, stream_options={"include_usage": True})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "It is sunny."


def _openai_chat_stream_async() -> None:
    async def go() -> None:
        stream = await st.openai_clients()[1].chat.completions.create(
            model=st.OPENAI_MODEL, messages=st.USER, stream=True, stream_options={"include_usage": True})
        async for _ in stream:
            pass

    _run(go())


def _openai_responses() -> None:
    assert st.openai_clients()[0].responses.create(model=st.OPENAI_MODEL, input="Weather?").output_text


def _openai_responses_async() -> None:
    _run(st.openai_clients()[1].responses.create(model=st.OPENAI_MODEL, input="Weather?"))


def _openai_responses_stream() -> None:
    events = list(st.openai_clients()[0].responses.create(model=st.OPENAI_MODEL, input="Weather?", stream=True))
    assert events[-1].type == "response.completed"


def _anthropic() -> None:
    st.anthropic_clients()[0].messages.create(model=st.ANTHROPIC_MODEL, max_tokens=64, messages=st.USER)


def _anthropic_async() -> None:
    _run(st.anthropic_clients()[1].messages.create(model=st.ANTHROPIC_MODEL, max_tokens=64, messages=st.USER))


def _anthropic_stream() -> None:
    with st.anthropic_clients()[0].messages.stream(model=st.ANTHROPIC_MODEL, max_tokens=64,
                                                   messages=st.USER) as stream:
        assert "".join(stream.text_stream) == "It is sunny."


def _anthropic_stream_async() -> None:
    async def go() -> None:
        async with st.anthropic_clients()[1].messages.stream(model=st.ANTHROPIC_MODEL, max_tokens=64,
                                                             messages=st.USER) as stream:
            async for _ in stream.text_stream:
                pass

    _run(go())


def _anthropic_create_stream() -> None:
    events = list(st.anthropic_clients()[0].messages.create(model=st.ANTHROPIC_MODEL, max_tokens=64,
                                                            messages=st.USER, stream=True))
    assert events[-1].type == "message_stop"


def _gemini() -> None:
    assert st.gemini_client().models.generate_content(model=st.GEMINI_MODEL, contents="Weather?").text


def _gemini_async() -> None:
    _run(st.gemini_client().aio.models.generate_content(model=st.GEMINI_MODEL, contents="Weather?"))


CALLS: dict[str, tuple[str, str, tuple[int, int], Callable[[], None]]] = {
    "openai-chat": ("openai", st.OPENAI_MODEL, st.OPENAI_CHAT, _openai_chat),
    "openai-chat-async": ("openai", st.OPENAI_MODEL, st.OPENAI_CHAT, _openai_chat_async),
    "openai-chat-stream": ("openai", st.OPENAI_MODEL, st.OPENAI_CHAT_STREAM, _openai_chat_stream),
    "openai-chat-stream-async": ("openai", st.OPENAI_MODEL, st.OPENAI_CHAT_STREAM, _openai_chat_stream_async),
    "openai-responses": ("openai", st.OPENAI_MODEL, st.OPENAI_RESPONSES, _openai_responses),
    "openai-responses-async": ("openai", st.OPENAI_MODEL, st.OPENAI_RESPONSES, _openai_responses_async),
    "openai-responses-stream": ("openai", st.OPENAI_MODEL, st.OPENAI_RESPONSES_STREAM, _openai_responses_stream),
    "anthropic": ("anthropic", st.ANTHROPIC_MODEL, st.ANTHROPIC, _anthropic),
    "anthropic-async": ("anthropic", st.ANTHROPIC_MODEL, st.ANTHROPIC, _anthropic_async),
    "anthropic-stream": ("anthropic", st.ANTHROPIC_MODEL, st.ANTHROPIC_STREAM, _anthropic_stream),
    "anthropic-stream-async": ("anthropic", st.ANTHROPIC_MODEL, st.ANTHROPIC_STREAM, _anthropic_stream_async),
    "anthropic-create-stream": ("anthropic", st.ANTHROPIC_MODEL, st.ANTHROPIC_STREAM, _anthropic_create_stream),
    "gemini": ("gemini", st.GEMINI_MODEL, st.GEMINI, _gemini),
    "gemini-async": ("gemini", st.GEMINI_MODEL, st.GEMINI, _gemini_async),
}


@pytest.mark.parametrize("case", sorted(CALLS))
def test_each_call_is_one_client_span_under_its_agent_with_model_provider_and_tokens(
        cap: Capture, case: str) -> None:
    provider, model, (inp, out), call = CALLS[case]
    with am.agent("weather"):
        call()
    agent = cap.span("invoke_agent weather")
    (span,) = inference_spans(cap)
    attrs = span_attrs(span)
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == agent.context.span_id
    assert span.context.trace_id == agent.context.trace_id
    assert span.name == f"{attrs[sc.GEN_AI_OPERATION_NAME]} {model}"
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == model
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == provider
    assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (inp, out)
    # content is off by default
    assert not {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES} & set(attrs)
    # tokens counted once, summed over every scope: the instrumentation's own meter records them,
    # so otel_agentmon derives nothing for its spans
    tokens = tokens_over_all_scopes(cap)
    assert sum(v for (_, kind), v in tokens.items() if kind == "input") == inp, tokens
    assert sum(v for (_, kind), v in tokens.items() if kind == "output") == out, tokens
    assert {scope for scope, _ in tokens} == {span.instrumentation_scope.name}  # type: ignore[union-attr]


def _covered_by_scope(call: Callable[[], None]) -> None:
    with inference_scope():
        call()


def _covered_by_current_span(call: Callable[[], None]) -> None:
    with am.llm("framework-model", provider="framework") as llm:
        call()
        llm.record_usage(input_tokens=1, output_tokens=1)


def _covered_by_probe(call: Callable[[], None]) -> None:
    def probe() -> bool:
        return True

    register_probe(probe)
    try:
        call()
    finally:
        unregister_probe(probe)


@pytest.mark.parametrize("cover", [_covered_by_scope, _covered_by_current_span, _covered_by_probe],
                         ids=["inference_scope", "current-span", "probe"])
@pytest.mark.parametrize("case", ["openai-chat", "openai-chat-stream-async", "openai-responses", "anthropic",
                                  "anthropic-stream", "gemini-async"])
def test_the_client_layer_stands_down_when_a_framework_already_spans_the_call(
        cap: Capture, case: str, cover: Callable[[Callable[[], None]], None]) -> None:
    call = CALLS[case][3]
    with am.agent("weather"):
        cover(call)
    inference = inference_spans(cap)
    assert len(inference) == (1 if cover is _covered_by_current_span else 0), [s.name for s in cap.spans()]
    tokens = tokens_over_all_scopes(cap)
    assert set(tokens.values()) <= {1.0}, tokens  # only the framework's own call, if any, counts
    # and afterwards, outside the framework's span, the client layer spans calls again
    cap.clear()
    with am.agent("weather"):
        call()
    assert len(inference_spans(cap)) == 1


@pytest.mark.parametrize(("option", "spanned"), [
    ("none", set()), (["anthropic"], {"anthropic"}), ("openai,google-genai", {"openai", "gemini"}),
    ("auto", {"openai", "anthropic", "gemini"}),
])
def test_llm_clients_chooses_which_clients_are_instrumented(option: object, spanned: set[str]) -> None:
    found, close = capture(llm_clients=option)
    try:
        for case in ("openai-chat", "anthropic", "gemini"):
            CALLS[case][3]()
        assert {span_attrs(s)[sc.GEN_AI_PROVIDER_NAME] for s in inference_spans(found)} == spanned
    finally:
        close()


def test_the_environment_variable_chooses_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMON_LLM_CLIENTS", "anthropic")
    found, close = capture()
    try:
        _openai_chat()
        _anthropic()
        assert [span_attrs(s)[sc.GEN_AI_PROVIDER_NAME] for s in inference_spans(found)] == ["anthropic"]
    finally:
        close()


def test_shutdown_uninstruments_what_configure_instrumented() -> None:
    from openai.resources.chat.completions import Completions

    original = vars(Completions)["create"]
    found, close = capture()
    assert vars(Completions)["create"] is not original
    close()
    assert vars(Completions)["create"] is original
    _openai_chat()
    assert inference_spans(found) == []


def test_a_client_the_application_instrumented_is_left_to_it() -> None:
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    theirs = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(theirs))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    try:
        found, close = capture()
        try:
            assert found.monitor._llm_clients is not None
            assert found.monitor._llm_clients.how["openai"] == "already instrumented"
            _openai_chat()
            assert inference_spans(found) == []  # not instrumented a second time
            assert len(theirs.get_finished_spans()) == 1
        finally:
            close()
        assert OpenAIInstrumentor().is_instrumented_by_opentelemetry  # still theirs after our shutdown
    finally:
        OpenAIInstrumentor().uninstrument()


@pytest.mark.parametrize(("env", "arg", "captured"), [
    (None, "SPAN_ONLY", True), ("NO_CONTENT", "SPAN_ONLY", False), ("SPAN_ONLY", None, True), (None, None, False),
])
def test_content_capture_follows_capture_content_and_never_overrides_the_users_variable(
        monkeypatch: pytest.MonkeyPatch, env: str | None, arg: str | None, captured: bool) -> None:
    if env is None:
        monkeypatch.delenv(sc.ENV_CAPTURE_CONTENT, raising=False)
    else:
        monkeypatch.setenv(sc.ENV_CAPTURE_CONTENT, env)
    options: dict[str, Any] = {"capture_content": arg} if arg else {}
    found, close = capture(**options)
    try:
        _openai_chat()
        (span,) = inference_spans(found)
        assert (sc.GEN_AI_INPUT_MESSAGES in span_attrs(span)) is captured
    finally:
        close()
    import os

    assert os.environ.get(sc.ENV_CAPTURE_CONTENT) == env  # lent only while instrumenting


def test_a_client_without_its_instrumentation_is_one_warning_saying_what_to_install(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    missing = dataclasses.replace(llm_clients.SPECS["openai"], instrumentor="not_installed_instrumentation:X")
    monkeypatch.setitem(llm_clients.SPECS, "openai", missing)
    with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        found, close = capture()
        try:
            _openai_chat()
            _openai_chat()
            assert inference_spans(found) == []
        finally:
            close()
    hints = [r.getMessage() for r in caplog.records if "pip install 'otel_agentmon[openai]'" in r.getMessage()]
    assert len(hints) == 1, hints


def test_our_derived_token_metric_next_to_the_instrumentations_own_gives_no_view_conflict_warning(
        cap: Capture, caplog: pytest.LogCaptureFixture) -> None:
    """Two instruments named gen_ai.client.token.usage in different meters are two metrics (the scope
    is part of the identity); the SDK's warning that ignores the scope is not shown."""
    with caplog.at_level(logging.WARNING):
        with am.agent("weather"):
            _openai_chat()  # recorded by the official instrumentation's meter
            with am.llm("framework-model", provider="framework") as llm:  # derived by us
                llm.record_usage(input_tokens=3, output_tokens=2)
        tokens = tokens_over_all_scopes(cap)
    assert tokens[("otel_agentmon", "input")] == 3 and tokens[("opentelemetry.instrumentation.genai.openai",
                                                              "input")] == st.OPENAI_CHAT[0]
    assert not [r for r in caplog.records if "conflicting metrics identities" in r.getMessage()]


def test_a_client_version_outside_the_instrumentations_range_is_left_alone_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor

    monkeypatch.setattr(GoogleGenAiSdkInstrumentor, "instrumentation_dependencies",
                        lambda self: ("google-genai >= 99",))  # as google-genai 3.x meets the 1.3b0 range
    with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        found, close = capture()
        try:
            assert found.monitor._llm_clients is not None
            assert found.monitor._llm_clients.how["google-genai"] == "version not supported"
            _gemini()
            _openai_chat()
            assert [span_attrs(s)[sc.GEN_AI_PROVIDER_NAME] for s in inference_spans(found)] == ["openai"]
        finally:
            close()
    warned = [r.getMessage() for r in caplog.records if "opentelemetry-instrumentation-google-genai" in r.getMessage()]
    assert len(warned) == 1 and "google-genai >= 99" in warned[0], warned


def test_no_event_record_per_call_by_default_whatever_an_instrumentation_sets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """google-genai's instrumentation sets OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT=true process-wide;
    with content off no client emits a gen_ai.client.inference.operation.details record per call."""
    import os

    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", raising=False)
    found, close = capture()
    try:
        assert "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT" not in os.environ
        _gemini()
        _openai_chat()
        assert len(inference_spans(found)) == 2
        assert [r for r in found.logs() if r.log_record.event_name == sc.EVENT_INFERENCE_DETAILS] == []
    finally:
        close()
