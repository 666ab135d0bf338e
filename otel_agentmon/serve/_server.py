"""``Server``: the OTLP receiver, the store, the health evaluation and the dashboard, wired together.

    with Server(ServeConfig(port=0)) as server:
        print(server.url)          # export OTLP/HTTP here; open it in a browser for the dashboard
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Final

from .._alerts.engine import AlertRule
from .._alerts.notify import Notifier
from .._core.guard import after_fork_in_child
from .._core.hostcheck import is_loopback
from .._health.loop import HealthPolicy
from .._records.recording import DEFAULT_MAX_BYTES, RecordingWriter
from .._records.records import SpanRecord
from ._body import read_body
from ._budget import Busy, ByteBudget, Reservation
from ._decode import FLUSH_POINTS, pieces, request_cost
from ._http import HTTPServer, dumps
from ._ingest import KEPT_METRICS, apply_event, apply_points
from ._insights import InsightsCache
from ._live import Evaluator, View
from ._otlp import BadRequest, Decoded, Point, TooLarge, response
from ._publisher import Publisher
from ._recorder import QueuedRecorder, alert_record, metric_sample
from ._store import Alert, Limits, Store, instance_key

_LOG: Final = logging.getLogger("otel_agentmon.serve")
DEFAULT_PORT: Final = 4318
EXPORT_CHUNK_LINES: Final = 1000  # JSON Lines per chunk of a streamed /api/export


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0: any free port
    limits: Limits = dataclasses.field(default_factory=Limits)
    #: serve's own process is not the agents' process: no CPU/memory pressure rule by default
    policy: HealthPolicy = dataclasses.field(default_factory=lambda: HealthPolicy(cpu_limit=None))
    rules: Sequence[AlertRule] = ()
    notifiers: Sequence[Notifier] = ()
    health_interval: float = 0.25
    push_interval: float = 0.2  # at most 5 dashboard updates a second
    max_body_bytes: int = 16 * 1024 * 1024  # compressed or not, and after inflating
    #: bytes all requests being read and decoded may hold at once (bodies and decoding): past it
    #: a request waits up to ``budget_wait`` s, then gets 503; one that needs more gets 413
    max_request_memory_bytes: int = 96 * 1024 * 1024
    budget_wait: float = 2.0
    #: connections open at once; past it a new one closes the one waiting longest for its request
    #: (or is closed itself when every connection is busy)
    max_connections: int = 256
    #: a connection must deliver each request (line, headers and body) this fast, and read its answer
    request_timeout: float = 30.0
    #: a kept-alive connection may wait this long for its next request
    idle_timeout: float = 60.0
    #: when set, clients on other machines may read the dashboard and its APIs with
    #: ``Authorization: Bearer <token>`` (or the page opened once as ``/?token=<token>``)
    token: str | None = None
    record: Path | None = None
    record_max_bytes: int = DEFAULT_MAX_BYTES


class Server:
    """Binds at construction (``OSError`` when the port is taken); ``start()`` serves."""

    def __init__(self, config: ServeConfig | None = None) -> None:
        self.config = config = config or ServeConfig()
        self.stopping = threading.Event()
        self.store = Store(config.limits)
        self.evaluator = Evaluator(self.store, config.policy, list(config.rules), config.health_interval,
                                   config.notifiers)
        self.view = View(self.store, self.evaluator)
        self.insights = InsightsCache(self.store)
        self.budget = ByteBudget(config.max_request_memory_bytes)
        self.recorder: QueuedRecorder | None = None
        if config.record is not None:
            self.recorder = QueuedRecorder(RecordingWriter(config.record, config.record_max_bytes))
            self._attach_recorder(self.recorder)
        try:
            self.httpd = HTTPServer((config.host, config.port), self)
        except OSError:
            self.evaluator.stop()
            if self.recorder is not None:
                self.recorder.close()
            raise
        if not is_loopback(config.host):
            _LOG.warning(
                "serve: listening on %s, reachable from other machines: OTLP ingestion is open to them; the "
                "dashboard and its APIs (/api/state, /api/stream, /api/traces, /api/trace, /api/insights, "
                "/api/export) %s", config.host or "all addresses",
                "need the access token from them" if config.token else
                "answer loopback clients only (403 for others; set an access token with --token or "
                "AGENTMON_SERVE_TOKEN to open them)")
        self.publisher = Publisher(self._state_json, self.store.changed, lambda: self.store.version,
                                   config.push_interval, self.stopping, self._maintain)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="agentmon-serve-http", daemon=True)
        self._static: dict[str, bytes] = {}
        after_fork_in_child(self._after_fork_in_child)

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def start(self) -> Server:
        self._thread.start()
        self.publisher.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe before ``start()`` and more than once."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        with self.store.changed:
            self.store.changed.notify_all()
        self.publisher.close()
        if self._thread.is_alive():  # shutdown() waits for serve_forever: only if it runs
            self.httpd.shutdown()
        self.httpd.server_close()
        self.evaluator.stop()
        if self.recorder is not None:
            self.recorder.close()

    def _after_fork_in_child(self) -> None:
        """A forked child drops the inherited server: the parent serves (and records). Its threads
        do not exist here and its locks may be held, so only the listening socket is closed."""
        stopped = threading.Event()  # a fresh one: the inherited one's lock may be held
        stopped.set()
        self.stopping = stopped
        try:
            self.httpd.socket.close()
        except OSError:
            pass

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- ingestion ----------------------------------------------------------------------------
    def receive(self, signal: str, body: bytes, encoding: str, is_json: bool) -> tuple[int, bytes]:
        """One export request whose (compressed) body is in memory: (HTTP status, response body or
        error message). The HTTP front reads the body off the connection into ``ingest`` instead."""
        with self.budget.reservation() as reservation:
            try:
                raw = read_body(io.BytesIO(body), str(len(body)), "", encoding, self.config.max_body_bytes,
                                reservation, self.config.budget_wait)
            except TooLarge as exc:
                return 413, str(exc).encode()
            except BadRequest as exc:
                self.store.counts[f"{signal}_requests_bad"] += 1
                return 400, str(exc).encode()
            except Busy as exc:
                self.store.counts[f"{signal}_requests_refused"] += 1
                return 503, str(exc).encode()
            return self.ingest(signal, raw, is_json, reservation)

    def ingest(self, signal: str, body: bytes | bytearray, is_json: bool,
               reservation: Reservation) -> tuple[int, bytes]:
        """Decode and keep one export request, a piece at a time, once ``reservation`` holds what
        decoding it can take: (HTTP status, response body or error message)."""
        rejected, error = 0, ""
        points: list[Point] = []
        processes: set[tuple[str, str]] = set()
        try:
            held = max(reservation.held, len(body))  # (an inflated body's buffer may be larger than it)
            reservation.grow_to(held + request_cost(signal, body, is_json), self.config.budget_wait)
            for piece in pieces(signal, body, is_json, KEPT_METRICS):
                rejected += piece.rejected
                error = piece.error or error
                self._ingest(signal, piece, points, processes)
                del piece  # (not alive while the next piece is decoded)
        except TooLarge as exc:
            return 413, str(exc).encode()
        except BadRequest as exc:  # before anything was kept: the framing is checked first
            self.store.counts[f"{signal}_requests_bad"] += 1
            return 400, str(exc).encode()
        except Busy as exc:
            self.store.counts[f"{signal}_requests_refused"] += 1
            return 503, str(exc).encode()
        finally:
            if points or processes:
                self._add_points(points, processes)
        if rejected:
            self.store.counts[f"{signal}_rejected"] += rejected
        return 200, response(signal, rejected, error, is_json)

    def _ingest(self, signal: str, decoded: Decoded, points: list[Point], processes: set[tuple[str, str]]) -> None:
        try:
            if signal == "traces":
                self.store.add_spans([rec for rec, _ in decoded.spans], decoded.resources)
                self.evaluator.feed(decoded.spans)
                # Derive here, piece by piece: the derivation queue then holds one piece, not up to
                # its 65,536 spans (about 60 MB of span objects) behind a burst of large requests.
                self.evaluator.deriver.process_pending()
            elif signal == "metrics":
                points.extend(decoded.points)
                processes.update(instance_key(resource) for resource in decoded.resources)
                if len(points) >= FLUSH_POINTS or len(processes) >= FLUSH_POINTS:
                    self._add_points(points, processes)  # (a series' points summed apart: huge requests only)
            else:
                for event in decoded.logs:
                    self.store.add_event(event, "otlp", apply_event)
        except Exception:  # noqa: BLE001 - a bug here must not turn into a retry storm
            _LOG.exception("ingesting %s failed", signal)

    def _add_points(self, points: list[Point], processes: set[tuple[str, str]]) -> None:
        """Apply the points kept so far of a metrics request; ``processes``: those it came from."""
        try:
            self.store.add_points(points, apply_points)
            self.evaluator.metrics_arrived(points)  # the processes are reporting
            for key in processes:  # (also those whose metrics serve does not keep)
                self.evaluator.liveness.metrics_arrived(key)
        except Exception:  # noqa: BLE001
            _LOG.exception("ingesting metrics failed")
        points.clear()
        processes.clear()

    # --- outputs ------------------------------------------------------------------------------
    def _maintain(self) -> None:
        self.store.expire()
        self.view.prune()

    def _state_json(self) -> bytes:
        self.store.expire()
        return dumps(self.view.state())  # no NaN: the browser's JSON.parse rejects it

    def state_bytes(self) -> bytes:
        return self._state_json()

    def export_chunks(self, lines_per_chunk: int = EXPORT_CHUNK_LINES) -> Iterator[bytes]:
        """The store as a recording (JSON Lines: spans, alert transitions, metric samples), in
        chunks of ``lines_per_chunk`` lines: taken from a snapshot of the store, encoded as sent."""
        records = self.store.spans()
        with self.store.lock:
            alerts = sorted([*self.store.alerts.values(), *self.store.resolved], key=lambda a: a.at)
            series = {k: list(v) for k, v in self.store.series.items()}
        lines: list[str] = []
        for obj in self._export_objects(records, alerts, series):
            lines.append(json.dumps(obj, separators=(",", ":"), default=str))
            if len(lines) >= lines_per_chunk:
                yield ("\n".join(lines) + "\n").encode()
                lines.clear()
        if lines:
            yield ("\n".join(lines) + "\n").encode()

    @staticmethod
    def _export_objects(records: Iterator[SpanRecord], alerts: list[Alert],
                        series: dict[tuple[str, str, str], list[tuple[float, float]]]) -> Iterator[dict[str, object]]:
        for record in records:
            yield record.to_json()
        for alert in alerts:
            if alert.state == "resolved":  # its firing too, or the report would count it 0 times
                yield alert_record(dataclasses.replace(alert, state="firing", at=alert.since)).to_json()
                yield alert_record(alert).to_json()
            else:  # still firing: since it started, as a recording has it (not its last refresh)
                yield alert_record(dataclasses.replace(alert, at=alert.since)).to_json()
        for (name, service, instance), points in series.items():
            for t, value in points:
                yield metric_sample(name, (service, instance), t, value).to_json()

    def export_bytes(self) -> bytes:
        """The whole export in memory (for tests and small stores; ``/api/export`` streams)."""
        return b"".join(self.export_chunks())

    def static_file(self, path: str) -> bytes | None:
        name = "index.html" if path in ("", "/", "/index.html") else path.removeprefix("/static/")
        if "/" in name or name.startswith("."):
            return None
        cached = self._static.get(name)
        if cached is None:
            try:
                cached = (resources.files(__package__) / "static" / name).read_bytes()
            except (OSError, ValueError):
                return None
            self._static[name] = cached
        return cached

    def _attach_recorder(self, recorder: QueuedRecorder) -> None:
        """The store's listeners only queue (they run under its lock); the recorder's thread writes."""
        def on_alert(alert: Alert) -> None:
            if alert.state in ("firing", "resolved"):
                recorder.put(alert)

        def on_point(name: str, key: tuple[str, str], t: float, value: float) -> None:
            recorder.put((name, key, t, value))

        self.store.on_span, self.store.on_alert, self.store.on_point = recorder.put, on_alert, on_point

    def stats(self) -> dict[str, int]:
        """The store's counts, and what the recording dropped (``/healthz``)."""
        stats = self.store.stats()
        budget = self.budget
        stats.update(request_budget_bytes=budget.capacity, request_bytes_in_use=budget.in_use,
                     request_bytes_peak=budget.peak, requests_busy=budget.busy, **self.httpd.stats())
        if self.recorder is not None:
            stats["recording_dropped"] = self.recorder.dropped + self.recorder.writer.dropped
        return stats


def start_in_process(port: int = DEFAULT_PORT, **options: object) -> Server:
    """A started ``Server`` in this process (its threads are daemons): on ``port``, or on any free
    port when that one is taken. Point ``configure(endpoint=server.url)`` at it for a live view
    of this process with no other service; ``server.stop()`` ends it."""
    try:
        server = Server(ServeConfig(port=port, **options))  # type: ignore[arg-type]  # options are ServeConfig's keywords, passed through
    except OSError:
        server = Server(ServeConfig(port=0, **options))  # type: ignore[arg-type]  # options are ServeConfig's keywords, passed through
    return server.start()
