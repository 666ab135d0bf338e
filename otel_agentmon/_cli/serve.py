"""``agentmon serve``: the local OTLP/HTTP receiver with a live dashboard."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import webbrowser
from pathlib import Path
from types import FrameType

from .._alerts.notify import LoggingNotifier
from .._alerts.rules import load_rules, parse_duration
from .._health.loop import HealthPolicy

TOKEN_ENV = "AGENTMON_SERVE_TOKEN"


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="receive OTLP/HTTP from any number of processes and show a live dashboard",
                       description="A local OTLP/HTTP receiver (traces, metrics, logs) with a bounded store, "
                                   "health and alert evaluation, and a live web dashboard at its URL.")
    p.set_defaults(run=run)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1; another address opens OTLP ingestion to other "
                        "machines, and the dashboard and /api/* to them only with --token)")
    p.add_argument("--port", type=int, default=4318, help="port (default: 4318, the OTLP/HTTP port; 0: any free)")
    p.add_argument("--retention", type=_duration, default=3600.0, help="keep spans this long (default: 1h)")
    p.add_argument("--max-spans", type=int, default=200_000, help="keep at most this many spans (default: 200000)")
    p.add_argument("--max-memory-mb", type=float, default=256.0,
                   help="estimated memory of the kept spans, oldest evicted first (default: 256)")
    p.add_argument("--rules", type=Path, help="alert rule file (YAML, as for configure(alert_rules=...))")
    p.add_argument("--heartbeat-timeout", type=_duration, default=10.0,
                   help="an agent whose processes send nothing for this long (or 3 of their metric "
                        "export intervals, if longer) is down, unless they said it stopped (default: 10s)")
    p.add_argument("--stuck-after", type=_duration, default=60.0, help="a task running this long is stuck")
    p.add_argument("--stopped-grace", type=_duration, default=300.0,
                   help="show an agent that stopped cleanly this long, then let it go (default: 5m)")
    p.add_argument("--record", type=Path, help="also write everything received to this JSON Lines recording")
    p.add_argument("--record-max-mb", type=float, default=64.0, help="rotate the recording at this size")
    p.add_argument("--open", action="store_true", dest="open_browser",
                   help="open the dashboard in the default web browser (honours $BROWSER)")
    p.add_argument("--duration", type=_duration, help="stop after this long (default: run until Ctrl-C)")
    p.add_argument("--token", default=None,
                   help=f"access token other machines present (Authorization: Bearer <token>) to read the dashboard "
                        f"and /api/*; default: ${TOKEN_ENV} (preferred: a command line is visible to other users)")
    p.add_argument("--max-connections", type=int, default=256,
                   help="connections open at once (default: 256); past it the one idle longest is closed")
    p.add_argument("--request-timeout", type=_duration, default=30.0,
                   help="a connection must send each request (headers and body) within this (default: 30s)")
    p.add_argument("--idle-timeout", type=_duration, default=60.0,
                   help="a kept-alive connection may wait this long for its next request (default: 60s)")
    p.add_argument("--max-request-memory-mb", type=float, default=96.0,
                   help="memory all requests being read and decoded may hold at once, beyond the store "
                        "(default: 96); past it a request waits, then gets 503")


def _open_browser(url: str) -> None:
    """Open ``url`` in a browser without holding up the server (a console browser can block)."""

    def opener() -> None:
        try:
            opened = webbrowser.open_new_tab(url)
        except Exception:  # noqa: BLE001 - no browser is not a reason to stop serving
            opened = False
        if not opened:
            print(f"agentmon serve: could not open a browser here; open {url}", file=sys.stderr, flush=True)

    threading.Thread(target=opener, name="agentmon-open-browser", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    from ..serve import Limits, ServeConfig, Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        rules = load_rules(args.rules) if args.rules is not None else []
    except (OSError, ValueError) as exc:
        print(f"agentmon serve: {args.rules}: {exc}", file=sys.stderr)
        return 1
    limits = Limits(retention_s=args.retention, max_spans=max(1, args.max_spans),
                    max_memory_bytes=int(args.max_memory_mb * 1024 * 1024))
    policy = HealthPolicy(heartbeat_timeout=args.heartbeat_timeout, stuck_after=args.stuck_after, cpu_limit=None,
                          stopped_grace=args.stopped_grace)
    config = ServeConfig(host=args.host, port=args.port, limits=limits, policy=policy, rules=rules,
                         notifiers=[LoggingNotifier()] if rules else [], record=args.record,
                         record_max_bytes=int(args.record_max_mb * 1024 * 1024),
                         token=args.token or os.environ.get(TOKEN_ENV) or None,
                         max_connections=max(1, args.max_connections), request_timeout=args.request_timeout,
                         idle_timeout=args.idle_timeout,
                         max_request_memory_bytes=int(args.max_request_memory_mb * 1024 * 1024))
    try:
        server = Server(config)
    except OSError as exc:
        print(f"agentmon serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
              f"(another receiver running? try --port 0)", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    with server:
        print(f"agentmon serve: dashboard and OTLP/HTTP endpoint at {server.url}", flush=True)
        print(f"  export with OTEL_EXPORTER_OTLP_ENDPOINT={server.url}  (Ctrl-C to stop)", flush=True)
        if args.open_browser:
            _open_browser(server.url)
        try:
            stop.wait(args.duration)
        except KeyboardInterrupt:
            pass
        stats = server.store.stats()
    print(f"agentmon serve: stopped; received {stats.get('spans_received', 0)} spans, "
          f"{stats.get('points_received', 0)} metric points, {stats.get('events_received', 0)} events", flush=True)
    return 0
