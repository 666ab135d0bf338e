"""The findings a report leads with: one line each, ranked by impact, evidence folded under each.

Findings come from the model, whatever its source (spans or Prometheus): confirmed regressions,
the alerts that fired, a slowest task far beyond its agent's median (a hung task), error ratios,
critical-path bottlenecks, low utilisation, the costliest agent and rising trends. The analytics
already left out what its suppression rules say is trivial or underpowered
(``analytics.SUPPRESSION_RULES``); the report states those rules in its footer.

Trace ids are shortened to their first ``SHORT_ID`` hex digits in text; when the report came from
``agentmon serve`` they link to its explorer: ``<serve>/traces/<trace_id>``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

from .._analytics.base import Evidence
from ..analytics import MIN_TASKS, SUPPRESSION_RULES
from .model import AgentRow, ReportModel

SHORT_ID: Final = 8
#: a slowest task is a finding when it took at least this long and this many times its agent's median
TAIL_MIN_S: Final = 1.0
TAIL_MIN_RATIO: Final = 10.0
#: impact of an alert that fired, by severity (other severities: warning's)
ALERT_IMPACT: Final = {"critical": 0.9, "warning": 0.6, "info": 0.3}
TAIL_IMPACT: Final = 0.65
RULES: Final = (*SUPPRESSION_RULES,
                f"a slowest task is a finding when it took >= {TAIL_MIN_S:g} s and >= {TAIL_MIN_RATIO:g}x its "
                f"agent's median, with >= {MIN_TASKS} tasks")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str  # regression | alert | slow task | errors | bottleneck | utilisation | cost | trend
    title: str
    impact: float  # 0..1, the ranking (a stated heuristic, see ``findings``)
    evidence: Evidence


def short_id(trace_id: str) -> str:
    return trace_id[:SHORT_ID] if _TRACE_ID.match(trace_id) else trace_id


def trace_url(base: str, trace_id: str, span_id: str | None = None) -> str | None:
    """The serve explorer's page of a trace (``None``: no serve, or not a trace id)."""
    if not base or not _TRACE_ID.match(trace_id):
        return None
    return f"{base.rstrip('/')}/traces/{trace_id}" + (f"?span={span_id}" if span_id else "")


def _tail(a: AgentRow) -> Finding | None:
    if a.tasks < MIN_TASKS or a.max_s is None or a.p50_s is None or a.max_s < TAIL_MIN_S \
            or a.max_s < TAIL_MIN_RATIO * a.p50_s:
        return None
    p99 = "" if a.p99_s is None else f", p99 {a.p99_s * 1000:.4g} ms"
    title = (f"agent {a.agent!r}: slowest task took {a.max_s * 1000:.4g} ms, "
             f"{a.max_s / a.p50_s if a.p50_s > 0 else float('inf'):.0f}x its median "
             f"({a.p50_s * 1000:.4g} ms{p99}, {a.tasks} tasks)")
    return Finding("slow task", title, TAIL_IMPACT, a.evidence)


def findings(m: ReportModel) -> list[Finding]:
    """Every finding of ``m``, highest impact first (ties: regressions, alerts, then the rest).

    Impact: the opportunity's score (``analytics._opportunities``); an alert that fired 0.9 if
    critical, 0.6 if warning; a slowest task beyond ``TAIL_MIN_RATIO`` x the median 0.65."""
    out = [Finding(o.kind, o.title, o.score, o.evidence) for o in m.opportunities]
    for al in m.alerts:
        if al.fired < 1:
            continue
        who = "" if al.agent is None else f" for agent {al.agent!r}"
        ev = Evidence(f"transitions of alert {al.rule!r}{who}; one episode per firing, whichever evaluator saw it",
                      f'alerts{{rule="{al.rule}"' + ("" if al.agent is None else f',agent="{al.agent}"') + "}",
                      m.window, n=al.fired)
        out.append(Finding("alert", f"alert {al.rule}{who} fired {al.fired}x ({al.severity}), now {al.last_state}",
                           ALERT_IMPACT.get(al.severity, ALERT_IMPACT["warning"]), ev))
    out += [f for f in (_tail(a) for a in m.agents) if f is not None]
    order = {"regression": 0, "alert": 1, "slow task": 2}
    out.sort(key=lambda f: (-f.impact, order.get(f.kind, 3), f.title))
    return out


def compact(ev: Evidence) -> str:
    """The compact evidence of a finding, without its traces: n, the test's numbers, p."""
    return "; ".join(p.plain() for p in ev.parts()
                     if p.name not in ("query", "expression", "window", "baseline", "traces"))


def signature(m: ReportModel) -> list[str]:
    """The findings as plain lines (kind: title), what a report from a recording and one from the
    serve that received the same run must agree on."""
    return [f"{f.kind}: {f.title}" for f in findings(m)]
