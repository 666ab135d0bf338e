"""Spans around agent work: agent invocations, tasks, tool calls and workflow runs.

Each factory returns an object that is a decorator (for sync functions, coroutines, generators
and async generators) and a context manager (``with`` and ``async with``)::

    @agentmon.agent("planner")
    async def plan(goal: str) -> Plan: ...

    with agentmon.tool("search") as call:
        call.set_attribute("hits", 3)

Mapping onto the GenAI conventions:

* ``agent(name)`` -> ``invoke_agent {gen_ai.agent.name}``, INTERNAL.
* ``tool(name)`` -> ``execute_tool {gen_ai.tool.name}``, INTERNAL, with the enclosing agent's name.
* ``workflow(name)`` -> ``invoke_workflow {gen_ai.workflow.name}``, INTERNAL (a swarm run).
* ``task(type)`` -> ``task {agentmon.task.type}``, INTERNAL. The conventions define no task span
  (proposals #55/#58 were closed without one), so a task is our own span, named in our namespace,
  carrying ``gen_ai.agent.name`` of the agent that picked it up. It sits between the agent
  invocation and its tool and LLM calls: workflow -> agent -> task -> tool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._core import state as _state
from .._core.guard import report_internal_error
from .._names import semconv as sc
from .sanitize import (
    attributes_arg,
    clean_attributes,
    clean_name,
    clean_str,
    clean_value,
    name_arg,
    optional_name_arg,
    safe_repr,
    text_arg,
)
from .wrap import wrap

F = TypeVar("F", bound=Callable[..., Any])

_CANCELLED = ("CancelledError",)


def error_type(exc: BaseException) -> str:
    """The low-cardinality ``error.type`` of an exception: its fully qualified class name."""
    cls = type(exc)
    module = getattr(cls, "__module__", "")
    return cls.__qualname__ if module in ("builtins", "") else f"{module}.{cls.__qualname__}"


class SpanHandle:
    """What ``with agentmon.agent(...) as h`` gives you: safe setters on the live span."""

    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set_attribute(self, key: str, value: object) -> None:
        """Set an attribute; any value is accepted and made safe."""
        try:
            self.span.set_attribute(clean_name(key), clean_value(value))
        except Exception:  # noqa: BLE001
            report_internal_error("set_attribute")

    def set_attributes(self, attributes: Mapping[str, object]) -> None:
        try:
            self.span.set_attributes(clean_attributes(attributes))
        except Exception:  # noqa: BLE001
            report_internal_error("set_attributes")

    def add_event(self, name: str, attributes: Mapping[str, object] | None = None) -> None:
        try:
            self.span.add_event(clean_name(name), clean_attributes(attributes))
        except Exception:  # noqa: BLE001
            report_internal_error("add_event")


def record_error(span: trace.Span, exc: BaseException) -> None:
    """Mark ``span`` failed by ``exc`` (status, ``error.type``, exception event); never raises."""
    try:
        etype = error_type(exc)
        span.set_attribute(sc.ERROR_TYPE, etype)
        span.set_status(Status(StatusCode.ERROR, clean_str(safe_repr(exc), 1024)))
        if isinstance(exc, Exception) or type(exc).__name__ in _CANCELLED:
            try:
                span.record_exception(exc)
            except Exception:  # noqa: BLE001 - e.g. an exception whose __str__ raises
                span.add_event("exception", {"exception.type": etype})
    except Exception:  # noqa: BLE001
        report_internal_error("record_error")


_OpenState = tuple[trace.Span, object, object]
#: Ops entered with ``with`` in this context, innermost last.
_open: ContextVar[tuple[tuple[_Op, _OpenState], ...]] = ContextVar("agentmon_open_ops", default=())


class _Op:
    """A span-producing operation: decorator and (async) context manager."""

    __slots__ = ("_name", "_kind", "_attrs", "_agent", "_is_task", "_inherit_agent")

    def __init__(self, span_name: str, attributes: dict[str, Any], *, kind: SpanKind = SpanKind.INTERNAL,
                 agent: str | None = None, is_task: bool = False, inherit_agent: bool = False) -> None:
        self._name = clean_name(span_name)
        self._kind = kind
        self._attrs = attributes
        self._agent = agent  # set: this op runs as that agent (agent and task spans)
        self._is_task = is_task
        self._inherit_agent = inherit_agent  # tools/tasks take gen_ai.agent.name from context

    # --- the Operation protocol used by _wrap -------------------------------------------------
    def _attributes(self, parent: otel_context.Context | None) -> dict[str, Any]:
        if self._inherit_agent and sc.GEN_AI_AGENT_NAME not in self._attrs:
            inherited = otel_context.get_value(_state.AGENT_KEY, parent)
            if inherited is not None:
                return {**self._attrs, sc.GEN_AI_AGENT_NAME: inherited}
        return self._attrs

    def start_detached(self) -> tuple[trace.Span, otel_context.Context]:
        parent = otel_context.get_current()
        clock = _state.clock
        span = _state.tracer.start_span(self._name, parent, self._kind, self._attributes(parent),
                                        start_time=clock() if clock is not None else None)
        ctx = trace.set_span_in_context(span, parent)
        agent = self._agent
        if agent is None and self._is_task:
            value = otel_context.get_value(_state.AGENT_KEY, parent)
            agent = value if isinstance(value, str) else None
        if agent is not None:
            ctx = otel_context.set_value(_state.AGENT_KEY, agent, ctx)
        return span, ctx

    def end_detached(self, state: tuple[trace.Span, object], exc: BaseException | None) -> None:
        span = state[0]
        try:
            if exc is not None and not isinstance(exc, GeneratorExit):
                record_error(span, exc)
                if self._is_task:
                    cancelled = type(exc).__name__ in _CANCELLED
                    span.set_attribute(sc.AGENTMON_TASK_OUTCOME,
                                       sc.OUTCOME_CANCELLED if cancelled else sc.OUTCOME_ERROR)
            elif self._is_task:
                span.set_attribute(sc.AGENTMON_TASK_OUTCOME, sc.OUTCOME_SUCCESS)
            clock = _state.clock
            span.end(clock() if clock is not None else None)
        except Exception:  # noqa: BLE001
            report_internal_error("span end")

    def begin(self) -> tuple[trace.Span, object, object]:
        span, ctx = self.start_detached()
        return span, ctx, otel_context.attach(ctx)

    def finish(self, state: tuple[trace.Span, object, object], exc: BaseException | None) -> None:
        try:
            otel_context.detach(state[2])  # type: ignore[arg-type]  # the token attach() returned, kept as object
        except Exception:  # noqa: BLE001
            pass
        self.end_detached((state[0], state[1]), exc)

    # --- decorator ----------------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        return wrap(fn, self)

    # --- context managers ---------------------------------------------------------------------
    def __enter__(self) -> SpanHandle:
        if not _state.enabled:
            return SpanHandle(trace.INVALID_SPAN)
        try:
            state = self.begin()
        except Exception:  # noqa: BLE001
            report_internal_error("span start")
            return SpanHandle(trace.INVALID_SPAN)
        _open.set((*_open.get(), (self, state)))
        return SpanHandle(state[0])

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # The entered state lives in the context, not on the object, so one op object can be
        # entered concurrently from several threads or tasks.
        stack = _open.get()
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is self:
                _open.set(stack[:i] + stack[i + 1:])
                self.finish(stack[i][1], exc)
                return

    async def __aenter__(self) -> SpanHandle:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


def agent(name: str, *, description: str | None = None, model: str | None = None,
          conversation_id: str | None = None, attributes: Mapping[str, object] | None = None) -> _Op:
    """An agent invocation: ``invoke_agent {name}`` (INTERNAL), as decorator or context manager."""
    agent_name = name_arg(name, "agent", "name")
    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: agent_name}
    if (text := text_arg(description, "agent", "description")) is not None:
        attrs[sc.GEN_AI_AGENT_DESCRIPTION] = text
    if (model_name := optional_name_arg(model, "agent", "model")) is not None:
        attrs[sc.GEN_AI_REQUEST_MODEL] = model_name
    if (text := text_arg(conversation_id, "agent", "conversation_id")) is not None:
        attrs[sc.GEN_AI_CONVERSATION_ID] = text
    attrs.update(attributes_arg(attributes, "agent"))
    return _Op(f"{sc.OP_INVOKE_AGENT} {agent_name}", attrs, agent=agent_name)


def tool(name: str, *, type: str = "function", description: str | None = None,  # noqa: A002
         call_id: str | None = None, attributes: Mapping[str, object] | None = None) -> _Op:
    """A tool call: ``execute_tool {name}`` (INTERNAL); ``gen_ai.agent.name`` comes from context."""
    tool_name = name_arg(name, "tool", "name")
    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: tool_name,
                             sc.GEN_AI_TOOL_TYPE: name_arg(type, "tool", "type")}
    if (text := text_arg(description, "tool", "description")) is not None:
        attrs[sc.GEN_AI_TOOL_DESCRIPTION] = text
    if (text := text_arg(call_id, "tool", "call_id")) is not None:
        attrs[sc.GEN_AI_TOOL_CALL_ID] = text
    attrs.update(attributes_arg(attributes, "tool"))
    return _Op(f"{sc.OP_EXECUTE_TOOL} {tool_name}", attrs, inherit_agent=True)


def workflow(name: str, *, attributes: Mapping[str, object] | None = None) -> _Op:
    """A workflow / swarm run: ``invoke_workflow {name}`` (INTERNAL). Keep ``name`` low-cardinality."""
    wf_name = name_arg(name, "workflow", "name")
    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW, sc.GEN_AI_WORKFLOW_NAME: wf_name}
    attrs.update(attributes_arg(attributes, "workflow"))
    return _Op(f"{sc.OP_INVOKE_WORKFLOW} {wf_name}", attrs)


def task(task_type: str, *, agent: str | None = None, task_id: str | None = None,
         attributes: Mapping[str, object] | None = None) -> _Op:
    """A unit of swarm work an agent picks up: ``task {task_type}`` (INTERNAL).

    ``agent`` defaults to the enclosing ``agent(...)``. ``task_id`` goes on the span only (never on
    metrics). ``task_type`` must be low-cardinality: it labels the task metrics.
    """
    ttype = name_arg(task_type, "task", "task_type")
    attrs: dict[str, Any] = {sc.AGENTMON_TASK_TYPE: ttype}
    agent_name = optional_name_arg(agent, "task", "agent")
    if agent_name is not None:
        attrs[sc.GEN_AI_AGENT_NAME] = agent_name
    if (text := text_arg(task_id, "task", "task_id")) is not None:
        attrs[sc.AGENTMON_TASK_ID] = text
    attrs.update(attributes_arg(attributes, "task"))
    return _Op(f"task {ttype}", attrs, agent=agent_name, is_task=True, inherit_agent=agent_name is None)
