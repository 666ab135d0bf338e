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

from .._core import state as _state
from .._core.guard import report_internal_error
from .._names import semconv as sc
from .ops import SpanHandle, _Op
from .sanitize import attributes_arg, count_arg, name_arg, optional_name_arg, text_arg, to_json, warn_arg


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


def _finish_reasons(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]  # one reason given on its own, not its letters
    try:
        items = list(value)  # type: ignore[call-overload]  # any iterable; a TypeError is caught below
    except Exception:  # noqa: BLE001 - not iterable
        warn_arg("record_usage", "finish_reasons", value, "a list of strings")
        return None
    reasons = [r for r in (optional_name_arg(v, "record_usage", "finish_reasons") for v in items[:64]) if r]
    return reasons or None


def record_llm_usage(*, input_tokens: int | None = None, output_tokens: int | None = None,
                     response_model: str | None = None, response_id: str | None = None,
                     finish_reasons: Sequence[str] | None = None, span: trace.Span | None = None) -> None:
    """Record token usage on ``span`` (default: the current span). Never raises.

    Each value stands alone: a bad one (a NaN or negative token count, a non-string id) is
    coerced or dropped with one rate-limited warning, and the rest is still recorded.
    """
    try:
        target = span if span is not None else trace.get_current_span()
        attrs: dict[str, Any] = {}
        for key, value, arg in ((sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens, "input_tokens"),
                                (sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens, "output_tokens")):
            if (n := count_arg(value, "record_usage", arg)) is not None:
                attrs[key] = n
        if (model := optional_name_arg(response_model, "record_usage", "response_model")) is not None:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = model
        if (rid := text_arg(response_id, "record_usage", "response_id")) is not None:
            attrs[sc.GEN_AI_RESPONSE_ID] = rid
        if (reasons := _finish_reasons(finish_reasons)) is not None:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        if attrs:
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
    if value is None:
        return None
    try:
        port = int(value) if not isinstance(value, (bool, float)) else -1  # type: ignore[call-overload]  # int() of any object; TypeError/ValueError are caught below
    except (TypeError, ValueError, OverflowError):
        port = -1
    if 0 < port < 65536:
        return port
    warn_arg("llm", "server_port", value, "a port number from 1 to 65535")
    return None


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
    model_name = name_arg(model, "llm", "model")
    op_name = name_arg(operation, "llm", "operation")
    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: op_name,
                             sc.GEN_AI_PROVIDER_NAME: name_arg(provider, "llm", "provider"),
                             sc.GEN_AI_REQUEST_MODEL: model_name}
    if (address := optional_name_arg(server_address, "llm", "server_address")) is not None:
        attrs[sc.SERVER_ADDRESS] = address
        port = _valid_port(server_port)
        if port is not None:
            attrs[sc.SERVER_PORT] = port
    attrs.update(attributes_arg(attributes, "llm"))
    return _LLMOp(f"{op_name} {model_name}", attrs, kind=SpanKind.CLIENT)
