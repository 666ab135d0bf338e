"""Microsoft Agent Framework, through its native OpenTelemetry instrumentation.

::

    from otel_agentmon.instrumentation.agent_framework import AgentFrameworkInstrumentor
    AgentFrameworkInstrumentor().instrument()   # or opentelemetry-instrument (agentmon_agent_framework)

Agent Framework (``agent-framework-core``) already emits GenAI-convention spans, nested through
the OTel context: ``invoke_agent {agent}``, ``chat {model}`` (CLIENT, with token usage; the
current span while the chat client runs, so an LLM-client instrumentation underneath adds no
second inference span), ``execute_tool {tool}``, and for workflows ``workflow.run`` with its
executor and message spans. Rather than open a second tree, ``instrument()``:

* turns that instrumentation on (``enable_instrumentation()``; message content only when
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` or Agent Framework's own
  ``ENABLE_SENSITIVE_DATA`` asks for it), unless the application turned it off with
  ``disable_instrumentation()``;
* hands Agent Framework a tracer of the active monitor's provider (``tracer_provider`` kwarg, else
  ``configure()``'s or a test capture's, else the global one), under its own scope name
  ``agent_framework``;
* turns Agent Framework's own metrics off for chat clients created from then on (a no-op meter):
  they record ``gen_ai.client.token.usage`` with the unit ``tokens`` where the conventions say
  ``{token}``; ours, derived from the spans, follow the conventions. A client created before
  ``instrument()`` keeps recording its own, and then we don't derive tokens again for its scope
  (each token counted once, ``_metrics/scopes.py``);
* names each workflow run ``invoke_workflow {workflow.name}`` (``gen_ai.operation.name=invoke_workflow``,
  ``gen_ai.workflow.name``), and gives the agent, chat and tool spans their operation and agent
  name when they *start* (Agent Framework sets them just after): an agent run is a task in flight
  from its first moment, so a stuck one is seen.

Errors are Agent Framework's: ``error.type`` is the exception's class name. ``uninstrument()``
puts back Agent Framework's tracer and its previous on/off setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace

from .._names import semconv as sc
from ._base import FrameworkInstrumentor, content_on_spans
from ._native import NativeTracer, operation_from_name

__all__ = ["AgentFrameworkInstrumentor"]

SCOPE = "agent_framework"  # Agent Framework's own: its metrics use the same name (count once)
_WORKFLOW_RUN = "workflow.run"
_WORKFLOW_NAME = "workflow.name"
_WORKFLOW_ID = "workflow.id"


def fix_span(name: str, attributes: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    if name == _WORKFLOW_RUN:
        workflow = attributes.get(_WORKFLOW_NAME) or attributes.get(_WORKFLOW_ID) or "workflow"
        out = dict(attributes)
        out[sc.GEN_AI_OPERATION_NAME] = sc.OP_INVOKE_WORKFLOW
        out[sc.GEN_AI_WORKFLOW_NAME] = str(workflow)
        return f"{sc.OP_INVOKE_WORKFLOW} {workflow}", out
    return name, operation_from_name(name, attributes)


class AgentFrameworkInstrumentor(FrameworkInstrumentor):
    """Agent Framework's native GenAI spans, on, in our pipeline, with workflows and run starts."""

    framework = "agent_framework"
    dependencies = ("agent-framework-core >= 1.0, < 2",)

    _saved: Any = None  # (observability module, its get_tracer, our get_tracer, was enabled)

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        from agent_framework import observability as obs

        provider = kwargs.get("tracer_provider")
        settings = obs.OBSERVABILITY_SETTINGS
        was_enabled = bool(settings.enable_instrumentation)
        version: str = getattr(obs, "version_info", "")
        original = obs.get_tracer
        tracers: dict[tuple[str, str], trace.Tracer] = {}  # Agent Framework asks on every span

        def get_tracer(instrumenting_module_name: str = SCOPE, instrumenting_library_version: str = version,
                       schema_url: str | None = None, attributes: dict[str, Any] | None = None) -> trace.Tracer:
            key = (instrumenting_module_name, instrumenting_library_version)
            found = tracers.get(key)
            if found is None:
                found = (_FixedOn(provider, *key) if provider is not None else NativeTracer(*key, fix_span))
                if len(tracers) < 64:
                    tracers[key] = found
            return found

        original_meter = obs.get_meter

        def get_meter(name: str = SCOPE, version: str = version, schema_url: str | None = None,
                      attributes: dict[str, Any] | None = None) -> metrics.Meter:
            return metrics.NoOpMeter(name, version, schema_url)

        obs.get_tracer = get_tracer
        obs.get_meter = get_meter
        self._saved = (obs, original, get_tracer, was_enabled, original_meter, get_meter)
        obs.enable_instrumentation(enable_sensitive_data=True if content_on_spans() else None)

    def _remove(self) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        obs, original, ours, was_enabled, original_meter, our_meter = saved
        if obs.get_tracer is ours:
            obs.get_tracer = original
        if obs.get_meter is our_meter:
            obs.get_meter = original_meter
        if not was_enabled:
            obs.OBSERVABILITY_SETTINGS.enable_instrumentation = False


class _FixedOn(NativeTracer):
    """A :class:`NativeTracer` on an explicit provider (the ``tracer_provider`` kwarg)."""

    __slots__ = ()

    def __init__(self, provider: trace.TracerProvider, scope: str, version: str | None) -> None:
        super().__init__(scope, version, fix_span)
        self._provider = provider
        self._tracer = provider.get_tracer(scope, version, sc.SCHEMA_URL)

    def _current(self) -> trace.Tracer:
        return self._tracer
