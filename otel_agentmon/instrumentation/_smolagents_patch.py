"""The method wrappers behind ``SmolagentsInstrumentor`` (imports smolagents).

smolagents has no callback API covering model and tool calls, so we wrap methods, and keep
every original to put back exactly: ``MultiStepAgent.run`` (agent invocations, also of managed
agents), ``Tool.__call__`` (tool calls), ``generate``/``generate_stream`` of ``Model`` and of each
subclass that defines them (model calls; subclasses defined later are wrapped when they are
created), and the thread pool of the local Python executor, which runs a ``CodeAgent``'s code
in a thread without the caller's context.

smolagents runs synchronously and copies the context into its own tool threads, so each
wrapper opens its span as the current span for the duration of the call: nesting follows the
call, including managed agents and parallel tool calls.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from smolagents import MultiStepAgent, Tool
from smolagents import local_python_executor as lpe
from smolagents.models import Model

from .._core import state as _state
from .._core.guard import report_internal_error
from .._names import semconv as sc
from .._spans.llm import record_llm_messages, record_llm_usage
from .._spans.ops import record_error
from .._spans.sanitize import clean_attributes, clean_name, clean_str, to_json
from ._base import OFFICIAL_PREFIX, content_on_spans

_MISSING = object()
_PROVIDERS = {"OpenAIModel": "openai", "OpenAIServerModel": "openai", "AzureOpenAIModel": "azure.ai.openai",
              "AmazonBedrockModel": "aws.bedrock", "InferenceClientModel": "huggingface",
              "TransformersModel": "huggingface"}
#: The model classes the official smolagents instrumentation makes model-call spans for.
_OFFICIAL_MODELS = frozenset({"TransformersModel", "VLLMModel", "MLXModel"})
#: The model instance whose call is being traced here (a subclass calling super().generate()).
_in_model: contextvars.ContextVar[int | None] = contextvars.ContextVar("agentmon_smolagents_model", default=None)


class _ContextThreadPoolExecutor(ThreadPoolExecutor):
    """The local Python executor's pool, carrying the caller's context into its thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class Patcher:
    """Installs the wrappers on ``tracer``; ``peer()`` names another instrumentation to stand down for."""

    def __init__(self, tracer: trace.Tracer, peer: Callable[[Patcher], str | None],
                 on_peer: Callable[[str], None]) -> None:
        self.tracer = tracer
        self._peer = peer
        self._on_peer = on_peer
        self.patched: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original, wrapper)
        self.wrappers: set[Callable[..., Any]] = set()

    # --- install / remove ---------------------------------------------------------------------
    def _set(self, owner: Any, name: str, wrapper: Any) -> None:
        original = owner.__dict__.get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name, _MISSING)
        setattr(owner, name, wrapper)
        self.patched.append((owner, name, original, wrapper))

    def install(self) -> None:
        self._set(MultiStepAgent, "run", self._wrap_run(MultiStepAgent.__dict__["run"]))
        for cls in _with_own(Tool, "__call__"):
            self._set(cls, "__call__", self._wrap_tool(cls.__dict__["__call__"]))
        for cls in _with_own(Model, "generate", "generate_stream"):
            self._wrap_model_class(cls)
        patcher = self
        original_hook = Model.__dict__.get("__init_subclass__")

        def init_subclass(cls: Any, /, **kwargs: Any) -> None:
            if original_hook is not None:
                original_hook.__get__(None, cls)(**kwargs)
            else:
                super(Model, cls).__init_subclass__(**kwargs)
            try:
                patcher._wrap_model_class(cls)
            except Exception:  # noqa: BLE001
                report_internal_error("smolagents model subclass")

        self._set(Model, "__init_subclass__", classmethod(init_subclass))
        self._set(lpe, "ThreadPoolExecutor", _ContextThreadPoolExecutor)

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

    def _wrap_model_class(self, cls: type) -> None:
        for name in ("generate", "generate_stream"):
            if name in cls.__dict__ and cls.__dict__[name] not in self.wrappers:
                self._set(cls, name, self._wrap_model(cls.__dict__[name], stream=name == "generate_stream"))

    def _active(self, model: Any = _MISSING) -> bool:
        """Whether to make a span (an agent run's, a tool call's, or ``model``'s call)."""
        peer = self._peer(self)
        if peer is None:
            return True
        self._on_peer(peer)
        # Next to the official instrumentation, which makes the agent span only (and model-call
        # spans for its in-process model classes), ours adds the tool and model-call spans under it.
        if peer.startswith(OFFICIAL_PREFIX) and model is not None:
            return model is _MISSING or not any(c.__name__ in _OFFICIAL_MODELS for c in type(model).__mro__)
        return False

    # --- wrappers -----------------------------------------------------------------------------
    def _wrap_run(self, run: Callable[..., Any]) -> Callable[..., Any]:
        patcher = self

        @functools.wraps(run)
        def traced_run(agent: Any, *args: Any, **kwargs: Any) -> Any:
            span = ctx = None
            try:
                if patcher._active(None):
                    name = clean_name(getattr(agent, "name", None) or type(agent).__name__)
                    span, ctx = patcher._start(f"{sc.OP_INVOKE_AGENT} {name}", SpanKind.INTERNAL,
                                               {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT,
                                                sc.GEN_AI_AGENT_NAME: name}, agent=name)
            except Exception:  # noqa: BLE001
                report_internal_error("smolagents run start")
            bound = run.__get__(agent, type(agent))  # a wrapt wrapper below us needs its instance
            if span is None or ctx is None:
                return bound(*args, **kwargs)
            result = _call_in(ctx, span, bound, *args, **kwargs)
            if inspect.isgenerator(result):
                return _traced_steps(result, span, ctx)
            span.end()
            return result

        self.wrappers.add(traced_run)
        return traced_run

    def _wrap_tool(self, call: Callable[..., Any]) -> Callable[..., Any]:
        patcher = self

        @functools.wraps(call)
        def traced_call(tool: Any, *args: Any, **kwargs: Any) -> Any:
            span = ctx = None
            try:
                name = clean_name(getattr(tool, "name", None) or type(tool).__name__)
                if name != "final_answer" and patcher._active():  # final_answer is how an agent answers
                    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name,
                                             sc.GEN_AI_TOOL_TYPE: "function"}
                    description = getattr(tool, "description", None)
                    if isinstance(description, str) and description:
                        attrs[sc.GEN_AI_TOOL_DESCRIPTION] = clean_str(description, 1024)
                    if content_on_spans():
                        attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = to_json(kwargs or list(args))
                    span, ctx = patcher._start(f"{sc.OP_EXECUTE_TOOL} {name}", SpanKind.INTERNAL, attrs)
            except Exception:  # noqa: BLE001
                report_internal_error("smolagents tool start")
            bound = call.__get__(tool, type(tool))
            if span is None or ctx is None:
                return bound(*args, **kwargs)
            result = _call_in(ctx, span, bound, *args, **kwargs)
            if content_on_spans():
                span.set_attribute(sc.GEN_AI_TOOL_CALL_RESULT, to_json(result))
            span.end()
            return result

        self.wrappers.add(traced_call)
        return traced_call

    def _wrap_model(self, generate: Callable[..., Any], *, stream: bool) -> Callable[..., Any]:
        patcher = self

        @functools.wraps(generate)
        def traced_generate(model: Any, messages: Any = None, *args: Any, **kwargs: Any) -> Any:
            span = ctx = None
            try:
                if _in_model.get() != id(model) and patcher._active(model):
                    model_id = clean_name(getattr(model, "model_id", None) or type(model).__name__)
                    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_REQUEST_MODEL: model_id}
                    provider = next((_PROVIDERS[c.__name__] for c in type(model).__mro__ if c.__name__ in _PROVIDERS),
                                    None)
                    if provider is not None:
                        attrs[sc.GEN_AI_PROVIDER_NAME] = provider
                    span, ctx = patcher._start(f"{sc.OP_CHAT} {model_id}", SpanKind.CLIENT, attrs)
                    record_llm_messages(input=messages, span=span)
            except Exception:  # noqa: BLE001
                report_internal_error("smolagents model start")
            bound = generate.__get__(model, type(model))
            if span is None or ctx is None:
                return bound(messages, *args, **kwargs)
            token = _in_model.set(id(model))
            try:
                result = _call_in(ctx, span, bound, messages, *args, **kwargs)
            finally:
                _in_model.reset(token)
            if stream and inspect.isgenerator(result):
                return _traced_stream(result, span, ctx)
            _record_reply(span, result)
            span.end()
            return result

        self.wrappers.add(traced_generate)
        return traced_generate

    def _start(self, name: str, kind: SpanKind, attrs: dict[str, Any],
               agent: str | None = None) -> tuple[trace.Span, otel_context.Context]:
        parent = otel_context.get_current()
        inherited = otel_context.get_value(_state.AGENT_KEY, parent)
        if inherited is None:  # under another instrumentation's agent span (the official one's)
            inherited = (getattr(trace.get_current_span(parent), "attributes", None) or {}).get(sc.GEN_AI_AGENT_NAME)
        if sc.GEN_AI_AGENT_NAME not in attrs and isinstance(inherited, str):
            attrs[sc.GEN_AI_AGENT_NAME] = inherited
        span = self.tracer.start_span(clean_name(name), parent, kind, clean_attributes(attrs))
        ctx = trace.set_span_in_context(span, parent)
        if agent is not None:
            ctx = otel_context.set_value(_state.AGENT_KEY, agent, ctx)
        return span, ctx


def _with_own(base: type, *names: str) -> list[type]:
    """``base`` and every subclass (transitively) that defines one of ``names`` itself."""
    seen: list[type] = []
    todo = [base]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in seen if any(n in cls.__dict__ for n in names)]


def _call_in(ctx: otel_context.Context, span: trace.Span, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with ``ctx`` current; an exception marks ``span``, ends it and passes on."""
    token = otel_context.attach(ctx)
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        record_error(span, exc)
        span.end()
        raise
    finally:
        otel_context.detach(token)


def _record_reply(span: trace.Span, reply: Any) -> None:
    try:
        usage = getattr(reply, "token_usage", None)
        if usage is not None:
            record_llm_usage(input_tokens=getattr(usage, "input_tokens", None),
                             output_tokens=getattr(usage, "output_tokens", None), span=span)
        record_llm_messages(output=[{"role": "assistant", "content": getattr(reply, "content", None),
                                     "tool_calls": to_json(getattr(reply, "tool_calls", None))}], span=span)
    except Exception:  # noqa: BLE001
        report_internal_error("smolagents model reply")


def _in_context(items: Iterator[Any], ctx: otel_context.Context) -> Iterator[Any]:
    """Iterate ``items`` with ``ctx`` current while each item is produced (not while it is used)."""
    while True:
        token = otel_context.attach(ctx)
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            otel_context.detach(token)
        yield item


def _traced_steps(steps: Iterator[Any], span: trace.Span, ctx: otel_context.Context) -> Iterator[Any]:
    """A streaming run: each step runs with the agent span current; the span ends with the stream."""
    try:
        yield from _in_context(steps, ctx)
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            record_error(span, exc)
        raise
    finally:
        span.end()


def _traced_stream(deltas: Iterator[Any], span: trace.Span, ctx: otel_context.Context) -> Iterator[Any]:
    """A streamed model reply: token usage summed over the deltas; the span ends with the stream."""
    inp = out = 0
    seen = False
    try:
        for delta in _in_context(deltas, ctx):
            usage = getattr(delta, "token_usage", None)
            if usage is not None:
                inp += getattr(usage, "input_tokens", 0) or 0
                out += getattr(usage, "output_tokens", 0) or 0
                seen = True
            yield delta
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            record_error(span, exc)
        raise
    finally:
        if seen:
            record_llm_usage(input_tokens=inp, output_tokens=out, span=span)
        span.end()
