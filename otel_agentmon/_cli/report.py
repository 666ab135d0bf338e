"""``agentmon report``: an HTML file and a Markdown summary of a period.

    agentmon report --from run.jsonl --html report.html --markdown report.md
    agentmon report --from http://127.0.0.1:4318 --since 1h            # a running agentmon serve
    agentmon report --prometheus http://127.0.0.1:9090 --since 1h --html report.html
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._analytics.base import load_prices
from .._report import html as _report_html
from .._report import md as _report_md
from .._report.model import ReportModel, from_insights
from .._report.sources import describe, is_url, load, period, serve_base
from ..analytics import analyze

#: Period of a Prometheus report when none is given.
DEFAULT_PROMETHEUS_SINCE = "1h"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report", help="HTML and Markdown report of a period: performance, efficiency, trends, regressions",
        description="Analyse a recorded run (--from FILE), a running `agentmon serve` (--from URL) or a "
                    "Prometheus server (--prometheus URL) and write a self-contained HTML report and/or a "
                    "Markdown summary (stdout when neither --html nor --markdown is given).")
    p.set_defaults(run=run)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="source", metavar="FILE|URL",
                     help="a JSON Lines recording, a Collector file exporter's file (OTLP JSON lines, "
                          "proto or zstd), or the base URL of agentmon serve (reads /api/export)")
    src.add_argument("--prometheus", metavar="URL", help="a Prometheus server (PromQL over /api/v1/query_range)")
    p.add_argument("--since", help="report the last DURATION (e.g. 30m, 1h, 2d)")
    p.add_argument("--start", help="period start: Unix seconds or ISO 8601 (UTC unless a zone is given)")
    p.add_argument("--end", help="period end: Unix seconds or ISO 8601 (default: now / the last span)")
    p.add_argument("--html", type=Path, help="write the self-contained HTML report here")
    p.add_argument("--markdown", type=Path, help="write the Markdown summary here ('-': stdout)")
    p.add_argument("--prices", type=Path, help="model price table, JSON or YAML: {model: [input, output]} USD/1M "
                                                "tokens (default: a dated example table)")
    p.add_argument("--recent", type=float, default=1 / 3, metavar="FRACTION",
                   help="regressions compare the last FRACTION of the period with the rest (default: 1/3)")
    p.add_argument("--job", help="Prometheus only: restrict to this job (service.name)")


def run(args: argparse.Namespace) -> int:
    try:
        model = _build(args)
    except (OSError, ValueError) as exc:
        print(f"agentmon report: {exc}", file=sys.stderr)
        return 1
    wrote = []
    try:
        if args.html is not None:
            args.html.write_text(_report_html.render(model), encoding="utf-8")
            wrote.append(str(args.html))
        markdown = _report_md.render(model)
        if args.markdown is not None and str(args.markdown) != "-":
            args.markdown.write_text(markdown, encoding="utf-8")
            wrote.append(str(args.markdown))
        elif args.markdown is not None or args.html is None:
            sys.stdout.write(markdown)
    except OSError as exc:
        print(f"agentmon report: {exc}", file=sys.stderr)
        return 1
    if wrote:
        print(f"agentmon report: wrote {', '.join(wrote)}", file=sys.stderr)
    return 0


def _build(args: argparse.Namespace) -> ReportModel:
    if not 0 < args.recent < 1:
        raise ValueError("--recent must be between 0 and 1")
    since = args.since
    if args.prometheus is not None and since is None and args.start is None:
        since = DEFAULT_PROMETHEUS_SINCE
    start, end = period(since, args.start, args.end)
    if args.prometheus is not None:
        from .._report.prom import build_model

        return build_model(args.prometheus, start, end, job=args.job, recent_fraction=args.recent)
    prices = load_prices(args.prices) if args.prices is not None else None
    rec = load(args.source)
    if not rec.spans and not rec.alerts and not rec.metrics:
        raise ValueError(f"{args.source}: no spans, alerts or metrics in it")
    insights = analyze(rec.spans, rec.alerts, rec.metrics,
                       start_ns=None if start is None else int(start * 1e9),
                       end_ns=None if end is None else int(end * 1e9),
                       recent_fraction=args.recent, prices=prices)
    model = from_insights(insights, describe(args.source))
    if is_url(args.source):  # trace ids link to its explorer
        model.trace_base = serve_base(args.source)
    if rec.skipped:
        model.notes.append(f"{rec.skipped} unreadable lines skipped")
    if insights.spans == 0:
        model.notes.append("no spans in the period")
    return model
