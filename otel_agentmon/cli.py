"""The ``agentmon`` command line.

    agentmon rules check FILE             validate a rule file
    agentmon rules export FILE [-o OUT]   print (or write) the equivalent Prometheus rule file
    agentmon serve [--open]               local OTLP receiver, live dashboard and trace explorer
    agentmon report --from SOURCE         HTML + Markdown report from a recording, serve or Prometheus
    agentmon --version

Each command lives in its own ``_cli_<name>`` module with ``add_parser(sub)``, which sets a
``run(args) -> int`` default on its parser.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Callable, Sequence
from typing import cast

from ._cli import report as _cli_report
from ._cli import rules as _cli_rules
from ._cli import serve as _cli_serve

_COMMANDS = (_cli_rules, _cli_serve, _cli_report)


def _version() -> str:
    """The installed distribution's version (what pip shows), else the package's own."""
    try:
        return importlib.metadata.version("otel_agentmon")
    except importlib.metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentmon", description="otel_agentmon tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
    args = parser.parse_args(argv)
    run = cast(Callable[[argparse.Namespace], int], args.run)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
