"""The Markdown summary of a report: every finding followed by its evidence."""

from __future__ import annotations

from collections.abc import Iterable

from ._analytics_base import Evidence, fmt_time, fmt_window
from ._analytics_change import MW_TEST, Z_TEST
from ._report_model import GroupRow, ReportModel

_TOP_OPPORTUNITIES = 10
_TOP_BOTTLENECKS = 3


def evidence_line(ev: Evidence, indent: str = "  ") -> str:
    """``- evidence: <query>; `expression`; window; n; statistic; p; traces``."""
    parts = [ev.query, f"`{ev.expression}`", f"window {fmt_window(ev.window)}"]
    if ev.baseline is not None:
        parts.append(f"baseline {fmt_window(ev.baseline)}")
    parts.append(f"n={ev.n}")
    for key in ("n_baseline", "n_recent", "z", "median_baseline", "median_recent"):
        if key in ev.numbers:
            parts.append(f"{key}={ev.numbers[key]:.4g}")
    if ev.statistic is not None:
        parts.append(f"statistic={ev.statistic:.4g}")
    if ev.p_value is not None:
        parts.append(f"p={ev.p_value:.3g}")
    if ev.trace_ids:
        parts.append("traces " + ", ".join(f"`{t}`" for t in ev.trace_ids))
    return f"{indent}- evidence: " + "; ".join(parts)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _groups(title: str, rows: list[GroupRow]) -> list[str]:
    if not rows:
        return []
    out = [f"## {title}", ""]
    out += _table([title[:-1].lower(), "calls", "errors", "p50 ms", "p95 ms", "total s"],
                  [[f"`{r.key}`", str(r.calls), str(r.errors), _ms(r.p50_s), _ms(r.p95_s),
                    "-" if r.total_s is None else f"{r.total_s:.3g}"] for r in rows])
    return [*out, ""]


def render(m: ReportModel) -> str:
    out = [f"# {m.title}", "", f"Source: {m.source}  ", f"Period: {fmt_window(m.window)}  ",
           *(f"{n}  " for n in m.notes), ""]
    out += ["## Highlights", ""]
    for h in m.highlights:
        out += [f"- **{h.what}: `{h.key}`**: {h.detail}", evidence_line(h.evidence)]
    if not m.highlights:
        out.append("- no agent tasks or tool calls in this period")
    out += ["", "## Top optimisation opportunities", ""]
    for i, opp in enumerate(m.opportunities[:_TOP_OPPORTUNITIES], 1):
        out += [f"{i}. **{opp.title}** ({opp.kind}, score {opp.score:.2f})", evidence_line(opp.evidence, "   ")]
    if not m.opportunities:
        out.append("Nothing stands out in this period.")
    out += ["", "## Agents: performance and efficiency", ""]
    out += _table(["agent", "tasks", "failed", "error %", "tasks/s", "p50 ms", "p95 ms", "utilisation",
                   "tokens/task", "cost/task $"],
                  [[f"`{a.agent}`", str(a.tasks), str(a.failed), f"{a.error_ratio:.1%}", f"{a.throughput_per_s:.3g}",
                    _ms(a.p50_s), _ms(a.p95_s), _pct(a.utilisation),
                    "-" if a.tokens_per_task is None else f"{a.tokens_per_task:.0f}",
                    "-" if a.cost_per_task_usd is None else f"{a.cost_per_task_usd:.5f}"] for a in m.agents])
    out.append("")
    for a in m.agents:
        out += [f"- `{a.agent}`", evidence_line(a.evidence)]
    if m.prices_note:
        out += ["", f"Cost per task uses {m.prices_note}, in USD per 1M input/output tokens."]
    out.append("")
    out += _groups("Tools", m.tools) + _groups("Models", m.models)
    out += _regressions(m)
    out += ["## Trends", "", "OLS slope of per-bucket values over the period; listed only when the 95% confidence "
            "interval (Student's t, n-2 df) excludes zero.", ""]
    for t in m.trends:
        out += [f"- {t.headline()}", evidence_line(t.evidence)]
    if not m.trends:
        out.append("- no significant trend")
    out += ["", "## Bottlenecks (critical path)", ""]
    out += _bottlenecks(m)
    out += ["## Alerts fired", ""]
    for al in m.alerts:
        who = "" if al.agent is None else f" for `{al.agent}`"
        out.append(f"- **{al.rule}**{who} ({al.severity}): fired {al.fired}x, first at "
                   f"{fmt_time(al.first_fired_ns)}, now {al.last_state}" + (f": {al.summary}" if al.summary else ""))
    if not m.alerts:
        out.append("- none")
    out.append("")
    if m.metrics:
        out += ["## Resource use", ""]
        out += _table(["metric", "attributes", "n", "min", "mean", "max", "last"],
                      [[f"`{s.name}`", ", ".join(f"{k}={v}" for k, v in sorted(s.attributes.items())) or "-",
                        str(s.n), f"{s.minimum:.4g}", f"{s.mean:.4g}", f"{s.maximum:.4g}", f"{s.last:.4g}"]
                       for s in m.metrics[:40]])
        out.append("")
    return "\n".join(out) + "\n"


def _regressions(m: ReportModel) -> list[str]:
    p = m.policy
    out = ["## Regressions", "",
           f"Recent window vs baseline. Latency and tokens/task: {MW_TEST}; regression when p < {p.alpha} and the "
           f"median ratio is >= {p.min_ratio}, with >= {p.min_samples} samples in each window. Error ratio: "
           f"{Z_TEST}; regression when p < {p.alpha} and the ratio rose by >= {p.min_error_increase:.0%} points, "
           f">= {p.min_error_samples} samples each. {m.tests_run} tests run.", ""]
    for c in m.regressions:
        out += [f"- **REGRESSION: {c.headline()}**", evidence_line(c.evidence)]
    if not m.regressions:
        out.append("- no regression")
    return [*out, ""]


def _bottlenecks(m: ReportModel) -> list[str]:
    if not m.bottlenecks:
        return ["- no trace data (bottlenecks need spans)", ""]
    out: list[str] = []
    for dim in ("spent_in", "tool", "agent", "model", "task_type"):
        top = [b for b in m.bottlenecks if b.scope == "traces" and b.dimension == dim][:_TOP_BOTTLENECKS]
        if top:
            out.append(f"- traces, by {dim}: " + ", ".join(f"`{b.key}` {b.share:.0%}" for b in top))
            out.append(evidence_line(top[0].evidence))
    for scope in sorted({b.scope for b in m.bottlenecks if b.scope != "traces"}):
        top = [b for b in m.bottlenecks if b.scope == scope][:_TOP_BOTTLENECKS]
        agent = scope.split(":", 1)[1]
        out.append(f"- tasks of `{agent}`: " + ", ".join(f"`{b.key}` {b.share:.0%}" for b in top))
        out.append(evidence_line(top[0].evidence))
    return [*out, ""]
