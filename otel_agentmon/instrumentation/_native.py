"""A tracer for a framework's native spans routed into our pipeline, fixed up where they start.

Frameworks with their own GenAI telemetry (Microsoft Agent Framework, AutoGen) get their tracer
from the global API. Our instrumentors hand them an :class:`NativeTracer` instead: it sends the
spans to the active monitor's provider (a test capture's, ``configure()``'s, else the global one)
and lets the instrumentor fix a span's name and attributes *when it starts*: a framework that
sets ``gen_ai.operation.name`` and ``gen_ai.agent.name`` only after starting the span would
otherwise show our span processor an anonymous span at start, and its agent run would never be
in flight (no stuck detection). Inference spans are CLIENT, as the conventions say, and model
and tool calls carry the name of the agent they run for (the parent span's), like ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

from .._core import state as _state
from .._core.active import ActiveTracer
from .._core.guard import report_internal_error
from .._names import semconv as sc

#: ``fix(name, attributes) -> (name, attributes)``: must not raise (a raise keeps the span as it was).
Fix = Callable[[str, Mapping[str, Any]], tuple[str, Mapping[str, Any]]]
_AGENT_WORK = frozenset({sc.OP_EXECUTE_TOOL, *sc.INFERENCE_OPERATIONS})
_OPERATIONS = (sc.OP_INVOKE_AGENT, sc.OP_EXECUTE_TOOL, sc.OP_INVOKE_WORKFLOW, *sc.INFERENCE_OPERATIONS)


def operation_from_name(name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The GenAI attributes a span named ``<operation> <target>`` states by its name, for a span
    started without them (they are set again, identically, by the framework right after)."""
    operation, _, target = name.partition(" ")
    out = dict(attributes)
    if operation not in _OPERATIONS or sc.GEN_AI_OPERATION_NAME in out:
        return out
    out[sc.GEN_AI_OPERATION_NAME] = operation
    if target:
        key = {sc.OP_INVOKE_AGENT: sc.GEN_AI_AGENT_NAME, sc.OP_EXECUTE_TOOL: sc.GEN_AI_TOOL_NAME,
               sc.OP_INVOKE_WORKFLOW: sc.GEN_AI_WORKFLOW_NAME}.get(operation)
        if key is not None:
            out.setdefault(key, target)
    return out


class NativeTracer(ActiveTracer):
    """An :class:`ActiveTracer` that passes each span's name and attributes through ``fix``."""

    __slots__ = ("_fix",)

    def __init__(self, scope: str, version: str | None, fix: Fix) -> None:
        super().__init__(scope, version, sc.SCHEMA_URL, None)
        self._fix = fix

    def _fixed(self, name: str, attributes: Attributes) -> tuple[str, Attributes]:
        try:
            new_name, new_attrs = self._fix(name, attributes or {})
            return new_name, dict(new_attrs)
        except Exception:  # noqa: BLE001
            report_internal_error("fixing a native span")
            return name, attributes

    def start_span(self, name: str, context: otel_context.Context | None = None,
                   kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes = None,
                   links: Sequence[Link] | None = None, start_time: int | None = None,
                   record_exception: bool = True, set_status_on_exception: bool = True) -> Span:
        name, attributes = self._fixed(name, attributes)
        if attributes:
            operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
            if operation in sc.INFERENCE_OPERATIONS:
                kind = SpanKind.CLIENT  # a model call is a client call (the conventions' span kind)
            if operation in _AGENT_WORK and sc.GEN_AI_AGENT_NAME not in attributes:
                agent = _enclosing_agent(context)
                if agent is not None:
                    attributes = {**attributes, sc.GEN_AI_AGENT_NAME: agent}
        return super().start_span(name, context, kind, attributes, links, start_time, record_exception,
                                  set_status_on_exception)

    @_agnosticcontextmanager  # overridden like the API's ProxyTracer does
    def start_as_current_span(self, name: str, context: otel_context.Context | None = None,
                              kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes = None,
                              links: Sequence[Link] | None = None, start_time: int | None = None,
                              record_exception: bool = True, set_status_on_exception: bool = True,
                              end_on_exit: bool = True) -> Iterator[Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time, record_exception,
                               set_status_on_exception)
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                            set_status_on_exception=set_status_on_exception) as current:
            yield current


def _enclosing_agent(context: otel_context.Context | None) -> str | None:
    """The agent the span being started works for: the parent span's ``gen_ai.agent.name``, else
    the agent an ``agentmon.agent()`` block around it names."""
    ctx = context if context is not None else otel_context.get_current()
    parent = trace.get_current_span(ctx)
    found = (getattr(parent, "attributes", None) or {}).get(sc.GEN_AI_AGENT_NAME)
    if not isinstance(found, str):
        found = otel_context.get_value(_state.AGENT_KEY, ctx)
    return found if isinstance(found, str) else None


def unchanged(name: str, attributes: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    return name, attributes


__all__ = ["Fix", "NativeTracer", "operation_from_name", "unchanged"]
