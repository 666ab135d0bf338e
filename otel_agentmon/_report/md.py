"""The Markdown summary of a report: every finding followed by its evidence.

Names and values from spans (agents, tools, models, trace ids, alert texts, metric attributes) go
through ``md_text`` or ``md_code``: a ``|`` cannot split a table cell, a backtick cannot end a code
span, and no HTML, link or line break reaches a Markdown renderer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .._analytics.base import Evidence, fmt_time, fmt_window
from .findings import RULES, compact, findings, short_id, trace_url
from .model import GroupRow, ReportModel, policy_text

_TOP_OPPORTUNITIES = 10
_TOP_BOTTLENECKS = 3

_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# Backslashes, code spans and emphasis; ``]`` (every link and image needs one: a window's ``[a, b)``
# stays readable); ``<`` only where it could open HTML or an autolink (``p < 0.01`` stays readable);
# ``&`` only where it could start an entity reference.
_SPECIAL = re.compile(r"[\\`*\]]|<(?=[A-Za-z/!?])|&(?=[A-Za-z#])")


def md_text(value: object) -> str:
    """``value`` as literal Markdown text on one line (``|`` is escaped by the table that holds it)."""
    return _SPECIAL.sub(lambda mo: "\\" + mo.group(0), _BREAKS.sub(" ", str(value)))


def md_code(value: object) -> str:
    """A code span showing ``value`` literally: its fence is longer than any run of backticks in it."""
    text = _BREAKS.sub(" ", str(value)) or " "
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def evidence_line(ev: Evidence, indent: str = "  ") -> str:
    """``- evidence: <query>; `expression`; window; n; numbers; statistic; p; traces``."""
    parts = (p.label + ", ".join(md_code(v) if p.code else md_text(v) for v in p.values) for p in ev.parts())
    return f"{indent}- evidence: " + "; ".join(parts)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """A GFM table; a ``|`` in a cell (a code span's too) is escaped so it cannot split the cell."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def _groups(title: str, rows: list[GroupRow]) -> list[str]:
    if not rows:
        return []
    out = [f"## {title}", ""]
    out += _table([title[:-1].lower(), "calls", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "total ms"],
                  [[md_code(r.key), str(r.calls), str(r.errors), _ms(r.p50_s), _ms(r.p95_s), _ms(r.p99_s),
                    _ms(r.max_s), _ms(r.total_s)] for r in rows])
    return [*out, ""]


def render(m: ReportModel) -> str:
    out = [f"# {md_text(m.title)}", "", f"Source: {md_text(m.source)}  ", f"Period: {fmt_window(m.window)}  ",
           *(f"{md_text(n)}  " for n in m.notes), ""]
    out += _findings(m)
    out += ["## Highlights", ""]
    for h in m.highlights:
        out += [f"- **{md_text(h.what)}: {md_code(h.key)}**: {md_text(h.detail)}", evidence_line(h.evidence)]
    if not m.highlights:
        out.append("- no agent tasks or tool calls in this period")
    out += ["", "## Top optimisation opportunities", ""]
    for i, opp in enumerate(m.opportunities[:_TOP_OPPORTUNITIES], 1):
        out += [f"{i}. **{md_text(opp.title)}** ({md_text(opp.kind)}, score {opp.score:.2f})",
                evidence_line(opp.evidence, "   ")]
    if not m.opportunities:
        out.append("Nothing stands out in this period.")
    out += ["", "## Agents: performance and efficiency", ""]
    out += _table(["agent", "tasks", "failed", "error %", "tasks/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                   "utilisation", "tokens/task", "cost/task $"],
                  [[md_code(a.agent), str(a.tasks), str(a.failed), f"{a.error_ratio:.1%}", f"{a.throughput_per_s:.3g}",
                    _ms(a.p50_s), _ms(a.p95_s), _ms(a.p99_s), _ms(a.max_s), _pct(a.utilisation),
                    "-" if a.tokens_per_task is None else f"{a.tokens_per_task:.0f}",
                    "-" if a.cost_per_task_usd is None else f"{a.cost_per_task_usd:.5f}"] for a in m.agents])
    out.append("")
    for a in m.agents:
        out += [f"- {md_code(a.agent)}", evidence_line(a.evidence)]
    if m.prices_note:
        out += ["", f"Cost per task uses {md_text(m.prices_note)}, in USD per 1M input/output tokens; models are "
                "matched by exact name (or a listed dated alias)."
                + (f" Unpriced: {', '.join(md_code(u) for u in m.unpriced_models)}." if m.unpriced_models else "")]
    out.append("")
    out += _groups("Tools", m.tools) + _groups("Models", m.models)
    out += _regressions(m)
    out += ["## Trends", "", "OLS slope of per-bucket values over the period; listed only when the 95% confidence "
            "interval (Student's t, n-2 df) excludes zero and the period is long enough to fit a per-minute slope "
            "(see the rules at the end).", ""]
    for t in m.trends:
        out += [f"- {md_text(t.headline())}", evidence_line(t.evidence)]
    if not m.trends:
        out.append("- no significant trend")
    out += ["", "## Bottlenecks (critical path)", ""]
    out += _bottlenecks(m)
    out += ["## Alerts fired", ""]
    for al in m.alerts:
        who = "" if al.agent is None else f" for {md_code(al.agent)}"
        out.append(f"- **{md_text(al.rule)}**{who} ({md_text(al.severity)}): fired {al.fired}x, first at "
                   f"{fmt_time(al.first_fired_ns)}, now {md_text(al.last_state)}"
                   + (f": {md_text(al.summary)}" if al.summary else ""))
    if not m.alerts:
        out.append("- none")
    out.append("")
    if m.metrics:
        out += ["## Resource use", ""]
        out += _table(["metric", "attributes", "n", "min", "mean", "max", "last"],
                      [[md_code(s.name), ", ".join(md_text(f"{k}={v}") for k, v in sorted(s.attributes.items())) or "-",
                        str(s.n), f"{s.minimum:.4g}", f"{s.mean:.4g}", f"{s.maximum:.4g}", f"{s.last:.4g}"]
                       for s in m.metrics[:40]])
        out.append("")
    out += ["---", "", "Durations are in ms throughout. Left out as trivial or underpowered: "
            + "; ".join(md_text(r) for r in RULES) + ".", ""]
    return "\n".join(out) + "\n"


def _traces(m: ReportModel, trace_ids: tuple[str, ...]) -> str:
    """Short trace ids; links to the serve explorer when the report came from one."""
    out = []
    for tid in trace_ids:
        url = trace_url(m.trace_base, tid)
        out.append(md_code(short_id(tid)) if url is None else f"[{md_code(short_id(tid))}]({url})")
    return ", ".join(out)


def _findings(m: ReportModel) -> list[str]:
    """One line per finding, highest impact first, each with a compact evidence line."""
    out = ["## Findings", ""]
    found = findings(m)
    for i, f in enumerate(found, 1):
        traces = _traces(m, f.evidence.trace_ids)
        pieces = [md_text(compact(f.evidence))] + ([f"traces {traces}"] if traces else [])
        out += [f"{i}. **{md_text(f.title)}**", "   - evidence: " + "; ".join(p for p in pieces if p)]
    if not found:
        out.append("Nothing stands out in this period.")
    return [*out, ""]


def _regressions(m: ReportModel) -> list[str]:
    out = ["## Regressions", "", md_text(policy_text(m)), ""]
    for c in m.regressions:
        out += [f"- **REGRESSION: {md_text(c.headline())}**", evidence_line(c.evidence)]
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
            what = "time spent in" if dim == "spent_in" else f"by {dim.replace('_', ' ')}"
            out.append(f"- traces, {what}: " + ", ".join(f"{md_code(b.key)} {b.share:.0%}" for b in top))
            out.append(evidence_line(top[0].evidence))
    for scope in sorted({b.scope for b in m.bottlenecks if b.scope != "traces"}):
        top = [b for b in m.bottlenecks if b.scope == scope][:_TOP_BOTTLENECKS]
        agent = scope.split(":", 1)[1]
        out.append(f"- tasks of {md_code(agent)}: " + ", ".join(f"{md_code(b.key)} {b.share:.0%}" for b in top))
        out.append(evidence_line(top[0].evidence))
    return [*out, ""]
