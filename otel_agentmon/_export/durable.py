"""Export with a disk spool behind it: what cannot be delivered now is kept and sent later.

``DurableSend`` is a ``BatchWorker``'s export callable for OTLP/HTTP spans or logs. It encodes a
batch once, sends it in one attempt (the spool, not an in-memory retry loop, is what retries), and
on a transient failure (no connection, a timeout, HTTP 429/502/503/504) writes the encoded request
to the spool. While the endpoint is failing ("open"), live batches go straight to the spool — a
few milliseconds each, so the bounded queue never fills behind a dead Collector — and every
``PROBE_MIN_S``..``PROBE_MAX_S`` (doubling) the oldest spooled request is tried as a probe. When
the endpoint answers, spooled requests are re-sent oldest first, one after each live batch and
continuously while the queue is short (``replay``), so live traffic is never starved.

A permanent refusal (any other HTTP status) is not spooled: it is dropped and counted as before,
and a spooled request refused that way is removed (counted as ``refused``). All of it runs on the
export worker's thread; the caller's cost does not change.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._core.guard import after_fork_in_child, log_once, report_internal_error
from .._core.sdk_compat import client_endpoint, client_timeout, otlp_http_client, send_once
from .http import ResponseProbe
from .spool import SpoolDir, endpoint_key, service_dir
from .stats import SpoolStats
from .worker import Outcome

if TYPE_CHECKING:
    from .._setup.settings import Settings

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
PROBE_MIN_S = 0.5
PROBE_MAX_S = 5.0
#: A probe (a send while the endpoint is known to be failing) waits at most this long: a black
#: hole must not hold the worker (and fill the queue) for the whole export timeout each time.
PROBE_TIMEOUT_S = 2.0
SPOOL_DROPPED = "spool_expired"  # this process's spooled items removed by the age/size bound


@dataclasses.dataclass(frozen=True)
class Attempt:
    ok: bool
    retryable: bool = False
    reason: str = ""
    rejected: int = 0


class SpoolShare:
    """One signal's use of a spool directory, for one endpoint: counters, circuit, replay."""

    def __init__(self, signal: str, spool: SpoolDir, client: Any, probe: ResponseProbe | None, *,
                 timeout_s: float, any_endpoint: bool) -> None:
        self.signal = signal
        self.passive = signal == "metrics"  # re-sent by the other signals' workers (and after an export)
        self.spool = spool
        self.endpoint: str = client_endpoint(client)
        self._client = client
        self._probe = probe
        self._timeout = timeout_s
        self._key = None if any_endpoint else endpoint_key(self.endpoint)
        spool.shares.append(self)
        self._reset()
        after_fork_in_child(self._reset)

    def _reset(self) -> None:
        self.written = 0  # items this process wrote
        self.resent = 0  # items this process re-sent (its own and earlier processes')
        self.refused = 0  # spooled items the endpoint refused for good
        self._expired_seen = self.spool.expired_own.get(self.signal, 0)
        self.spool.own.clear()
        self.open = False  # the endpoint is failing: live batches go to the spool
        self._next_probe = 0.0
        self._backoff = PROBE_MIN_S
        self.stopping = False

    # --- sending -------------------------------------------------------------------------------
    def attempt(self, payload: bytes, timeout_s: float | None = None) -> Attempt:
        probe = self._probe
        if probe is not None:
            probe.reset()
        try:
            status, _ = send_once(self._client, payload, self._timeout if timeout_s is None else timeout_s)
        except Exception as exc:  # noqa: BLE001 - e.g. the transport closed by shutdown
            result = Attempt(False, True, type(exc).__qualname__)
        else:
            if status is not None and 200 <= status < 300:
                result = Attempt(True, rejected=probe.rejected if probe is not None else 0)
            elif status is None:
                result = Attempt(False, True, "connection_error")
            else:
                result = Attempt(False, status in RETRYABLE_STATUS, f"http_{status}")
        self._circuit(result)
        return result

    def _circuit(self, result: Attempt) -> None:
        now = time.monotonic()
        if result.ok or not result.retryable:
            self.open, self._backoff = False, PROBE_MIN_S
            return
        if self.open:
            self._backoff = min(PROBE_MAX_S, self._backoff * 2)
        self.open = True
        self._next_probe = now + self._backoff

    def probe_due(self) -> bool:
        return not self.stopping and time.monotonic() >= self._next_probe

    def live_timeout(self) -> float:
        return min(self._timeout, PROBE_TIMEOUT_S) if self.open else self._timeout

    def store(self, payload: bytes, items: int) -> bool:
        if self.spool.write(self.signal, self.endpoint, items, payload) is None:
            return False
        self.written += items
        return True

    # --- replay --------------------------------------------------------------------------------
    def replay(self, budget_s: float, max_files: int | None = None) -> tuple[int, dict[str, int], bool]:
        """Re-send spooled requests oldest first while the endpoint answers, for at most
        ``budget_s`` (and ``max_files``). Returns this process's own items now (exported, dropped by
        reason) that it had counted as spooled, and whether more may be waiting."""
        more = False
        exported = 0
        dropped: dict[str, int] = {}
        deadline = time.monotonic() + budget_s
        sent = 0
        while not self.stopping and (max_files is None or sent < max_files):
            if self.open and not self.probe_due():
                break
            claimed = self.spool.claim(self.signal, self._key)
            if claimed is None:
                break
            sent += 1
            if claimed.endpoint != self.endpoint and self._key is not None:
                self.spool.release(claimed)  # a hash collision: not ours to send
                break
            result = self.attempt(claimed.payload, self.live_timeout())
            if not result.ok and result.retryable:
                self.spool.release(claimed)
                break
            own = self.spool.done(claimed)
            items = claimed.entry.items
            if result.ok:
                self.resent += items
                exported += own
            else:
                self.refused += items
                if own:
                    key = f"export_failed:{result.reason}"
                    dropped[key] = dropped.get(key, 0) + own
            if time.monotonic() >= deadline:
                more = True
                break
        else:
            more = not self.stopping
        expired = self.spool.expired_own.get(self.signal, 0)
        if expired > self._expired_seen:
            dropped[SPOOL_DROPPED] = expired - self._expired_seen
            self._expired_seen = expired
        return exported, dropped, more

    def backlog(self) -> bool:
        return self.spool.has_pending(self.signal, self._key)


class DurableSend(Generic[T]):
    """A BatchWorker's export callable that spools what it cannot deliver (see the module doc)."""

    def __init__(self, share: SpoolShare, encode: Callable[[Sequence[T]], bytes],
                 probe: ResponseProbe | None) -> None:
        self.share = share
        self._encode = encode
        self._probe = probe

    def transport_failing(self) -> bool | None:
        return self.share.open or (None if self._probe is None else self._probe.transport_failing)

    def _encoded(self, batch: Sequence[T]) -> tuple[bytes | None, int, int]:
        """(payload, items in it, items that could not be encoded)."""
        try:
            return self._encode(batch), len(batch), 0
        except Exception:  # noqa: BLE001 - sort out the items that cannot be encoded
            pass
        good: list[T] = []
        for item in batch:
            try:
                self._encode([item])
            except Exception:  # noqa: BLE001
                continue
            good.append(item)
        if not good:
            return None, 0, len(batch)
        return self._encode(good), len(good), len(batch) - len(good)

    def __call__(self, batch: Sequence[T]) -> Outcome:
        payload, n, bad = self._encoded(batch)
        if payload is None:
            return Outcome(True, unencodable=bad)
        share = self.share
        if share.open and not share.probe_due():
            return self._spool(payload, n, bad, "connection_error")
        result = share.attempt(payload, share.live_timeout())
        if result.ok:
            return Outcome(True, rejected=result.rejected, unencodable=bad)
        if result.retryable:
            return self._spool(payload, n, bad, result.reason)
        return Outcome(False, reason=result.reason, unencodable=bad)

    def _spool(self, payload: bytes, n: int, bad: int, reason: str) -> Outcome:
        if self.share.store(payload, n):
            return Outcome(False, reason=reason, unencodable=bad, spooled=n)
        return Outcome(False, reason=reason, unencodable=bad)

    def spool_now(self, batch: Sequence[T]) -> Outcome:
        """Spool ``batch`` without sending (shutdown with the endpoint failing)."""
        payload, n, bad = self._encoded(batch)
        if payload is None:
            return Outcome(True, unencodable=bad)
        return self._spool(payload, n, bad, "shutdown_timeout")

    def replay(self, budget_s: float, max_files: int | None = None) -> tuple[int, dict[str, int], bool]:
        try:
            exported, dropped, more = self.share.replay(budget_s, max_files)
            if not more and not self.share.open:
                # Metric requests have no worker of their own: with this signal's backlog gone and
                # the Collector answering, send theirs too (a run that records no metric would
                # otherwise never re-send the previous run's last export).
                for other in list(self.share.spool.shares):
                    if other.passive and not other.open:
                        other.replay(budget_s, max_files)
            return exported, dropped, more
        except Exception:  # noqa: BLE001 - the spool must never stop the worker
            report_internal_error("spool replay")
            return 0, {}, False

    def stop_probing(self) -> None:
        self.share.stopping = True


def spool_stats(spool: SpoolDir | None) -> SpoolStats:
    if spool is None:
        return SpoolStats()
    shares = list(spool.shares)
    return SpoolStats(directory=str(spool.path), written={s.signal: s.written for s in shares},
                      resent={s.signal: s.resent for s in shares}, expired=dict(spool.expired),
                      refused={s.signal: s.refused for s in shares}, corrupt=spool.corrupt)


def open_spool(settings: Settings, service: str) -> SpoolDir | None:
    """The service's spool directory, or None: off, no OTLP exporter, gRPC, or unusable (warned)."""
    try:
        return _open_spool(settings, service)
    except Exception:  # noqa: BLE001 - configure() must work without a spool
        report_internal_error("spool")
        return None


def _open_spool(settings: Settings, service: str) -> SpoolDir | None:
    if not settings.spool or "otlp" not in (settings.traces_exporter, settings.metrics_exporter,
                                            settings.logs_exporter):
        return None
    if settings.protocol == "grpc":
        log_once(logging.INFO, "spool:grpc", "the disk spool covers OTLP/HTTP only; with protocol=grpc "
                 "exports that fail are dropped and counted")
        return None
    try:
        path = service_dir(settings.spool_dir, service)
    except (RuntimeError, KeyError, OSError):  # no home directory to put the default one in
        log_once(logging.WARNING, "spool:unusable", "no home directory for the spool (set spool_dir or "
                 "AGENTMON_SPOOL_DIR); exports that fail are dropped and counted, as without a spool")
        return None
    return SpoolDir.open(path, settings.spool_max_mb * 1024 * 1024, settings.spool_max_age)


def spool_share(signal: str, exporter: object, probe: ResponseProbe | None, spool: SpoolDir,
                settings: Settings) -> SpoolShare | None:
    client = otlp_http_client(exporter)
    if client is None:
        log_once(logging.WARNING, "spool:client", "this OTLP exporter version cannot send encoded requests; "
                 "the disk spool is off")
        return None
    return SpoolShare(signal, spool, client, probe, timeout_s=client_timeout(client, settings.export_timeout),
                      any_endpoint=settings.spool_any_endpoint)


def encode_spans(batch: Sequence[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode

    return encode(batch).SerializePartialToString()  # type: ignore[no-any-return]  # protobuf stubs


def encode_logs(batch: Sequence[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as encode

    return encode(batch).SerializePartialToString()  # type: ignore[no-any-return]  # protobuf stubs


def encode_metrics(data: Any) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as encode

    return encode(data).SerializePartialToString()  # type: ignore[no-any-return]  # protobuf stubs
