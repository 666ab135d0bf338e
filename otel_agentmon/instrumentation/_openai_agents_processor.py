"""The ``agents.tracing.TracingProcessor`` behind ``OpenAIAgentsInstrumentor`` (imports the SDK).

The SDK calls processors synchronously, from whatever thread or task runs the agent; the SDK's
own trace and span ids (``trace_id``, ``span_id``, ``parent_id``) build our tree.

Errors. The SDK records a failure on its span as a ``SpanError`` (a fixed message and some data),
never the exception. ``error.type`` must be the exception's class, so we take the exception where
the SDK has it in hand: ``SpanImpl.set_error`` is wrapped while we are instrumented, and the
exception being handled when the SDK calls it is the one that failed the span (a tool's own
exception, a model error); an agent span, and the trace, that end while an exception propagates
out of ``Runner.run`` are failed by that exception (the workflow span is ERROR). An exception the
caller was already handling when the span started is not this span's. With no exception in hand
``error.type`` is the SDK's exception class for the messages we know (``_SDK_ERRORS``), else
``_OTHER``; the message stays in the span status only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

from agents.tracing import Span, Trace, TracingProcessor, get_current_span
from agents.tracing.span_data import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    ResponseSpanData,
)
from agents.tracing.spans import SpanImpl
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .._core.guard import guarded
from .._names import semconv as sc
from .._spans.llm import record_llm_messages, record_llm_usage
from .._spans.sanitize import clean_name, to_json
from ._base import OFFICIAL_PREFIX, SpanTable, content_on_spans, mark_error

PROVIDER = "openai"
_MAX_SKIPPED = 10_000
_MAX_ERRORS: Final = 10_000
#: SDK error messages set before the SDK raises its own exception, and that exception's class.
_SDK_ERRORS: Final = {"Max turns exceeded": "agents.exceptions.MaxTurnsExceeded"}


def _tokens(usage: object, *names: str) -> int | None:
    for name in names:
        value = usage.get(name) if isinstance(usage, Mapping) else getattr(usage, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class AgentmonTracingProcessor(TracingProcessor):
    """OpenAI Agents traces and spans -> GenAI spans (workflow, agent, chat, tool)."""

    def __init__(self, tracer: trace.Tracer, peer: Callable[[object], str | None],
                 on_peer: Callable[[str], None]) -> None:
        self.table = SpanTable(tracer)
        self._peer = peer
        self._on_peer = on_peer
        self._skipped: dict[str, bool] = {}  # trace ids left to a peer -> whether the peer is the official one
        self._raised: dict[str, BaseException] = {}  # SDK span id -> the exception it failed with
        self._ambient: dict[str, BaseException] = {}  # trace/span id -> exception handled at its start

    def _remember_ambient(self, key: str) -> None:
        handled = sys.exc_info()[1]
        if handled is not None:
            if len(self._ambient) >= _MAX_ERRORS:
                self._ambient.clear()
            self._ambient[key] = handled

    def _propagating(self, key: str) -> BaseException | None:
        """The exception propagating here now, unless it was already being handled at ``key``'s start."""
        ambient = self._ambient.pop(key, None)
        exc = sys.exc_info()[1]
        return exc if isinstance(exc, Exception) and exc is not ambient else None

    def saw_error(self, span_id: str, exc: BaseException | None) -> None:
        """The SDK recorded an error on span ``span_id`` while handling ``exc`` (our set_error hook)."""
        entry = self.table.get(span_id)
        if entry is None or not entry.owner or not isinstance(exc, Exception) or exc is self._ambient.get(span_id):
            return
        if len(self._raised) >= _MAX_ERRORS:
            self._raised.clear()
        self._raised[span_id] = exc

    def _ours(self, trace_id: str, parent_key: str | None, model_call: bool = False) -> bool:
        """Whether to make a span for this SDK trace or span. Next to the official instrumentation,
        which makes no model-call span, ours still makes those (``model_call``), under its spans."""
        if self.table.get(parent_key) is not None:
            return True
        complement = self._skipped.get(trace_id)
        if complement is None:
            peer = self._peer(self)
            if peer is None:
                return True
            if len(self._skipped) >= _MAX_SKIPPED:
                self._skipped.clear()
            complement = self._skipped[trace_id] = peer.startswith(OFFICIAL_PREFIX)
            self._on_peer(peer)
        return complement and model_call

    def _agent_of(self, parent_key: str | None) -> str | None:
        """Under a parent that is not ours (the official instrumentation's agent span, current in
        the run's task), the agent that span names."""
        if self.table.get(parent_key) is not None:
            return None  # ours: the table passes its agent down
        name = (getattr(trace.get_current_span(), "attributes", None) or {}).get(sc.GEN_AI_AGENT_NAME)
        return name if isinstance(name, str) else None

    @guarded(None)
    def on_trace_start(self, trace: Trace) -> None:
        if not self._ours(trace.trace_id, None):
            return
        self._remember_ambient(trace.trace_id)
        name = clean_name(trace.name or "Agent workflow")
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW, sc.GEN_AI_WORKFLOW_NAME: name}
        group = getattr(trace, "group_id", None)
        if isinstance(group, str) and group:
            attrs[sc.GEN_AI_CONVERSATION_ID] = group
        self.table.start(trace.trace_id, None, f"{sc.OP_INVOKE_WORKFLOW} {name}", SpanKind.INTERNAL, attrs)

    @guarded(None)
    def on_trace_end(self, trace: Trace) -> None:
        self._skipped.pop(trace.trace_id, None)
        # Runner.run raising: the SDK ends its trace while the exception propagates.
        self.table.end(trace.trace_id, error=self._propagating(trace.trace_id))

    @guarded(None)
    def on_span_start(self, span: Span[Any]) -> None:
        parent_key = span.parent_id or span.trace_id
        data = span.span_data
        key = span.span_id
        if not _shown(data):
            # task, turn, handoff, guardrail, custom ...: no span; their children hang under ours
            self.table.alias(key, parent_key)
            return
        model_call = isinstance(data, (GenerationSpanData, ResponseSpanData))
        if not self._ours(span.trace_id, parent_key, model_call):
            return
        self._remember_ambient(key)
        if isinstance(data, AgentSpanData):
            name = clean_name(data.name)
            self.table.start(key, parent_key, f"{sc.OP_INVOKE_AGENT} {name}", SpanKind.INTERNAL,
                             {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT}, agent=name)
        elif isinstance(data, (GenerationSpanData, ResponseSpanData)):
            attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: PROVIDER}
            model = getattr(data, "model", None)
            if isinstance(model, str) and model:
                attrs[sc.GEN_AI_REQUEST_MODEL] = model
            name = f"{sc.OP_CHAT} {model}" if isinstance(model, str) and model else sc.OP_CHAT
            self.table.start(key, parent_key, name, SpanKind.CLIENT, attrs, agent=self._agent_of(parent_key))
        elif isinstance(data, FunctionSpanData):
            name = clean_name(data.name)
            entry = self.table.start(key, parent_key, f"{sc.OP_EXECUTE_TOOL} {name}", SpanKind.INTERNAL,
                                     {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name,
                                      sc.GEN_AI_TOOL_TYPE: "function"})
            self.table.make_current(entry)  # the SDK brackets a tool call in one `with function_span()`

    @guarded(None)
    def on_span_end(self, span: Span[Any]) -> None:
        entry = self.table.get(span.span_id)
        if entry is None:
            return
        raised = self._raised.pop(span.span_id, None)
        propagating = self._propagating(span.span_id)
        if entry.owner:
            data = span.span_data
            if isinstance(data, GenerationSpanData):
                self._end_generation(entry.span, data)
            elif isinstance(data, ResponseSpanData):
                self._end_response(entry.span, data)
            elif isinstance(data, FunctionSpanData) and content_on_spans():
                entry.span.set_attributes({sc.GEN_AI_TOOL_CALL_ARGUMENTS: to_json(data.input),
                                           sc.GEN_AI_TOOL_CALL_RESULT: to_json(data.output)})
            error = span.error
            if raised is None and (error or isinstance(data, AgentSpanData)):
                raised = propagating  # a failed model call, or a run that raises out of this agent
            if raised is not None:
                self.table.end(span.span_id, error=raised)
                return
            if error:
                message = error.get("message") if isinstance(error, Mapping) else None
                text = message if isinstance(message, str) and message else None
                mark_error(entry.span, _SDK_ERRORS.get(text or "", "_OTHER"), text)
        self.table.end(span.span_id)

    @staticmethod
    def _end_generation(span: trace.Span, data: GenerationSpanData) -> None:
        model = data.model
        if isinstance(model, str) and model:
            span.update_name(f"{sc.OP_CHAT} {clean_name(model)}")
            span.set_attribute(sc.GEN_AI_REQUEST_MODEL, clean_name(model))
        usage = data.usage or {}
        record_llm_usage(input_tokens=_tokens(usage, "input_tokens", "prompt_tokens"),
                         output_tokens=_tokens(usage, "output_tokens", "completion_tokens"), span=span)
        record_llm_messages(input=data.input, output=data.output, span=span)

    @staticmethod
    def _end_response(span: trace.Span, data: ResponseSpanData) -> None:
        response = data.response
        if response is None:
            return
        model = getattr(response, "model", None)
        if isinstance(model, str) and model:
            span.update_name(f"{sc.OP_CHAT} {clean_name(model)}")
            span.set_attribute(sc.GEN_AI_REQUEST_MODEL, clean_name(model))
        usage = getattr(response, "usage", None) or data.usage
        response_id = getattr(response, "id", None)
        record_llm_usage(input_tokens=_tokens(usage, "input_tokens"), output_tokens=_tokens(usage, "output_tokens"),
                         response_model=model if isinstance(model, str) else None,
                         response_id=response_id if isinstance(response_id, str) else None, span=span)
        record_llm_messages(input=data.input, output=getattr(response, "output", None), span=span)

    def inside_model_call(self) -> bool:
        """The inference probe (``_spans/inference_scope``): the SDK's current span is a model call
        we span, or one of a trace left to a peer instrumentation (which spans it), so the
        LLM-client layer under it stands down."""
        current = get_current_span()
        return (current is not None and isinstance(current.span_data, (GenerationSpanData, ResponseSpanData))
                and (self.table.get(current.span_id) is not None or current.trace_id in self._skipped))

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


def watch_set_error(processor: AgentmonTracingProcessor) -> Callable[[], None]:
    """Wrap the SDK's ``SpanImpl.set_error`` so ``processor`` sees the exception being handled when
    the SDK records a span error; returns the undo (which leaves a later wrapper in place)."""
    original = SpanImpl.set_error

    def set_error(self: SpanImpl[Any], error: Any) -> None:
        original(self, error)
        try:
            processor.saw_error(self.span_id, sys.exc_info()[1])
        except Exception:  # noqa: BLE001 - never into the SDK
            pass

    SpanImpl.set_error = set_error  # type: ignore[method-assign]  # patched so errors reach us; undone below

    def undo() -> None:
        if SpanImpl.__dict__.get("set_error") is set_error:
            SpanImpl.set_error = original  # type: ignore[method-assign]  # restores the method patched above

    return undo


def _shown(data: object) -> bool:
    return isinstance(data, (AgentSpanData, GenerationSpanData, ResponseSpanData, FunctionSpanData))
