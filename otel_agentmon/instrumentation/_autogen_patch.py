"""What ``AutoGenInstrumentor`` installs (imports autogen-core and autogen-agentchat).

AutoGen's own spans come from three helpers, ``trace_invoke_agent_span``,
``trace_create_agent_span`` and ``trace_tool_span``, which the agent, team and tool modules
import by name. We replace those names in the modules that use them, so each agent turn and
tool call gets one span (ours, in place of AutoGen's, never both; no ``create_agent`` span for
building an agent object), and we add what AutoGen does not report:

* every team run (``BaseGroupChat.run_stream``, which ``run`` also goes through):
  ``invoke_workflow {team.name}``, the parent of its agents' turns;
* every model call (``create`` / ``create_stream`` of ``ChatCompletionClient`` and of each
  subclass that defines them, including ones defined later): ``chat {model}`` (CLIENT) with the
  token usage of the ``CreateResult``. A client wrapping another (a cache, a recorder) gives one
  span: the outermost, by the rule of ``_spans/inference_scope.py``, and the span is the current
  one while the client works, so an LLM-client instrumentation underneath adds none either.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import autogen_agentchat.agents._base_chat_agent as base_chat_agent
import autogen_agentchat.teams._group_chat._chat_agent_container as agent_container
import autogen_core.tools._base as tools_base
from autogen_agentchat.teams._group_chat._base_group_chat import BaseGroupChat
from autogen_core.models import ChatCompletionClient, CreateResult
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .._core import state as _state
from .._core.guard import report_internal_error
from .._names import semconv as sc
from .._spans.inference_scope import inside_inference
from .._spans.ops import record_error
from .._spans.sanitize import clean_attributes, clean_name

_MISSING = object()
#: Provider by client class (the first of a client's MRO found here).
_PROVIDERS = {"AzureOpenAIChatCompletionClient": "azure.ai.openai", "BaseOpenAIChatCompletionClient": "openai",
              "AnthropicBedrockChatCompletionClient": "aws.bedrock", "BaseAnthropicChatCompletionClient": "anthropic",
              "BaseOllamaChatCompletionClient": "ollama", "AzureAIChatCompletionClient": "azure.ai.inference"}


class Patcher:
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self.patched: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original, wrapper)
        self.wrappers: set[Any] = set()

    def _set(self, owner: Any, name: str, wrapper: Any) -> None:
        original = owner.__dict__.get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name, _MISSING)
        setattr(owner, name, wrapper)
        self.patched.append((owner, name, original, wrapper))

    def install(self) -> None:
        self._set(base_chat_agent, "trace_create_agent_span", _no_span)
        self._set(base_chat_agent, "trace_invoke_agent_span", self.invoke_agent_span)
        self._set(agent_container, "trace_invoke_agent_span", self.invoke_agent_span)
        self._set(tools_base, "trace_tool_span", self.tool_span)
        self._set(BaseGroupChat, "run_stream", self._wrap_team(BaseGroupChat.__dict__["run_stream"]))
        for cls in _with_own(ChatCompletionClient, "create", "create_stream"):
            self._wrap_client_class(cls)
        patcher = self
        original_hook = ChatCompletionClient.__dict__.get("__init_subclass__")

        def init_subclass(cls: Any, /, **kwargs: Any) -> None:
            if original_hook is not None:
                original_hook.__get__(None, cls)(**kwargs)
            else:
                super(ChatCompletionClient, cls).__init_subclass__(**kwargs)  # type: ignore[misc]  # cls is a subclass
            try:
                patcher._wrap_client_class(cls)
            except Exception:  # noqa: BLE001
                report_internal_error("autogen model client subclass")

        self._set(ChatCompletionClient, "__init_subclass__", classmethod(init_subclass))

    def remove(self) -> None:
        for owner, name, original, wrapper in reversed(self.patched):
            current = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
            if current is not wrapper:
                continue  # replaced since by someone else: theirs now
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self.patched.clear()

    # --- AutoGen's span helpers, ours instead ----------------------------------------------------
    @contextlib.contextmanager
    def _span(self, name: str, attrs: dict[str, Any], parent: trace.Span | None,
              agent: str | None) -> Iterator[trace.Span]:
        ctx = trace.set_span_in_context(parent) if parent is not None else otel_context.get_current()
        inherited = otel_context.get_value(_state.AGENT_KEY, ctx)
        if agent is None and isinstance(inherited, str):
            attrs[sc.GEN_AI_AGENT_NAME] = inherited
        span = self.tracer.start_span(clean_name(name), ctx, SpanKind.INTERNAL, clean_attributes(attrs))
        inner = trace.set_span_in_context(span, ctx)
        if agent is not None:
            inner = otel_context.set_value(_state.AGENT_KEY, agent, inner)
        token = otel_context.attach(inner)
        try:
            yield span
        except Exception as exc:
            record_error(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def invoke_agent_span(self, agent_name: str, *, tracer: Any = None, parent: trace.Span | None = None,
                          agent_id: str | None = None,
                          agent_description: str | None = None) -> contextlib.AbstractContextManager[trace.Span]:
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: agent_name}
        if agent_id is not None:
            attrs[sc.GEN_AI_AGENT_ID] = agent_id
        if agent_description:
            attrs[sc.GEN_AI_AGENT_DESCRIPTION] = agent_description
        return self._span(f"{sc.OP_INVOKE_AGENT} {agent_name}", attrs, parent, agent_name)

    def tool_span(self, tool_name: str, *, tracer: Any = None, parent: trace.Span | None = None,
                  tool_description: str | None = None,
                  tool_call_id: str | None = None) -> contextlib.AbstractContextManager[trace.Span]:
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: tool_name,
                                 sc.GEN_AI_TOOL_TYPE: "function"}
        if tool_description:
            attrs[sc.GEN_AI_TOOL_DESCRIPTION] = tool_description
        if tool_call_id is not None:
            attrs[sc.GEN_AI_TOOL_CALL_ID] = tool_call_id
        return self._span(f"{sc.OP_EXECUTE_TOOL} {tool_name}", attrs, parent, None)

    # --- teams ----------------------------------------------------------------------------------
    def _wrap_team(self, run_stream: Callable[..., Any]) -> Callable[..., Any]:
        patcher = self

        @functools.wraps(run_stream)
        def traced_run_stream(team: Any, *args: Any, **kwargs: Any) -> Any:
            stream = run_stream(team, *args, **kwargs)
            try:
                name = str(getattr(team, "name", None) or type(team).__name__)
                attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW, sc.GEN_AI_WORKFLOW_NAME: name}
                span = patcher.tracer.start_span(clean_name(f"{sc.OP_INVOKE_WORKFLOW} {name}"), None,
                                                 SpanKind.INTERNAL, clean_attributes(attrs))
            except Exception:  # noqa: BLE001
                report_internal_error("autogen team start")
                return stream
            return _in_span(stream, span, trace.set_span_in_context(span), None)

        self.wrappers.add(traced_run_stream)
        return traced_run_stream

    # --- model clients --------------------------------------------------------------------------
    def _wrap_client_class(self, cls: type) -> None:
        if "create" in cls.__dict__ and cls.__dict__["create"] not in self.wrappers:
            self._set(cls, "create", self._wrap_create(cls.__dict__["create"]))
        if "create_stream" in cls.__dict__ and cls.__dict__["create_stream"] not in self.wrappers:
            self._set(cls, "create_stream", self._wrap_create_stream(cls.__dict__["create_stream"]))

    def _start_chat(self, client: Any) -> tuple[trace.Span, otel_context.Context] | None:
        try:
            if inside_inference():
                return None  # an outer layer (a wrapping client, a framework) already spans this call
            create_args = getattr(client, "_create_args", None)
            model = create_args.get("model") if isinstance(create_args, dict) else None
            attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT}
            if isinstance(model, str) and model:
                attrs[sc.GEN_AI_REQUEST_MODEL] = model
            provider = next((_PROVIDERS[c.__name__] for c in type(client).__mro__ if c.__name__ in _PROVIDERS), None)
            if provider is not None:
                attrs[sc.GEN_AI_PROVIDER_NAME] = provider
            parent = otel_context.get_current()
            agent = otel_context.get_value(_state.AGENT_KEY, parent)
            if isinstance(agent, str):
                attrs[sc.GEN_AI_AGENT_NAME] = agent
            name = f"{sc.OP_CHAT} {model}" if isinstance(model, str) and model else sc.OP_CHAT
            span = self.tracer.start_span(clean_name(name), parent, SpanKind.CLIENT, clean_attributes(attrs))
            return span, trace.set_span_in_context(span, parent)
        except Exception:  # noqa: BLE001
            report_internal_error("autogen model call start")
            return None

    def _wrap_create(self, create: Callable[..., Any]) -> Callable[..., Any]:
        patcher = self

        @functools.wraps(create)
        async def traced_create(client: Any, *args: Any, **kwargs: Any) -> Any:
            started = patcher._start_chat(client)
            if started is None:
                return await create(client, *args, **kwargs)
            span, ctx = started
            token = otel_context.attach(ctx)
            try:
                result = await create(client, *args, **kwargs)
            except BaseException as exc:
                if isinstance(exc, Exception):
                    record_error(span, exc)
                span.end()
                raise
            finally:
                otel_context.detach(token)
            _record_result(span, result)
            span.end()
            return result

        self.wrappers.add(traced_create)
        return traced_create

    def _wrap_create_stream(self, create_stream: Callable[..., Any]) -> Callable[..., Any]:
        patcher = self

        @functools.wraps(create_stream)
        def traced_create_stream(client: Any, *args: Any, **kwargs: Any) -> Any:
            started = patcher._start_chat(client)
            if started is None:
                return create_stream(client, *args, **kwargs)
            span, ctx = started
            try:
                stream = create_stream(client, *args, **kwargs)
            except Exception as exc:
                record_error(span, exc)
                span.end()
                raise
            return _in_span(stream, span, ctx, _record_result)

        self.wrappers.add(traced_create_stream)
        return traced_create_stream


async def _in_span(stream: Any, span: trace.Span, ctx: otel_context.Context,
                   on_item: Callable[[trace.Span, Any], None] | None) -> AsyncIterator[Any]:
    """Iterate ``stream`` with ``ctx`` current inside each step (never across our own yield, so
    no context token outlives the step that set it); ``span`` ends with the stream."""
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                break
            finally:
                otel_context.detach(token)
            if on_item is not None:
                on_item(span, item)
            yield item
    except Exception as exc:
        record_error(span, exc)
        raise
    finally:
        try:
            await stream.aclose()
        finally:
            span.end()


@contextlib.contextmanager
def _no_span(*args: Any, **kwargs: Any) -> Iterator[trace.Span]:
    """In place of AutoGen's ``create_agent`` span: building an agent object in process is not
    the remote agent creation the conventions' ``create_agent`` stands for, and its span would
    be a trace of its own beside every run."""
    yield trace.INVALID_SPAN


def _record_result(span: trace.Span, result: Any) -> None:
    if not isinstance(result, CreateResult):
        return
    try:
        attrs: dict[str, Any] = {}
        usage = result.usage
        if usage is not None and not result.cached:  # a cached answer spent no tokens now
            attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = int(usage.prompt_tokens)
            attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = int(usage.completion_tokens)
        if isinstance(result.finish_reason, str):
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [result.finish_reason]
        span.set_attributes(clean_attributes(attrs))
    except Exception:  # noqa: BLE001
        report_internal_error("autogen model usage")


def _with_own(base: type, *names: str) -> list[type]:
    """Every subclass of ``base`` (transitively) that defines one of ``names`` itself."""
    seen: list[type] = []
    todo = [base]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in seen if cls is not base and any(n in cls.__dict__ for n in names)]
