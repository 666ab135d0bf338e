"""The langchain-core callback handler behind ``LangGraphInstrumentor`` (imports langchain-core).

Every method body is guarded: a failure here is logged (rate-limited) and never reaches
LangChain, which would otherwise log it on every callback or, with ``raise_error``, raise it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .._core.guard import guarded
from .._names import semconv as sc
from .._spans.llm import record_llm_messages, record_llm_usage
from .._spans.sanitize import clean_str, to_json
from ._base import SpanTable, content_on_spans

#: Exceptions LangGraph uses for control flow (interrupts, commands to a parent graph).
_CONTROL_FLOW = ("GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand")
_AGENT_CHAINS = ("AgentExecutor",)  # langchain's classic agent loop
_GRAPH_STEP = "graph:step:"  # LangGraph tags each node run of a graph with its step
_MODEL_KEYS = ("model", "model_name", "model_id", "deployment_name")
#: The model run we spanned last in this context (callbacks run inline, in the model call's
#: context); the inference probe reads it. Never reset: a run that ended is no longer in the table.
_MODEL_RUN: ContextVar[UUID | None] = ContextVar("otel_agentmon_langchain_model_run", default=None)


def _is_control_flow(error: BaseException) -> bool:
    return any(cls.__name__ in _CONTROL_FLOW for cls in type(error).__mro__)


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        found = serialized.get("name")
        if isinstance(found, str) and found:
            return found
        ident = serialized.get("id")
        if isinstance(ident, list) and ident and isinstance(ident[-1], str):
            return ident[-1]
    return default


def _model_name(serialized: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None,
                kwargs: Mapping[str, Any]) -> str:
    params = kwargs.get("invocation_params")
    if isinstance(params, Mapping):
        for key in _MODEL_KEYS:
            value = params.get(key)
            if isinstance(value, str) and value:
                return value
    if metadata:
        value = metadata.get("ls_model_name")
        if isinstance(value, str) and value:
            return value
    if serialized:
        inner = serialized.get("kwargs")
        if isinstance(inner, Mapping):
            for key in _MODEL_KEYS:
                value = inner.get(key)
                if isinstance(value, str) and value:
                    return value
    return _run_name(serialized, kwargs, "unknown")


def _messages(batches: Sequence[Sequence[BaseMessage]]) -> list[dict[str, object]]:
    return [{"role": m.type, "content": m.content} for batch in batches for m in batch]


def _usage(response: LLMResult) -> tuple[int | None, int | None]:
    inp = out = 0
    found = False
    for batch in response.generations:
        for gen in batch:
            usage = getattr(getattr(gen, "message", None), "usage_metadata", None)
            if isinstance(usage, Mapping):
                inp += int(usage.get("input_tokens") or 0)
                out += int(usage.get("output_tokens") or 0)
                found = True
    if not found and isinstance(response.llm_output, Mapping):
        usage = response.llm_output.get("token_usage") or response.llm_output.get("usage")
        if isinstance(usage, Mapping):
            inp = int(usage.get("prompt_tokens", usage.get("input_tokens")) or 0)
            out = int(usage.get("completion_tokens", usage.get("output_tokens")) or 0)
            found = True
    return (inp, out) if found else (None, None)


def _response_details(response: LLMResult) -> tuple[str | None, list[str], list[object]]:
    model: str | None = None
    if isinstance(response.llm_output, Mapping):
        value = response.llm_output.get("model_name") or response.llm_output.get("model")
        model = value if isinstance(value, str) else None
    reasons: list[str] = []
    outputs: list[object] = []
    for batch in response.generations:
        for gen in batch:
            info = gen.generation_info or {}
            message = getattr(gen, "message", None)
            meta = getattr(message, "response_metadata", None) or {}
            reason = info.get("finish_reason") or meta.get("finish_reason") or meta.get("stop_reason")
            if isinstance(reason, str):
                reasons.append(reason)
            if model is None:
                value = meta.get("model_name") or meta.get("model")
                model = value if isinstance(value, str) else None
            if message is not None:
                outputs.append({"role": "assistant", "content": message.content,
                                "tool_calls": getattr(message, "tool_calls", None) or []})
            else:
                outputs.append({"role": "assistant", "content": gen.text})
    return model, reasons, outputs


class AgentmonCallbackHandler(BaseCallbackHandler):
    """LangChain runs -> GenAI spans, parented by LangChain's run ids."""

    run_inline = True  # called in the caller's context, not in an executor, for async runs
    raise_error = False

    def __init__(self, tracer: trace.Tracer, peer: Callable[[], str | None],
                 on_peer: Callable[[str], None]) -> None:
        self.table = SpanTable(tracer)
        self._peer = peer
        self._on_peer = on_peer

    def _ours(self, parent_run_id: UUID | None) -> bool:
        """Whether to trace a run: always inside a run we trace; a new root only without a peer."""
        if self.table.get(parent_run_id) is not None:
            return True
        peer = self._peer()
        if peer is not None:
            self._on_peer(peer)
            return False
        return True

    # --- chains (graphs, nodes, LCEL) ---------------------------------------------------------
    @guarded(None)
    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: dict[str, Any] | Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, tags: list[str] | None = None,
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        name = _run_name(serialized, kwargs, "chain")
        parent = self.table.get(parent_run_id)
        if parent is not None and not parent.owner and tags and any(t.startswith(_GRAPH_STEP) for t in tags):
            # A graph step under a run we had hidden: that run is a nested graph, i.e. a sub-agent.
            sub = parent.label or "subgraph"
            self.table.promote(parent_run_id, f"{sc.OP_INVOKE_AGENT} {sub}", SpanKind.INTERNAL,
                               {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT}, agent=sub)
        if self.table.alias(run_id, parent_run_id, name) or not self._ours(parent_run_id):
            return  # nodes and inner chains: their calls hang under the enclosing span
        if (metadata or {}).get("ls_integration") == "langgraph" or name in _AGENT_CHAINS:
            self.table.start(run_id, parent_run_id, f"{sc.OP_INVOKE_AGENT} {name}", SpanKind.INTERNAL,
                             {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT}, agent=name)
        else:
            self.table.start(run_id, parent_run_id, f"{sc.OP_INVOKE_WORKFLOW} {name}", SpanKind.INTERNAL,
                             {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW, sc.GEN_AI_WORKFLOW_NAME: name})

    @guarded(None)
    def on_chain_end(self, outputs: dict[str, Any] | Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.table.end(run_id)

    @guarded(None)
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.table.end(run_id, error=None if _is_control_flow(error) else error)

    # --- retrievers: no span of their own, like inner chains -----------------------------------
    @guarded(None)
    def on_retriever_start(self, serialized: dict[str, Any], query: str, *, run_id: UUID,
                           parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self.table.alias(run_id, parent_run_id)

    @guarded(None)
    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.table.end(run_id)

    @guarded(None)
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.table.end(run_id)

    # --- models -------------------------------------------------------------------------------
    def _start_model(self, operation: str, serialized: dict[str, Any] | None, run_id: UUID,
                     parent_run_id: UUID | None, metadata: dict[str, Any] | None,
                     kwargs: Mapping[str, Any]) -> trace.Span | None:
        if not self._ours(parent_run_id):
            return None
        model = _model_name(serialized, metadata, kwargs)
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_REQUEST_MODEL: model}
        provider = (metadata or {}).get("ls_provider")
        if isinstance(provider, str) and provider:
            attrs[sc.GEN_AI_PROVIDER_NAME] = provider
        span = self.table.start(run_id, parent_run_id, f"{operation} {model}", SpanKind.CLIENT, attrs).span
        _MODEL_RUN.set(run_id)
        return span

    def inside_model_call(self) -> bool:
        """The inference probe (``_spans/inference_scope``): this context is inside a model run we
        span (a chat model calling its LLM client), so the client layer stands down."""
        run = _MODEL_RUN.get()
        return run is not None and self.table.get(run) is not None

    @guarded(None)
    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *,
                            run_id: UUID, parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        span = self._start_model(sc.OP_CHAT, serialized, run_id, parent_run_id, metadata, kwargs)
        if span is not None:
            record_llm_messages(input=_messages(messages), span=span)

    @guarded(None)
    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID,
                     parent_run_id: UUID | None = None, tags: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        span = self._start_model(sc.OP_TEXT_COMPLETION, serialized, run_id, parent_run_id, metadata, kwargs)
        if span is not None:
            record_llm_messages(input=[{"role": "user", "content": p} for p in prompts], span=span)

    @guarded(None)
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        entry = self.table.get(run_id)
        if entry is not None and entry.owner:
            inp, out = _usage(response)
            model, reasons, outputs = _response_details(response)
            record_llm_usage(input_tokens=inp, output_tokens=out, response_model=model,
                             finish_reasons=reasons or None, span=entry.span)
            record_llm_messages(output=outputs, span=entry.span)
        self.table.end(run_id)

    @guarded(None)
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.table.end(run_id, error=error)

    # --- tools --------------------------------------------------------------------------------
    @guarded(None)
    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, tags: list[str] | None = None,
                      metadata: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None,
                      **kwargs: Any) -> None:
        if not self._ours(parent_run_id):
            return
        name = _run_name(serialized, {}, "tool") if serialized else _run_name(None, kwargs, "tool")
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name,
                                 sc.GEN_AI_TOOL_TYPE: "function"}
        description = (serialized or {}).get("description")
        if isinstance(description, str) and description:
            attrs[sc.GEN_AI_TOOL_DESCRIPTION] = clean_str(description, 1024)
        call_id = kwargs.get("tool_call_id")
        if isinstance(call_id, str) and call_id:
            attrs[sc.GEN_AI_TOOL_CALL_ID] = call_id
        if content_on_spans():
            attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = to_json(inputs if inputs is not None else input_str)
        entry = self.table.start(run_id, parent_run_id, f"{sc.OP_EXECUTE_TOOL} {name}", SpanKind.INTERNAL, attrs)
        self.table.make_current(entry)  # BaseTool.run/arun report start and end from one call

    @guarded(None)
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        attrs: dict[str, Any] | None = None
        if content_on_spans():
            content = getattr(output, "content", output)
            attrs = {sc.GEN_AI_TOOL_CALL_RESULT: content if isinstance(content, str) else to_json(content)}
        self.table.end(run_id, attrs=attrs)

    @guarded(None)
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.table.end(run_id, error=None if _is_control_flow(error) else error)
