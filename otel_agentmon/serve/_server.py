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
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Final

from .. import _semconv as sc
from .._alerts import AlertRule
from .._health import HealthPolicy
from .._notify import Notifier
from .._recording import DEFAULT_MAX_BYTES, AlertRecord, MetricSample, RecordingWriter
from .._records import SpanRecord
from ._http import HTTPServer, Publisher
from ._ingest import apply_event, apply_points
from ._insights import InsightsCache
from ._live import Evaluator, View
from ._otlp import SCALAR, BadRequest, Decoded, TooLarge, decode, inflate, parse, response
from ._store import Alert, Limits, Store

_LOG: Final = logging.getLogger("otel_agentmon.serve")
DEFAULT_PORT: Final = 4318
#: series name -> (metric name written to recordings and exports, unit)
SERIES_METRICS: Final = {"cpu": ("process.cpu.utilization", "1"), "memory": ("process.memory.usage", "By"),
                         "net_rx": ("system.network.io.rate", "By/s"), "net_tx": ("system.network.io.rate", "By/s")}
_MAX_CONCURRENT_DECODES: Final = 16


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
        self.recorder: RecordingWriter | None = None
        if config.record is not None:
            self.recorder = RecordingWriter(config.record, config.record_max_bytes)
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
        if self.stopping.is_set():
            return
        self.stopping.set()
        with self.store.changed:
            self.store.changed.notify_all()
        self.publisher.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.evaluator.stop()
        if self.recorder is not None:
            self.recorder.close()

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
            for point in decoded.points:
                if point.metric == sc.M_AGENT_UP and point.value >= 1:
                    agent = point.attrs.get(sc.GEN_AI_AGENT_NAME)
                    if isinstance(agent, str):
                        self.evaluator.heartbeat(agent)
        else:
            for event in decoded.logs:
                self.store.add_event(event, "otlp", apply_event)

    # --- outputs ------------------------------------------------------------------------------
    def _maintain(self) -> None:
        self.store.expire()
        self.view.prune()

    def _state_json(self) -> bytes:
        self.store.expire()
        return json.dumps(self.view.state(), separators=(",", ":")).encode()

    def state_bytes(self) -> bytes:
        return self._state_json()

    def export_bytes(self) -> bytes:
        """The store as a recording (JSON Lines: spans, alert transitions, metric samples)."""
        out = io.StringIO()
        for record in self.store.spans():
            out.write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")
        with self.store.lock:
            alerts = [*self.store.alerts.values(), *self.store.resolved]
            series = {k: list(v) for k, v in self.store.series.items()}
        for alert in sorted(alerts, key=lambda a: a.at):
            out.write(json.dumps(_alert_record(alert).to_json(), separators=(",", ":")) + "\n")
        for (name, service, instance), points in series.items():
            for t, value in points:
                sample = _metric_sample(name, (service, instance), t, value)
                out.write(json.dumps(sample.to_json(), separators=(",", ":")) + "\n")
        return out.getvalue().encode()

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

    def _attach_recorder(self, writer: RecordingWriter) -> None:
        def on_span(record: SpanRecord) -> None:
            writer.write_span(record)

        def on_alert(alert: Alert) -> None:
            if alert.state in ("firing", "resolved"):
                writer.write_alert(_alert_record(alert))

        def on_point(name: str, key: tuple[str, str], t: float, value: float) -> None:
            writer.write_metric(_metric_sample(name, key, t, value))

        self.store.on_span, self.store.on_alert, self.store.on_point = on_span, on_alert, on_point


def _alert_record(alert: Alert) -> AlertRecord:
    return AlertRecord(rule=alert.rule, state="resolved" if alert.state == "resolved" else "firing",
                       severity=alert.severity, time_ns=int(alert.at * 1e9), agent=alert.agent, value=alert.value,
                       summary=alert.summary, labels={"source": alert.source})


def _metric_sample(series: str, key: tuple[str, str], t: float, value: float) -> MetricSample:
    name, unit = SERIES_METRICS.get(series, (series, ""))
    attrs: dict[str, SCALAR] = {sc.SERVICE_NAME: key[0], "service.instance.id": key[1]}
    if series.startswith("net_"):
        attrs["network.io.direction"] = "receive" if series == "net_rx" else "transmit"
    return MetricSample(name=name, value=value, time_ns=int(t * 1e9), unit=unit, attributes=attrs)


def start_in_process(port: int = DEFAULT_PORT, **options: object) -> Server:
    """A started ``Server`` in this process (its threads are daemons): on ``port``, or on any free
    port when that one is taken. Point ``configure(endpoint=server.url)`` at it for a live view
    of this process with no other service; ``server.stop()`` ends it."""
    try:
        server = Server(ServeConfig(port=port, **options))  # type: ignore[arg-type]
    except OSError:
        server = Server(ServeConfig(port=0, **options))  # type: ignore[arg-type]
    return server.start()
