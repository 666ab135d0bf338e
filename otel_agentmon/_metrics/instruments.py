"""The agent metrics: instruments with the conventions' names, units and bucket advice, and the
Views that keep their cardinality bounded.

Buckets are given as ``explicit_bucket_boundaries_advisory`` on the instruments, so they apply
even on a MeterProvider the application built (where we cannot add Views). The Views select our
own meter (``otel_agentmon``) only: other libraries' instruments of the same names keep their
attributes, and the SDK sees no conflicting metric identities.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter, NoOpHistogram, Observation
from opentelemetry.sdk.metrics.view import View

from .._names import semconv as sc
from .._names.dialects import CORE_SCOPE
from .scopes import MetricOwners

# Metric attributes allowed per instrument: low-cardinality names only; never ids or free text.
_AGENT = frozenset({sc.GEN_AI_AGENT_NAME, sc.ERROR_TYPE, sc.GEN_AI_REQUEST_MODEL})
_TOOL = frozenset({sc.GEN_AI_TOOL_NAME, sc.GEN_AI_TOOL_TYPE, sc.GEN_AI_AGENT_NAME, sc.ERROR_TYPE})
_WORKFLOW = frozenset({sc.GEN_AI_WORKFLOW_NAME, sc.ERROR_TYPE})
_CLIENT = frozenset({
    sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_RESPONSE_MODEL,
    sc.SERVER_ADDRESS, sc.SERVER_PORT, sc.ERROR_TYPE,
})  # fmt: skip
_CALLS = frozenset({sc.GEN_AI_AGENT_NAME})
_TASK = frozenset({sc.GEN_AI_AGENT_NAME, sc.AGENTMON_TASK_TYPE, sc.AGENTMON_TASK_OUTCOME, sc.ERROR_TYPE})

ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    sc.M_INVOKE_AGENT_DURATION: _AGENT,
    sc.M_EXECUTE_TOOL_DURATION: _TOOL,
    sc.M_INVOKE_WORKFLOW_DURATION: _WORKFLOW,
    sc.M_CLIENT_OPERATION_DURATION: _CLIENT,
    sc.M_CLIENT_TOKEN_USAGE: (_CLIENT - {sc.ERROR_TYPE}) | {sc.GEN_AI_TOKEN_TYPE},
    sc.M_INVOKE_AGENT_TOOL_CALLS: _CALLS,
    sc.M_INVOKE_AGENT_INFERENCE_CALLS: _CALLS,
    sc.M_TASKS_COMPLETED: _TASK,
    sc.M_TASK_DURATION: _TASK,
    sc.M_TASK_TOKEN_USAGE: frozenset({sc.GEN_AI_AGENT_NAME, sc.AGENTMON_TASK_TYPE, sc.GEN_AI_TOKEN_TYPE}),
    sc.M_TASKS_IN_FLIGHT: frozenset({sc.GEN_AI_AGENT_NAME, sc.AGENTMON_TASK_TYPE}),
    sc.M_AGENT_BUSY_TIME: frozenset({sc.GEN_AI_AGENT_NAME}),
    sc.M_AGENT_UP: frozenset({sc.GEN_AI_AGENT_NAME}),
    sc.M_AGENT_HEALTH: frozenset({sc.GEN_AI_AGENT_NAME, sc.AGENTMON_HEALTH_STATE}),
    sc.M_TASK_OLDEST_AGE: frozenset({sc.GEN_AI_AGENT_NAME}),
    sc.M_TASKS_STUCK: frozenset({sc.GEN_AI_AGENT_NAME}),
    sc.M_ALERT_FIRING: frozenset({sc.AGENTMON_ALERT_RULE, sc.AGENTMON_ALERT_SEVERITY, sc.GEN_AI_AGENT_NAME}),
    sc.M_DERIVATION_DROPPED: frozenset({sc.ERROR_TYPE}),
}


def views(cardinality_limit: int) -> list[View]:
    """Attribute allow-lists plus a per-stream cardinality limit for every agent metric of our meter."""
    return [
        View(instrument_name=name, meter_name=CORE_SCOPE, attribute_keys=set(keys),
             aggregation_cardinality_limit=cardinality_limit)
        for name, keys in ALLOWED_ATTRIBUTES.items()
    ]


#: Instruments attribute -> the metric it records, for the metrics derived from any span.
_DERIVED: Final = {
    "agent_duration": sc.M_INVOKE_AGENT_DURATION, "tool_duration": sc.M_EXECUTE_TOOL_DURATION,
    "workflow_duration": sc.M_INVOKE_WORKFLOW_DURATION, "client_duration": sc.M_CLIENT_OPERATION_DURATION,
    "token_usage": sc.M_CLIENT_TOKEN_USAGE, "tool_calls": sc.M_INVOKE_AGENT_TOOL_CALLS,
    "inference_calls": sc.M_INVOKE_AGENT_INFERENCE_CALLS,
}
_SKIPPED: Final = NoOpHistogram("skipped")


InFlightSource = Callable[[], Iterable[tuple[tuple[str, str], int]]]
DropSource = Callable[[], Mapping[str, int]]


class Instruments:
    """All synchronous instruments, created once per MeterProvider.

    With ``provider`` (the MeterProvider ``meter`` came from), ``owners`` learns which other
    instrumentation scopes record derived metrics themselves there (see ``_scopes``), and
    ``for_scope`` leaves those metrics out for their spans.
    """

    def __init__(self, meter: Meter, in_flight: InFlightSource, provider: object | None = None,
                 dropped: DropSource | None = None) -> None:
        h = meter.create_histogram
        self.agent_duration = h(sc.M_INVOKE_AGENT_DURATION, unit=sc.UNIT_SECONDS,
                                description="Duration of GenAI agent invocations.",
                                explicit_bucket_boundaries_advisory=sc.BUCKETS_AGENT_DURATION)
        self.tool_duration = h(sc.M_EXECUTE_TOOL_DURATION, unit=sc.UNIT_SECONDS,
                               description="Duration of tool executions.",
                               explicit_bucket_boundaries_advisory=sc.BUCKETS_TOOL_DURATION)
        self.workflow_duration = h(sc.M_INVOKE_WORKFLOW_DURATION, unit=sc.UNIT_SECONDS,
                                   description="Duration of GenAI workflow invocations.",
                                   explicit_bucket_boundaries_advisory=sc.BUCKETS_WORKFLOW_DURATION)
        self.client_duration = h(sc.M_CLIENT_OPERATION_DURATION, unit=sc.UNIT_SECONDS,
                                 description="GenAI operation duration.",
                                 explicit_bucket_boundaries_advisory=sc.BUCKETS_CLIENT_DURATION)
        self.token_usage = h(sc.M_CLIENT_TOKEN_USAGE, unit=sc.UNIT_TOKEN,
                             description="Number of input and output tokens used.",
                             explicit_bucket_boundaries_advisory=sc.BUCKETS_TOKEN_USAGE)
        self.tool_calls = h(sc.M_INVOKE_AGENT_TOOL_CALLS, unit=sc.UNIT_TOOL_CALL,
                            description="Number of tool calls made during one agent invocation.",
                            explicit_bucket_boundaries_advisory=sc.BUCKETS_CALLS)
        self.inference_calls = h(sc.M_INVOKE_AGENT_INFERENCE_CALLS, unit=sc.UNIT_INFERENCE_CALL,
                                 description="Number of inference calls made during one agent invocation.",
                                 explicit_bucket_boundaries_advisory=sc.BUCKETS_CALLS)
        self.tasks_completed = meter.create_counter(sc.M_TASKS_COMPLETED, unit=sc.UNIT_TASK,
                                                    description="Tasks finished, by outcome.")
        self.task_duration = h(sc.M_TASK_DURATION, unit=sc.UNIT_SECONDS,
                               description="Duration of swarm tasks by agent and task type.",
                               explicit_bucket_boundaries_advisory=sc.BUCKETS_TASK_DURATION)
        self.task_tokens = h(sc.M_TASK_TOKEN_USAGE, unit=sc.UNIT_TOKEN,
                             description="Tokens used per task (all inference calls beneath it).",
                             explicit_bucket_boundaries_advisory=sc.BUCKETS_TOKEN_USAGE)
        self.busy_time = meter.create_counter(sc.M_AGENT_BUSY_TIME, unit=sc.UNIT_SECONDS,
                                              description="Time agents spent running tasks; "
                                              "utilisation = rate(busy_time) / instances.")

        def observe_in_flight(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(n, {sc.GEN_AI_AGENT_NAME: agent, sc.AGENTMON_TASK_TYPE: task_type})
                for (agent, task_type), n in in_flight()
            ]

        meter.create_observable_up_down_counter(sc.M_TASKS_IN_FLIGHT, callbacks=[observe_in_flight],
                                                unit=sc.UNIT_TASK, description="Tasks currently running.")
        self.owners = MetricOwners(CORE_SCOPE)
        self._without: dict[frozenset[str], Instruments] = {}
        if provider is not None:
            self.owners.watch(provider)
        if dropped is not None:
            register_derivation_drops(meter, dropped)

    def for_scope(self, scope: str | None) -> Instruments:
        """These instruments less the metrics that spans of ``scope`` get from their own instrumentation."""
        skip = self.owners.recorded_by(scope)
        if not skip:
            return self
        found = self._without.get(skip)
        if found is None:
            found = copy.copy(self)
            for attr, name in _DERIVED.items():
                if name in skip:
                    setattr(found, attr, _SKIPPED)
            self._without[skip] = found  # at most one per subset of the seven derived metrics
        return found


def register_derivation_drops(meter: Meter, dropped: DropSource) -> None:
    """What metric derivation lost under overload, by reason (``error.type``), as a counter."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {sc.ERROR_TYPE: reason}) for reason, n in dropped().items()]

    meter.create_observable_counter(
        sc.M_DERIVATION_DROPPED, callbacks=[observe], unit=sc.UNIT_SPAN,
        description="Span starts and ends metric derivation could not process (agent metrics and summaries "
        "undercount), and tasks forgotten at the in-flight cap, by reason.")
