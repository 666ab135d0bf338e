"""LlamaIndex model calls as inference spans (imports llama_index.core).

LlamaIndex reports every chat and completion call of any ``LLM`` class (OpenAI, Anthropic,
Ollama, a custom or mock one) on its instrumentation dispatcher: ``LLMChatStartEvent`` /
``LLMChatEndEvent`` (``LLMCompletion*`` for completions), each carrying the dispatcher span id
of the call. A streamed call ends with the stream (its end event comes after the last chunk);
a failed stream reports an ``ExceptionEvent``; a call that raises before streaming is reported
by the dispatcher's span drop, which carries the exception. One span per call:
``chat {model}`` / ``text_completion {model}`` (CLIENT) with provider and token usage, under
the span current where the call starts (the agent's, from the official instrumentation).

While the call runs, ``inside_inference()`` is true (a registered probe), so an LLM client
instrumentation underneath (openai, anthropic) adds no second span for it.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index_instrumentation import get_dispatcher  # what llama_index.core.instrumentation re-exports
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import PrivateAttr

from .._core.guard import report_internal_error
from .._names import semconv as sc
from .._spans.inference_scope import register_probe, unregister_probe
from .._spans.llm import record_llm_messages, record_llm_usage
from ._base import SpanTable

#: LLM class names (``class_name()``, lower case) -> gen_ai.provider.name, by substring.
_PROVIDERS: Final = (("azure_openai", "azure.ai.openai"), ("openai", "openai"), ("anthropic", "anthropic"),
                     ("bedrock", "aws.bedrock"), ("vertex", "gcp.vertex_ai"), ("gemini", "gcp.gemini"),
                     ("mistral", "mistral_ai"), ("groq", "groq"), ("cohere", "cohere"), ("deepseek", "deepseek"))
_INPUT_KEYS: Final = ("prompt_tokens", "input_tokens")
_OUTPUT_KEYS: Final = ("completion_tokens", "output_tokens")
#: The dispatcher span id of the model call running in this context (see ``probe``).
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentmon_llama_index_llm", default=None)


def _provider(model_dict: Mapping[str, Any]) -> str | None:
    name = str(model_dict.get("class_name") or "").lower()
    return next((p for key, p in _PROVIDERS if key in name), None)


def _model(model_dict: Mapping[str, Any]) -> str:
    for key in ("model", "model_name", "model_id", "engine"):
        value = model_dict.get(key)
        if isinstance(value, str) and value:
            return value
    name = model_dict.get("class_name")
    return name if isinstance(name, str) and name else "llm"


def _agent() -> str | None:
    """The agent whose span is current (the official instrumentation's ``invoke_agent``)."""
    attributes = getattr(trace.get_current_span(), "attributes", None)
    name = attributes.get(sc.GEN_AI_AGENT_NAME) if isinstance(attributes, Mapping) else None
    return name if isinstance(name, str) else None


def _number(source: Any, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = source.get(key) if isinstance(source, Mapping) else getattr(source, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _usage(response: Any) -> tuple[int | None, int | None]:
    """Token counts of a ``ChatResponse``/``CompletionResponse``: ``additional_kwargs`` (how
    llama-index-llms-openai reports them), else the provider's raw response ``usage``."""
    extra = getattr(response, "additional_kwargs", None) or {}
    inp, out = _number(extra, _INPUT_KEYS), _number(extra, _OUTPUT_KEYS)
    if inp is None and out is None:
        raw = getattr(response, "raw", None)
        usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
        if usage is not None:
            inp, out = _number(usage, _INPUT_KEYS), _number(usage, _OUTPUT_KEYS)
    return inp, out


class LLMSpans:
    """The event handler and span handler that turn model calls into inference spans."""

    def __init__(self, tracer: trace.Tracer, peer: Callable[[], str | None], on_peer: Callable[[str], None]) -> None:
        self.table = SpanTable(tracer)
        self._peer = peer
        self._on_peer = on_peer
        self.events = _Events().bind(self)
        self.drops = _Drops().bind(self)

    def probe(self) -> bool:
        """Inside a model call we span (for the LLM-client instrumentations underneath)."""
        key = _current.get()
        return key is not None and self.table.get(key) is not None

    def install(self) -> None:
        root = get_dispatcher()
        root.add_event_handler(self.events)
        root.add_span_handler(self.drops)
        register_probe(self.probe)

    def remove(self) -> None:
        unregister_probe(self.probe)
        root = get_dispatcher()
        if self.events in root.event_handlers:
            root.event_handlers.remove(self.events)
        if self.drops in root.span_handlers:
            root.span_handlers.remove(self.drops)

    # --- events -------------------------------------------------------------------------------
    def start(self, event: LLMChatStartEvent | LLMCompletionStartEvent) -> None:
        key = event.span_id
        if not key or self.table.get(key) is not None:
            return
        peer = self._peer()
        if peer is not None:
            self._on_peer(peer)
            return
        chat = isinstance(event, LLMChatStartEvent)
        operation = sc.OP_CHAT if chat else sc.OP_TEXT_COMPLETION
        model_dict = event.model_dict or {}
        model = _model(model_dict)
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_REQUEST_MODEL: model}
        provider = _provider(model_dict)
        if provider is not None:
            attrs[sc.GEN_AI_PROVIDER_NAME] = provider
        entry = self.table.start(key, None, f"{operation} {model}", SpanKind.CLIENT, attrs, agent=_agent())
        if isinstance(event, LLMChatStartEvent):
            record_llm_messages(input=event.messages, span=entry.span)
        else:
            record_llm_messages(input=[{"role": "user", "content": event.prompt}], span=entry.span)
        _current.set(key)

    def end(self, key: str | None, response: Any) -> None:
        entry = self.table.get(key)
        if entry is None:
            return
        inp, out = _usage(response)
        message = getattr(response, "message", None)
        model = (getattr(response, "raw", None) or {})
        response_model = model.get("model") if isinstance(model, Mapping) else getattr(model, "model", None)
        record_llm_usage(input_tokens=inp, output_tokens=out, span=entry.span,
                         response_model=response_model if isinstance(response_model, str) else None)
        if message is not None:
            record_llm_messages(output=[message], span=entry.span)
        elif response is not None:
            record_llm_messages(output=[{"role": "assistant", "content": getattr(response, "text", None)}],
                                span=entry.span)
        self._close(key)

    def fail(self, key: str | None, error: BaseException | None) -> None:
        if self.table.get(key) is not None:
            self._close(key, error)

    def _close(self, key: str | None, error: BaseException | None = None) -> None:
        self.table.end(key, error=error)
        if _current.get() == key:
            _current.set(None)


class _Events(BaseEventHandler):
    _owner: Any = PrivateAttr(default=None)

    def bind(self, owner: LLMSpans) -> _Events:
        self._owner = owner
        return self

    @classmethod
    def class_name(cls) -> str:
        return "AgentmonLLMEvents"

    def handle(self, event: BaseEvent, **kwargs: Any) -> Any:
        try:
            if isinstance(event, (LLMChatStartEvent, LLMCompletionStartEvent)):
                self._owner.start(event)
            elif isinstance(event, (LLMChatEndEvent, LLMCompletionEndEvent)):
                self._owner.end(event.span_id, event.response)
            elif isinstance(event, ExceptionEvent):
                self._owner.fail(event.span_id, event.exception)
        except Exception:  # noqa: BLE001
            report_internal_error("llama_index event")


class _Drops(BaseSpanHandler[Any]):
    """Sees a model call that raised (the dispatcher drops its span with the exception)."""

    _owner: Any = PrivateAttr(default=None)

    def bind(self, owner: LLMSpans) -> _Drops:
        self._owner = owner
        return self

    @classmethod
    def class_name(cls) -> str:
        return "AgentmonLLMDrops"

    def new_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                 parent_span_id: str | None = None, tags: dict[str, Any] | None = None, **kwargs: Any) -> None:
        return None

    def prepare_to_exit_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                             result: Any | None = None, **kwargs: Any) -> None:
        return None

    def prepare_to_drop_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                             err: BaseException | None = None, **kwargs: Any) -> None:
        try:
            self._owner.fail(id_, err)
        except Exception:  # noqa: BLE001
            report_internal_error("llama_index span drop")
