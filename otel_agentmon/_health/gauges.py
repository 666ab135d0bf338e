"""The health gauges (``agentmon.agent.up``, ``agentmon.agent.health``, the oldest task's age, stuck
tasks, firing alerts), observed from the health loop's last evaluation."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .._names import semconv as sc
from .loop import HealthLoop, SwarmHealth


def register_health_instruments(meter: Meter, loop: HealthLoop) -> None:
    """Observable health metrics, read from the health loop's last evaluation."""

    def current() -> SwarmHealth:
        return loop.current

    alert_states = loop.alert_states

    def up(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(1 if h.up else 0, {sc.GEN_AI_AGENT_NAME: name})
                for name, h in current().agents.items()]

    def health(options: CallbackOptions) -> Iterable[Observation]:
        # The OTel status-metric pattern: the current state 1, the others 0.
        return [Observation(1 if h.state == state else 0,
                            {sc.GEN_AI_AGENT_NAME: name, sc.AGENTMON_HEALTH_STATE: state})
                for name, h in current().agents.items() for state in sc.HEALTH_STATES]

    def oldest(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(h.oldest_task_age, {sc.GEN_AI_AGENT_NAME: name}) for name, h in current().agents.items()]

    def stuck(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(h.stuck_tasks, {sc.GEN_AI_AGENT_NAME: name}) for name, h in current().agents.items()]

    def firing(options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for rule, severity, agent, is_firing in alert_states():
            attrs = {sc.AGENTMON_ALERT_RULE: rule, sc.AGENTMON_ALERT_SEVERITY: severity}
            if agent is not None:
                attrs[sc.GEN_AI_AGENT_NAME] = agent
            out.append(Observation(1 if is_firing else 0, attrs))
        return out

    meter.create_observable_gauge(sc.M_AGENT_UP, [up], unit=sc.UNIT_AGENT,
                                  description="1 while the agent is alive (busy or idle); 0 when down or stopped.")
    meter.create_observable_gauge(sc.M_AGENT_HEALTH, [health], unit=sc.UNIT_AGENT,
                                  description="Agent health state: 1 for the current state, 0 for the others.")
    meter.create_observable_gauge(sc.M_TASK_OLDEST_AGE, [oldest], unit=sc.UNIT_SECONDS,
                                  description="Age of the agent's oldest task still running.")
    meter.create_observable_gauge(sc.M_TASKS_STUCK, [stuck], unit=sc.UNIT_TASK,
                                  description="Tasks running longer than their stuck limit.")
    meter.create_observable_gauge(sc.M_ALERT_FIRING, [firing], unit=sc.UNIT_ALERT,
                                  description="1 while the alert (rule, agent) is firing, else 0.")
