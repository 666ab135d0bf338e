"""``agentmon rules check|export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._alerts.rule_file import check_rule_file
from .._alerts.rules import to_prometheus


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules_parser = sub.add_parser("rules", help="alert rule files")
    rules_parser.set_defaults(run=run)
    rules = rules_parser.add_subparsers(dest="action", required=True)
    check = rules.add_parser("check", help="validate a rule file")
    check.add_argument("file", type=Path)
    export = rules.add_parser("export", help="print the rules as a Prometheus alerting-rules file")
    export.add_argument("file", type=Path)
    export.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    export.add_argument("--group", default="agentmon", help="rule group name (default: agentmon)")


def run(args: argparse.Namespace) -> int:
    report = check_rule_file(args.file)
    if report.errors:  # every problem at once, each with its line, compiler style
        for error in report.errors:
            print(error, file=sys.stderr)
        count = len(report.errors)
        print(f"agentmon: {args.file}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    loaded = report.rules
    if args.action == "check":
        print(f"{args.file}: {len(loaded)} rules OK")
        return 0
    text = to_prometheus(loaded, group=args.group)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
