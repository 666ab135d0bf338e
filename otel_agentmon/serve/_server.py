"""``Server``: the OTLP receiver, the store, the health evaluation and the dashboard, wired together.

    with Server(ServeConfig(port=0)) as server:
        print(server.url)          # export OTLP/HTTP here; open it in a browser for the dashboard
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Final

from .._alerts import AlertRule
from .._guard import after_fork_in_child
from .._health import HealthPolicy
from .._notify import Notifier
from .._recording import DEFAULT_MAX_BYTES, RecordingWriter
from .._records import SpanRecord
from ._http import HTTPServer, Publisher, dumps
from ._ingest import apply_event, apply_points
from ._insights import InsightsCache
from ._live import Evaluator, View
from ._otlp import BadRequest, Decoded, TooLarge, decode, inflate, parse, response
from ._recorder import QueuedRecorder, alert_record, metric_sample
from ._store import Alert, Limits, Store

_LOG: Final = logging.getLogger("otel_agentmon.serve")
DEFAULT_PORT: Final = 4318
_MAX_CONCURRENT_DECODES: Final = 16
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
        self._decoding = threading.BoundedSemaphore(_MAX_CONCURRENT_DECODES)
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
        """One export request: (HTTP status, response body or error message)."""
        if not self._decoding.acquire(timeout=5.0):
            self.store.counts[f"{signal}_requests_refused"] += 1
            return 503, b"too many concurrent requests"
        try:
            raw = inflate(body, encoding, self.config.max_body_bytes)
            decoded = decode(signal, parse(signal, raw, is_json))
        except TooLarge as exc:
            return 413, str(exc).encode()
        except BadRequest as exc:
            self.store.counts[f"{signal}_requests_bad"] += 1
            return 400, str(exc).encode()
        finally:
            self._decoding.release()
        try:
            self._ingest(signal, decoded)
        except Exception:  # noqa: BLE001 - a bug here must not turn into a retry storm
            _LOG.exception("ingesting %s failed", signal)
        if decoded.rejected:
            self.store.counts[f"{signal}_rejected"] += decoded.rejected
        return 200, response(signal, decoded.rejected, decoded.error, is_json)

    def _ingest(self, signal: str, decoded: Decoded) -> None:
        if signal == "traces":
            self.store.add_spans([rec for rec, _ in decoded.spans], decoded.resources)
            self.evaluator.feed(decoded.spans)
        elif signal == "metrics":
            self.store.add_points(decoded.points, apply_points)
            self.evaluator.metrics_arrived(decoded.points)  # the process is reporting
        else:
            for event in decoded.logs:
                self.store.add_event(event, "otlp", apply_event)

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
        if self.recorder is not None:
            stats["recording_dropped"] = self.recorder.dropped + self.recorder.writer.dropped
        return stats


def start_in_process(port: int = DEFAULT_PORT, **options: object) -> Server:
    """A started ``Server`` in this process (its threads are daemons): on ``port``, or on any free
    port when that one is taken. Point ``configure(endpoint=server.url)`` at it for a live view
    of this process with no other service; ``server.stop()`` ends it."""
    try:
        server = Server(ServeConfig(port=port, **options))  # type: ignore[arg-type]
    except OSError:
        server = Server(ServeConfig(port=0, **options))  # type: ignore[arg-type]
    return server.start()
