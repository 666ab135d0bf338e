"""The ``agents.tracing.TracingProcessor`` behind ``OpenAIAgentsInstrumentor`` (imports the SDK).

The SDK calls processors synchronously, from whatever thread or task runs the agent; the SDK's
own trace and span ids (``trace_id``, ``span_id``, ``parent_id``) build our tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agents.tracing import Span, Trace, TracingProcessor
from agents.tracing.span_data import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    ResponseSpanData,
)
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .. import _semconv as sc
from .._guard import guarded
from .._llm import record_llm_messages, record_llm_usage
from .._sanitize import clean_name, to_json
from ._base import SpanTable, content_on_spans, mark_error

PROVIDER = "openai"
_MAX_SKIPPED = 10_000


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
        self._skipped: set[str] = set()  # trace ids left to a peer instrumentation

    def _ours(self, trace_id: str, parent_key: str | None) -> bool:
        if self.table.get(parent_key) is not None:
            return True
        if trace_id in self._skipped:
            return False
        peer = self._peer(self)
        if peer is None:
            return True
        if len(self._skipped) >= _MAX_SKIPPED:
            self._skipped.clear()
        self._skipped.add(trace_id)
        self._on_peer(peer)
        return False

    @guarded(None)
    def on_trace_start(self, trace: Trace) -> None:
        if not self._ours(trace.trace_id, None):
            return
        name = clean_name(trace.name or "Agent workflow")
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW, sc.GEN_AI_WORKFLOW_NAME: name}
        group = getattr(trace, "group_id", None)
        if isinstance(group, str) and group:
            attrs[sc.GEN_AI_CONVERSATION_ID] = group
        self.table.start(trace.trace_id, None, f"{sc.OP_INVOKE_WORKFLOW} {name}", SpanKind.INTERNAL, attrs)

    @guarded(None)
    def on_trace_end(self, trace: Trace) -> None:
        self._skipped.discard(trace.trace_id)
        self.table.end(trace.trace_id)

    @guarded(None)
    def on_span_start(self, span: Span[Any]) -> None:
        parent_key = span.parent_id or span.trace_id
        data = span.span_data
        key = span.span_id
        if not _shown(data):
            # task, turn, handoff, guardrail, custom ...: no span; their children hang under ours
            self.table.alias(key, parent_key)
            return
        if not self._ours(span.trace_id, parent_key):
            return
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
            self.table.start(key, parent_key, name, SpanKind.CLIENT, attrs)
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
            if error:
                message = error.get("message") if isinstance(error, Mapping) else None
                mark_error(entry.span, message if isinstance(message, str) and message else "_OTHER")
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

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


def _shown(data: object) -> bool:
    return isinstance(data, (AgentSpanData, GenerationSpanData, ResponseSpanData, FunctionSpanData))
