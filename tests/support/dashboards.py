"""Every panel query of the shipped Grafana dashboards, evaluated against a real Prometheus."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

DASHBOARDS = Path(__file__).resolve().parents[2] / "collector-config" / "dashboards"


class Queryable(Protocol):
    def query(self, expr: str) -> list[dict[str, Any]]: ...


def panel_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) for every target of every panel."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield path.name, str(panel["title"]), str(target["expr"])


def empty_panels(prom: Queryable, deadline_s: float = 30.0, over: str | None = None) -> list[str]:
    """Panels whose query errors or returns no series, after waiting up to ``deadline_s`` for data;
    with ``over`` (e.g. ``"10m"``), no series at any time in that range (what a time-series panel shows)."""
    pending = [(board, title, f"last_over_time(({expr})[{over}:])" if over else expr)
               for board, title, expr in panel_queries()]
    assert pending, f"no dashboards found in {DASHBOARDS}"
    stop = time.monotonic() + deadline_s
    while True:
        failing = []
        for board, title, expr in pending:
            try:
                if not prom.query(expr):
                    failing.append((board, title, expr))
            except Exception as exc:
                failing.append((board, title, f"{expr} -> {exc}"))
        if not failing or time.monotonic() > stop:
            return [f"{board} / {title}: {expr}" for board, title, expr in failing]
        pending = failing
        time.sleep(1.0)

