"""Record an LLM call made inside an agent, per the GenAI inference-span conventions.

::

    with agentmon.llm("gpt-4o", provider="openai") as call:
        reply = client.chat(...)
        call.record_usage(input_tokens=reply.usage.prompt_tokens,
                          output_tokens=reply.usage.completion_tokens,
                          response_model=reply.model)

The span is ``{operation} {model}`` (CLIENT). Token usage lands on the span and, through the
metric derivation, on ``gen_ai.client.token.usage`` and the enclosing task's token count.
Message content is recorded only when content capture is on
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from . import _semconv as sc
from . import _state
from ._guard import report_internal_error
from ._sanitize import clean_attributes, clean_name, clean_str, to_json
from ._spans import SpanHandle, _Op


class LLMCall(SpanHandle):
    """Handle on an inference span."""

    __slots__ = ()

    def record_usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None,
                     response_model: str | None = None, response_id: str | None = None,
                     finish_reasons: Sequence[str] | None = None) -> None:
        """Token counts as billed (input includes cached tokens), response model and reasons."""
        record_llm_usage(input_tokens=input_tokens, output_tokens=output_tokens, response_model=response_model,
                         response_id=response_id, finish_reasons=finish_reasons, span=self.span)

    def record_messages(self, *, input: object = None, output: object = None,  # noqa: A002
                        system: object = None) -> None:
        """Message content; dropped unless content capture is enabled."""
        record_llm_messages(input=input, output=output, system=system, span=self.span)


def _valid_tokens(value: int | None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        return None
    return value


def record_llm_usage(*, input_tokens: int | None = None, output_tokens: int | None = None,
                     response_model: str | None = None, response_id: str | None = None,
                     finish_reasons: Sequence[str] | None = None, span: trace.Span | None = None) -> None:
    """Record token usage on ``span`` (default: the current span). Never raises."""
    try:
        target = span if span is not None else trace.get_current_span()
        attrs: dict[str, Any] = {}
        if (n := _valid_tokens(input_tokens)) is not None:
            attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = n
        if (n := _valid_tokens(output_tokens)) is not None:
            attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = n
        if response_model is not None:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = clean_name(response_model)
        if response_id is not None:
            attrs[sc.GEN_AI_RESPONSE_ID] = clean_str(response_id)
        if finish_reasons is not None:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [clean_name(r) for r in finish_reasons]
        target.set_attributes(attrs)
    except Exception:  # noqa: BLE001
        report_internal_error("record_llm_usage")


def record_llm_messages(*, input: object = None, output: object = None,  # noqa: A002
                        system: object = None, span: trace.Span | None = None) -> None:
    """Record message content per the capture mode; a no-op by default. Never raises."""
    if _state.capture_content == "NO_CONTENT":
        return
    try:
        target = span if span is not None else trace.get_current_span()
        attrs: dict[str, Any] = {}
        if input is not None:
            attrs[sc.GEN_AI_INPUT_MESSAGES] = to_json(input)
        if output is not None:
            attrs[sc.GEN_AI_OUTPUT_MESSAGES] = to_json(output)
        if system is not None:
            attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = to_json(system)
        if not attrs:
            return
        if _state.content_on_spans():
            target.set_attributes(attrs)
        if _state.content_on_events():
            _state.event_logger.emit(event_name=sc.EVENT_INFERENCE_DETAILS, attributes=attrs,
                                     context=trace.set_span_in_context(target))
    except Exception:  # noqa: BLE001
        report_internal_error("record_llm_messages")


def _valid_port(value: object) -> int | None:
    try:
        port = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None
    return port if 0 < port < 65536 else None


class _LLMOp(_Op):
    __slots__ = ()

    def __enter__(self) -> LLMCall:
        handle = super().__enter__()
        return LLMCall(handle.span)

    async def __aenter__(self) -> LLMCall:
        return self.__enter__()


def llm(model: str, *, provider: str, operation: str = sc.OP_CHAT, server_address: str | None = None,
        server_port: int | None = None, attributes: Mapping[str, object] | None = None) -> _LLMOp:
    """An inference call: ``{operation} {model}`` (CLIENT), as decorator or context manager.

    ``provider`` is a ``gen_ai.provider.name`` value (``openai``, ``anthropic``, ...).
    """
    model_name = clean_name(model)
    op_name = clean_name(operation)
    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: op_name, sc.GEN_AI_PROVIDER_NAME: clean_name(provider),
                             sc.GEN_AI_REQUEST_MODEL: model_name}
    if server_address is not None:
        attrs[sc.SERVER_ADDRESS] = clean_name(server_address)
        port = _valid_port(server_port)
        if port is not None:
            attrs[sc.SERVER_PORT] = port
    if attributes:
        attrs.update(clean_attributes(attributes))
    return _LLMOp(f"{op_name} {model_name}", attrs, kind=SpanKind.CLIENT)
