"""The HTML report: one self-contained file, inline CSS and inline SVG charts, nothing to fetch.

No scripts, no fonts, no images by URL, no external stylesheets: it opens offline, from a mail
attachment or a CI artifact, exactly as it was written.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from .._analytics.base import Evidence, fmt_time, fmt_window
from .findings import RULES, compact, findings, short_id, trace_url
from .model import ReportModel, Series, policy_text

_PALETTE = ("#2f6fbd", "#d9534f", "#3a9d5d", "#e08e0b", "#7b52ab", "#17a2b8", "#8c564b", "#e377c2", "#555555")
_W, _H, _PAD_L, _PAD_B, _PAD_T, _PAD_R = 640, 220, 56, 28, 24, 28

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
color:#222;line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:.9em;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f6f8}td:first-child,th:first-child{text-align:left}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em;background:#f4f6f8;padding:0 3px;
overflow-wrap:anywhere}
.ev{font-size:.82em;color:#555;margin:2px 0 10px 18px}.meta{color:#555}
.bad{color:#b52b27;font-weight:600}.charts{display:flex;flex-wrap:wrap;gap:16px}
svg{background:#fff;border:1px solid #e3e3e3;max-width:100%;height:auto}svg text{font-size:11px;fill:#333}
.charts>svg{flex:1 1 320px}.opp li{margin-bottom:6px}.tw{overflow-x:auto;max-width:100%}
.findings li{margin-bottom:6px}details>summary{cursor:pointer}details .ev{margin-left:0}
.tr{font-size:.82em;color:#555}footer{margin-top:32px;border-top:1px solid #ddd;font-size:.85em;color:#555}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _evidence(ev: Evidence, base: str = "") -> str:
    """The same pieces as the Markdown evidence line (``Evidence.parts``), every value escaped,
    folded in a ``<details>``; trace ids link to the serve explorer when ``base`` is its URL."""
    def value(name: str, v: str, code: bool) -> str:
        text = f"<code>{_e(v)}</code>" if code else _e(v)
        url = trace_url(base, v) if name == "traces" else None
        return text if url is None else f'<a href="{_e(url)}">{text}</a>'

    parts = (_e(p.label) + ", ".join(value(p.name, v, p.code) for v in p.values) for p in ev.parts())
    return f'<details><summary>evidence</summary><div class="ev">evidence: {"; ".join(parts)}</div></details>'


def _short_traces(ev: Evidence, base: str) -> str:
    out = []
    for tid in ev.trace_ids:
        url = trace_url(base, tid)
        code = f"<code>{_e(short_id(tid))}</code>"
        out.append(code if url is None else f'<a href="{_e(url)}">{code}</a>')
    return "" if not out else f'traces {", ".join(out)}'


def _nice(v: float) -> str:
    return f"{v:.3g}"


def line_chart(series: Series, title: str, unit: str) -> str:
    """An inline SVG line chart of ``series`` (x: seconds from the period's start)."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return ""
    x_max = max(p[0] for p in points) or 1.0
    y_max = max(p[1] for p in points) or 1.0
    pw, ph = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def xy(x: float, y: float) -> str:
        return f"{_PAD_L + x / x_max * pw:.1f},{_PAD_T + ph - y / y_max * ph:.1f}"

    height = _H + 16 * ((len(series) + 3) // 4)
    parts = [f'<svg viewBox="0 0 {_W} {height}" width="100%" style="max-width:{_W}px" role="img" '
             f'aria-label="{_e(title)}">', f'<text x="{_PAD_L}" y="15" font-weight="600">{_e(title)}</text>']
    for i in range(5):
        y = y_max * i / 4
        py = _PAD_T + ph - ph * i / 4
        parts.append(f'<line x1="{_PAD_L}" y1="{py:.1f}" x2="{_W - _PAD_R}" y2="{py:.1f}" stroke="#eee"/>'
                     f'<text x="{_PAD_L - 4}" y="{py + 4:.1f}" text-anchor="end">{_nice(y)}{_e(unit)}</text>')
        px = _PAD_L + pw * i / 4
        parts.append(f'<text x="{px:.1f}" y="{_H - 10}" text-anchor="middle">{_nice(x_max * i / 4)}s</text>')
    for idx, (name, pts) in enumerate(sorted(series.items())):
        color = _PALETTE[idx % len(_PALETTE)]
        if len(pts) == 1:
            parts.append(f'<circle cx="{xy(*pts[0]).split(",")[0]}" cy="{xy(*pts[0]).split(",")[1]}" r="3" '
                         f'fill="{color}"/>')
        else:
            coords = " ".join(xy(x, y) for x, y in sorted(pts))
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{coords}"/>')
        lx, ly = _PAD_L + (idx % 4) * 140, _H + 12 + 16 * (idx // 4)
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{lx + 14}" y="{ly}">{_e(name[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(items: Sequence[tuple[str, float]], title: str, fmt: str = "{:.0%}") -> str:
    """An inline SVG horizontal bar chart."""
    if not items:
        return ""
    row, label_w = 20, 170
    height = _PAD_T + row * len(items) + 8
    top = max(v for _, v in items) or 1.0
    parts = [f'<svg viewBox="0 0 {_W} {height}" width="100%" style="max-width:{_W}px" role="img" '
             f'aria-label="{_e(title)}">',
             f'<text x="4" y="15" font-weight="600">{_e(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = _PAD_T + i * row
        w = max(1.0, value / top * (_W - label_w - 70))
        color = _PALETTE[i % len(_PALETTE)]
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{_e(label[:28])}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="13" fill="{color}"/>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{_e(fmt.format(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="tw"><table><tr>{head}</tr>{body}</table></div>'


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f}"


def _findings(m: ReportModel) -> list[str]:
    found = findings(m)
    out = ['<h2>Findings</h2><ol class="findings">']
    for f in found:
        pieces = [_e(compact(f.evidence)), _short_traces(f.evidence, m.trace_base)]
        out.append(f'<li><b>{_e(f.title)}</b><details><summary>evidence</summary><div class="ev">evidence: '
                   + "; ".join(p for p in pieces if p) + "</div></details></li>")
    out.append("</ol>" + ("" if found else "<p>Nothing stands out in this period.</p>"))
    return out


def render(m: ReportModel) -> str:
    def ev(evidence: Evidence) -> str:
        return _evidence(evidence, m.trace_base)

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(m.title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{_e(m.title)}</h1>",
           f'<p class="meta">Source: {_e(m.source)}<br>Period: {_e(fmt_window(m.window))}<br>'
           + "<br>".join(_e(n) for n in m.notes) + "</p>"]
    out += _findings(m)
    out.append("<h2>Highlights</h2><ul>")
    for h in m.highlights:
        out.append(f"<li><b>{_e(h.what)}: <code>{_e(h.key)}</code></b>: {_e(h.detail)}{ev(h.evidence)}</li>")
    out.append("</ul><h2>Top optimisation opportunities</h2><ol class=\"opp\">")
    for opp in m.opportunities[:10]:
        out.append(f"<li><b>{_e(opp.title)}</b> ({_e(opp.kind)}, score {opp.score:.2f}){ev(opp.evidence)}</li>")
    out.append("</ol>" + ("" if m.opportunities else "<p>Nothing stands out in this period.</p>"))
    out.append("<h2>Agents: performance and efficiency</h2>")
    out.append(_table(
        ["agent", "tasks", "failed", "error %", "tasks/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "utilisation",
         "tokens/task", "cost/task $"],
        [[f"<code>{_e(a.agent)}</code>", str(a.tasks), str(a.failed), f"{a.error_ratio:.1%}",
          f"{a.throughput_per_s:.3g}", _ms(a.p50_s), _ms(a.p95_s), _ms(a.p99_s), _ms(a.max_s),
          "-" if a.utilisation is None else f"{a.utilisation:.0%}",
          "-" if a.tokens_per_task is None else f"{a.tokens_per_task:.0f}",
          "-" if a.cost_per_task_usd is None else f"{a.cost_per_task_usd:.5f}"] for a in m.agents]))
    if m.prices_note:
        unpriced = ", ".join(f"<code>{_e(u)}</code>" for u in m.unpriced_models)
        out.append(f'<p class="meta">Cost per task uses {_e(m.prices_note)}, in USD per 1M input/output '
                   f"tokens; models are matched by exact name (or a listed dated alias)."
                   + (f" Unpriced: {unpriced}." if unpriced else "") + "</p>")
    out.append('<div class="charts">' + line_chart(m.latency_chart, "task p50 latency by agent (ms)", " ms")
               + line_chart(m.throughput_chart, "tasks per second by agent", "/s") + "</div>")
    for title, rows in (("Tools", m.tools), ("Models", m.models)):
        if rows:
            out.append(f"<h2>{title}</h2>" + _table(
                [title[:-1].lower(), "calls", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "total ms"],
                [[f"<code>{_e(r.key)}</code>", str(r.calls), str(r.errors), _ms(r.p50_s), _ms(r.p95_s),
                  _ms(r.p99_s), _ms(r.max_s), _ms(r.total_s)] for r in rows]))
    out += _regressions(m)
    out.append("<h2>Trends</h2><p>OLS slope of per-bucket values; shown only when the 95% confidence interval "
               "excludes zero and the period is long enough to fit a per-minute slope.</p><ul>")
    out += [f"<li>{_e(t.headline())}{ev(t.evidence)}</li>" for t in m.trends]
    out.append("</ul>" + ("" if m.trends else "<p>No significant trend.</p>"))
    out += _bottlenecks(m)
    out.append("<h2>Alerts fired</h2><ul>")
    for al in m.alerts:
        who = "" if al.agent is None else f" for <code>{_e(al.agent)}</code>"
        out.append(f"<li><b>{_e(al.rule)}</b>{who} ({_e(al.severity)}): fired {al.fired}x, first at "
                   f"{_e(fmt_time(al.first_fired_ns))}, now {_e(al.last_state)} {_e(al.summary)}</li>")
    out.append("</ul>" + ("" if m.alerts else "<p>None.</p>"))
    out += _resources(m)
    out.append("<footer><p>Durations are in ms throughout. Left out as trivial or underpowered: "
               + "; ".join(_e(r) for r in RULES) + ".</p></footer>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _regressions(m: ReportModel) -> list[str]:
    out = ["<h2>Regressions</h2>", f"<p>{_e(policy_text(m))}</p><ul>"]
    for c in m.regressions:
        out.append(f'<li><span class="bad">REGRESSION</span>: {_e(c.headline())}{_evidence(c.evidence, m.trace_base)}'
                   "</li>")
    out.append("</ul>" + ("" if m.regressions else "<p>No regression.</p>"))
    bars = [b for c in m.regressions if c.metric == "latency"
            for b in ((f"{c.key} baseline", c.baseline_value * 1000), (f"{c.key} recent", c.recent_value * 1000))]
    if bars:
        out.append(bar_chart(bars[:16], "median latency, baseline vs recent (ms)", "{:.4g} ms"))
    return out


def _bottlenecks(m: ReportModel) -> list[str]:
    out = ["<h2>Bottlenecks (critical path)</h2>"]
    traces = [b for b in m.bottlenecks if b.scope == "traces" and b.dimension == "spent_in"][:8]
    if not m.bottlenecks:
        return [*out, "<p>No trace data (bottlenecks need spans).</p>"]
    out.append(bar_chart([(b.key, b.share) for b in traces], "where traces' critical-path time is spent"))
    out.append("<ul>")
    for scope in sorted({b.scope for b in m.bottlenecks if b.scope != "traces"}):
        top = [b for b in m.bottlenecks if b.scope == scope][:3]
        out.append(f"<li>tasks of <code>{_e(scope.split(':', 1)[1])}</code>: "
                   + ", ".join(f"<code>{_e(b.key)}</code> {b.share:.0%}" for b in top)
                   + _evidence(top[0].evidence, m.trace_base)
                   + "</li>")
    out.append("</ul>")
    return out


def _resources(m: ReportModel) -> list[str]:
    if not m.metrics:
        return []
    out = ["<h2>Resource use</h2>", '<div class="charts">']
    by_name: dict[str, Series] = {}
    for s in m.metrics:
        label = ",".join(f"{v}" for _, v in sorted(s.attributes.items())) or s.name
        by_name.setdefault(s.name, {})[label] = [((t - m.window.start_ns) / 1e9, v) for t, v in s.series
                                                 if t >= m.window.start_ns]
    for name, series in sorted(by_name.items())[:8]:
        out.append(line_chart(dict(sorted(series.items())[:9]), name, ""))
    out.append("</div>")
    return out
