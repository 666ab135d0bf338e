"""Alert rule files: load them (YAML), and export the same thresholds as Prometheus rules.

One definition, two evaluators: the in-process engine (``_alerts``) evaluates a rule on live
signals; ``to_prometheus`` writes the equivalent PromQL over the metrics otel_agentmon exports,
named as the Collector's ``prometheus`` exporter names them (dots to underscores, unit suffixes,
``_total`` on counters).

Rule file reference::

    rules:
      - name: AgentDown             # unique; letters, digits, _ and -
        signal: up                  # see SIGNALS
        op: "<"                     # >, >=, <, <=
        threshold: 1
        for: 2s                     # how long the condition must hold (ms, s, m, h)
        resolve: 0.5                # optional hysteresis threshold
        window: 1m                  # windowed signals only
        agent: "*"                  # "*" = each agent; or one agent's name
        severity: critical
        labels: {team: agents}
        annotations: {summary: "{agent} is down"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast

import yaml

from .engine import AlertRule

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_KEYS: Final = {"name", "signal", "op", "threshold", "for", "resolve", "window", "agent", "severity", "labels",
                "annotations"}


def parse_duration(value: object) -> float:
    """``"500ms"``, ``"5s"``, ``"2m"``, ``"1h"`` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 5s, 2m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _str_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a mapping")
    return {str(k): str(v) for k, v in cast(Mapping[object, object], value).items()}


def rule_from_dict(data: Mapping[str, Any]) -> AlertRule:
    unknown = set(data) - _KEYS
    if unknown:
        raise ValueError(f"rule {data.get('name')!r}: unknown keys {sorted(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a rule needs a non-empty 'name' (got {name!r})")
    try:
        return AlertRule(
            name=name, signal=data["signal"], op=data.get("op", ">"),
            threshold=float(data["threshold"]), for_=parse_duration(data.get("for", 0)),
            resolve=None if data.get("resolve") is None else float(data["resolve"]),
            window=parse_duration(data.get("window", "1m")), agent=str(data.get("agent", "*")),
            severity=str(data.get("severity", "warning")), labels=_str_map(data.get("labels"), "labels"),
            annotations=_str_map(data.get("annotations"), "annotations"),
        )
    except KeyError as exc:
        raise ValueError(f"rule {data.get('name')!r}: missing {exc.args[0]!r}") from None


def load_rules(source: str | Path) -> list[AlertRule]:
    """Read a rule file; raises ``ValueError`` (a ``RuleFileError``) listing every problem in it,
    each as ``path:line: problem`` (an unreadable file included)."""
    from .rule_file import RuleFileError, check_rule_file

    report = check_rule_file(source)
    if report.errors:
        raise RuleFileError(report.errors)
    return report.rules


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{int(seconds * 1000)}ms"


#: Prometheus remembers an agent whose series vanished (with no last ``stopped`` state) this long:
#: an ``up`` rule fires for it until then.
VANISHED_LOOKBACK: Final = "1h"
#: Series absent for less than this (a scrape or Collector hiccup) are not yet a vanished agent.
VANISHED_AFTER: Final = "2m"


def _up(rule: AlertRule) -> str:
    """``agentmon_agent_up`` as the in-process ``up`` signal reads: 1 alive, 0 down, no value stopped.

    A process reports 0 for an agent that missed its promised heartbeats; a process that exits
    cleanly last reports ``up`` 0 together with ``agentmon_agent_health{agentmon_health_state=
    "stopped"}`` 1, and one that is killed just stops reporting. The Collector's ``prometheus``
    exporter keeps a series' last value until its ``metric_expiration`` (10m in our configs), then
    drops it. So: a series whose last ``stopped`` sample is 1 is no alert, ever; a series gone for
    ``VANISHED_AFTER`` without that is 0 (down), unless the agent is up in another process (a
    restart) — for ``VANISHED_LOOKBACK``."""
    up = f"agentmon_agent_up{_selector(rule)}"
    stopped_sel = _selector(rule, 'agentmon_health_state="stopped"')
    stopped = f"agentmon_agent_health{stopped_sel}"
    vanished = (f"(max_over_time({up}[{VANISHED_LOOKBACK}]) * 0 unless max_over_time({up}[{VANISHED_AFTER}]))"
                f" unless on (gen_ai_agent_name) ({up} == 1)")
    return (f"(({up} or ({vanished}))"
            f" unless ignoring (agentmon_health_state) (last_over_time({stopped}[{VANISHED_LOOKBACK}]) == 1))")


def _selector(rule: AlertRule, extra: str = "") -> str:
    matchers = [m for m in (extra, "" if rule.agent == "*" else f'gen_ai_agent_name="{rule.agent}"') if m]
    return "{" + ",".join(matchers) + "}" if matchers else ""


def promql(rule: AlertRule) -> str:
    """The PromQL expression that is true exactly when ``rule`` holds."""
    w = _duration(rule.window)
    by = "sum by (gen_ai_agent_name)"
    sel = _selector(rule)
    unhealthy = _selector(rule, 'agentmon_health_state="unhealthy"')
    errors = _selector(rule, 'agentmon_task_outcome="error"')
    expressions = {
        "up": _up(rule),
        "unhealthy": f"agentmon_agent_health{unhealthy}",
        "stuck_tasks": f"{by} (agentmon_tasks_stuck{sel})",
        "in_flight": f"{by} (agentmon_tasks_in_flight{sel})",
        "oldest_task_age": f"max by (gen_ai_agent_name) (agentmon_task_oldest_in_flight_age_seconds{sel})",
        "throughput": f"{by} (rate(agentmon_tasks_completed_total{sel}[{w}]))",
        "error_rate": (f"{by} (rate(agentmon_tasks_completed_total{errors}[{w}]))"
                       f" / {by} (rate(agentmon_tasks_completed_total{sel}[{w}]))"),
        "tokens": f"{by} (increase(agentmon_task_token_usage_sum{sel}[{w}]))",
        "cpu": "process_cpu_utilization_ratio",
        "memory": "process_memory_usage_bytes",
    }
    for q in ("50", "95", "99"):
        expressions[f"latency_p{q}"] = (
            f"histogram_quantile(0.{q}, sum by (le, gen_ai_agent_name) "
            f"(rate(agentmon_task_duration_seconds_bucket{sel}[{w}])))")
    return f"{expressions[rule.signal]} {rule.op} {_number(rule.threshold)}"


def _prom_annotation(text: str) -> str:
    # Our placeholders -> Prometheus template syntax.
    return (text.replace("{agent}", "{{ $labels.gen_ai_agent_name }}").replace("{value}", "{{ $value }}")
            .replace("{rule}", "{{ $labels.alertname }}"))


def to_prometheus(rules: Sequence[AlertRule], group: str = "agentmon") -> str:
    """A Prometheus alerting-rules file (YAML) equivalent to ``rules``."""
    out: list[dict[str, Any]] = []
    for rule in rules:
        entry: dict[str, Any] = {"alert": rule.name, "expr": promql(rule)}
        if rule.for_ > 0:
            entry["for"] = _duration(rule.for_)
        entry["labels"] = {"severity": rule.severity, **rule.labels}
        annotations = {k: _prom_annotation(v.replace("{threshold}", _number(rule.threshold)))
                       for k, v in rule.annotations.items()}
        if annotations:
            entry["annotations"] = annotations
        out.append(entry)
    return str(yaml.safe_dump({"groups": [{"name": group, "rules": out}]}, sort_keys=False, width=1000))
