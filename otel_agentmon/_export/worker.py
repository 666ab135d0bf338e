"""A bounded batching worker that accounts for every item and honours every deadline.

It replaces the SDK's BatchSpanProcessor/BatchLogRecordProcessor internals for three reasons
the SDK does not meet (reference/perf-anchors.md §6): ``force_flush`` there ignores its timeout,
``shutdown`` can take 30 s with the Collector down, and drops are counted only when an opt-in
internal-metrics flag is set. Here every item ends in exactly one bucket: exported or dropped
with a reason; ``offer()`` never blocks; the worker is a daemon thread, so a hung export can
never hold the interpreter at exit. With a disk spool (``Spooling``, see ``durable.py``) a fourth
bucket, spooled, holds what waits on disk; the worker re-sends it between live batches.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from opentelemetry.instrumentation.utils import suppress_instrumentation

from .._core.counting import count_value
from .._core.guard import after_fork_in_child, log_once, report_internal_error

T = TypeVar("T")

# Reasons an item can be dropped (the keys of ``dropped`` in stats()).
QUEUE_FULL = "queue_full"
ALREADY_SHUTDOWN = "already_shutdown"
SHUTDOWN_TIMEOUT = "shutdown_timeout"
REJECTED = "rejected_by_collector"
EXPORT_FAILED = "export_failed"  # suffixed with ":<error.type>"
ENCODE_FAILED = "encode_failed"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one export call achieved."""

    ok: bool
    rejected: int = 0  # OTLP partial_success: accepted request, these items refused
    reason: str = ""  # error.type-like reason when not ok
    unencodable: int = 0  # items dropped before sending because they could not be encoded
    spooled: int = 0  # items written to the disk spool instead (not sent, not dropped)


#: The longest a worker re-sends spooled requests in one go before it looks at its queue again.
REPLAY_SLICE_S = 0.25


@runtime_checkable
class Spooling(Protocol):
    """An export callable with a disk spool behind it (``durable.DurableSend``)."""

    def replay(self, budget_s: float, max_files: int | None = None) -> tuple[int, dict[str, int], bool]:
        """Re-send spooled requests: (own items exported, own items dropped by reason, more left)."""
        ...

    def spool_now(self, batch: Sequence[Any]) -> Outcome:
        """Spool ``batch`` without trying to send it."""
        ...

    def stop_probing(self) -> None:
        """Shutdown: no more probes or replays; a failing endpoint gets no further attempts."""
        ...


@runtime_checkable
class TransportAware(Protocol):
    """An export callable that can also tell whether its transport is failing right now."""

    def transport_failing(self) -> bool | None:
        """The last network attempt failed (refused, timed out, non-2xx) and none succeeded since;
        None when this exporter cannot tell."""
        ...


class BatchWorker(Generic[T]):
    """Bounded queue + one daemon export thread + exact accounting."""

    def __init__(
        self,
        name: str,
        export: Callable[[Sequence[T]], Outcome],
        close_exporter: Callable[[], None],
        *,
        max_queue_size: int,
        max_batch_size: int,
        schedule_delay_s: float,
    ) -> None:
        self._name = name
        self._export = export
        self._close_exporter = close_exporter
        self._max_queue = max_queue_size
        self._max_batch = max(1, min(max_batch_size, max_queue_size))
        self._delay = schedule_delay_s
        self._transport_failing = export.transport_failing if isinstance(export, TransportAware) else None
        self._spool: Spooling | None = export if isinstance(export, Spooling) else None
        self._init_state()
        after_fork_in_child(self._after_fork_in_child)

    def _init_state(self) -> None:
        self._queue: collections.deque[T] = collections.deque()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._offered = itertools.count()
        self._queue_full = itertools.count()
        self._after_shutdown = itertools.count()
        self._exported = 0
        self._spooled = 0  # this process's items on disk now (neither exported nor dropped yet)
        self._dropped: dict[str, int] = {}
        self._inflight = 0
        self._flush_waiters = 0
        self._shutdown = False
        self._stopping = False
        self._exporter_closed = False
        self._closed = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, name=f"agentmon-{self._name}-export", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent exports what it had queued; the child starts empty with its own thread.
        self._init_state()

    # --- hot path ---------------------------------------------------------------------------
    def offer(self, item: T) -> None:
        """Queue ``item`` for export; never blocks, never raises."""
        next(self._offered)
        if self._shutdown:
            next(self._after_shutdown)
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            next(self._queue_full)
            if not self._failing:
                log_once(logging.WARNING, f"{self._name}:queue_full",
                         "%s export queue full (%d); dropping new items (counted in stats())",
                         self._name, self._max_queue)
            return
        queue.append(item)
        if len(queue) >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    # --- worker -----------------------------------------------------------------------------
    def _run(self) -> None:
        # Our own export traffic must not be traced by an HTTP/gRPC client instrumentation (that
        # would export spans about exporting, forever): the standard suppression key, as the SDK's
        # batch processors set it, for the whole life of this thread.
        with suppress_instrumentation():
            self._loop()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # noqa: BLE001 - the worker must survive anything
                report_internal_error(f"{self._name} export worker")
            if self._stopping:
                with self._cond:
                    self._cond.notify_all()
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            if self._exporter_closed:
                self._drop_queued(SHUTDOWN_TIMEOUT)
                return
            batch: list[T] = []
            while queue and len(batch) < self._max_batch:
                batch.append(queue.popleft())
            with self._cond:
                self._inflight = len(batch)
            try:
                outcome = self._export(batch)
            except Exception as exc:  # noqa: BLE001 - a raising exporter is a failed export
                outcome = Outcome(False, reason=type(exc).__qualname__)
            self._settle(len(batch), outcome)
            if self._spool is not None and not self._stopping:
                self._replay(0.0, 1)  # one spooled request per live batch: fair to both
            # Below a full batch, wait for the next tick unless someone is flushing.
            if len(queue) < self._max_batch and not (self._flush_waiters or self._stopping):
                break
        if self._spool is not None and not self._stopping and self._replay(REPLAY_SLICE_S, None):
            self._wake.set()  # a backlog is left and the endpoint answers: go on after the queue

    def _replay(self, budget_s: float, max_files: int | None) -> bool:
        assert self._spool is not None
        exported, dropped, more = self._spool.replay(budget_s, max_files)
        if exported or dropped:
            with self._cond:
                self._exported += exported
                self._spooled -= exported + sum(dropped.values())
                for reason, n in dropped.items():
                    self._dropped[reason] = self._dropped.get(reason, 0) + n
        return more

    def _settle(self, n: int, outcome: Outcome) -> None:
        with self._cond:
            if self._inflight == 0:  # already counted as shutdown_timeout by shutdown()
                return
            self._inflight = 0
            if outcome.unencodable:
                bad = min(outcome.unencodable, n)
                self._dropped[ENCODE_FAILED] = self._dropped.get(ENCODE_FAILED, 0) + bad
                n -= bad
            if outcome.spooled:
                spooled = min(outcome.spooled, n)
                self._spooled += spooled
                n -= spooled
                if not self._failing:
                    self._failing = True
                    log_once(logging.WARNING, f"{self._name}:spooling",
                             "%s export failing (%s); keeping batches in the disk spool until it recovers",
                             self._name, outcome.reason or "unknown")
                if not n:
                    self._cond.notify_all()
                    return
            if outcome.ok:
                rejected = min(max(outcome.rejected, 0), n)
                self._exported += n - rejected
                if rejected:
                    self._dropped[REJECTED] = self._dropped.get(REJECTED, 0) + rejected
                    log_once(logging.WARNING, f"{self._name}:rejected",
                             "collector rejected %d %s (partial success)", rejected, self._name)
                if self._failing:
                    self._failing = False
                    log_once(logging.WARNING, f"{self._name}:recovered", "%s export recovered", self._name)
            else:
                key = f"{EXPORT_FAILED}:{outcome.reason or 'unknown'}"
                self._dropped[key] = self._dropped.get(key, 0) + n
                if not self._failing:
                    self._failing = True
                    log_once(logging.WARNING, f"{self._name}:failing",
                             "%s export failing (%s); dropping and counting batches until it recovers",
                             self._name, outcome.reason or "unknown")
            self._cond.notify_all()

    def _drop_queued(self, reason: str) -> None:
        n = 0
        while self._queue:
            try:
                self._queue.popleft()
            except IndexError:
                break
            n += 1
        if n:
            with self._cond:
                self._dropped[reason] = self._dropped.get(reason, 0) + n
                self._cond.notify_all()

    # --- control ----------------------------------------------------------------------------
    def _idle(self) -> bool:
        return not self._queue and self._inflight == 0

    def force_flush(self, timeout_s: float) -> bool:
        """Export everything queued now; ``True`` only if it all settled within the timeout."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            self._flush_waiters += 1
        try:
            self._wake.set()
            with self._cond:
                while not self._idle():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(remaining, 0.05))
                    self._wake.set()
            return not self._failing
        finally:
            with self._cond:
                self._flush_waiters -= 1

    def shutdown(self, timeout_s: float) -> bool:
        """Stop accepting, export what is queued until the deadline, then drop and count the rest."""
        if self._shutdown:
            return True
        start = time.monotonic()
        deadline = start + max(0.0, timeout_s)
        self._shutdown = True
        # Leave a slice of the budget to interrupt a retrying exporter and settle the books.
        soft = start + max(0.0, timeout_s) * 0.8
        self._stopping = True
        self._wake.set()
        if self._spool is not None:
            self._spool.stop_probing()
        with self._cond:
            progress = self._progress()
            while not self._idle() and time.monotonic() < soft and self._thread.is_alive():
                self._cond.wait(min(0.05, max(0.0, soft - time.monotonic())))
                now_progress = self._progress()
                if now_progress == progress and self._known_failing():
                    break  # retrying into a failing receiver: waiting out its backoff only delays exit
                progress = now_progress
        if self._spool is not None and self._queue:
            self._spool_rest(deadline)
        # Spooled is kept, not delivered: shutdown says so (and the metric export is not waited for).
        clean = self._idle() and not (self._spool is not None and self._failing)
        self._exporter_closed = True
        try:
            self._close_exporter()  # interrupts retry backoff in the OTLP exporters
        except Exception:  # noqa: BLE001
            report_internal_error(f"{self._name} exporter shutdown")
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            if self._inflight:
                self._dropped[SHUTDOWN_TIMEOUT] = self._dropped.get(SHUTDOWN_TIMEOUT, 0) + self._inflight
                self._inflight = 0
        self._drop_queued(SHUTDOWN_TIMEOUT)
        self._closed = True
        lost = self._dropped.get(SHUTDOWN_TIMEOUT, 0)
        if lost:
            log_once(logging.WARNING, f"{self._name}:shutdown_timeout",
                     "%d %s could not be exported before the shutdown deadline (counted as dropped: "
                     "shutdown_timeout)", lost, self._name)
        return clean

    def _spool_rest(self, deadline: float) -> None:
        """Shutdown while the worker is stuck in an export: this thread puts the queue on disk."""
        assert self._spool is not None
        while self._queue and time.monotonic() < deadline:
            batch: list[T] = []
            while self._queue and len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.popleft())
                except IndexError:
                    break
            try:
                outcome = self._spool.spool_now(batch)
            except Exception:  # noqa: BLE001
                report_internal_error(f"{self._name} spool at shutdown")
                outcome = Outcome(False, reason="spool_failed")
            self._settle_spooled(len(batch), outcome)

    def _settle_spooled(self, n: int, outcome: Outcome) -> None:
        with self._cond:
            bad = min(outcome.unencodable, n)
            spooled = min(outcome.spooled, n - bad)
            rest = n - bad - spooled
            for reason, count in ((ENCODE_FAILED, bad), (SHUTDOWN_TIMEOUT, rest)):
                if count:
                    self._dropped[reason] = self._dropped.get(reason, 0) + count
            self._spooled += spooled
            self._cond.notify_all()

    def _progress(self) -> tuple[int, int, int, int]:
        return self._exported, sum(self._dropped.values()), len(self._queue), self._spooled

    def _known_failing(self) -> bool:
        """Evidence, not elapsed time, that the export in progress will not get through: the
        transport's last attempt failed (or, for exporters that cannot tell, the last batch did).
        A slow export, or a re-send of what could be encoded after a poison batch, is waited for
        until the deadline."""
        failing: bool | None = None
        if self._transport_failing is not None:
            try:
                failing = self._transport_failing()
            except Exception:  # noqa: BLE001
                failing = None
        return self._failing if failing is None else failing

    # --- accounting ---------------------------------------------------------------------------
    def spooled(self) -> int:
        """This process's items written to the disk spool and not yet re-sent or dropped."""
        with self._cond:
            return self._spooled

    def counts(self) -> tuple[int, int, dict[str, int], int, int]:
        """(offered, exported, dropped by reason, queued, in flight) — consistent at quiescence."""
        if self._closed and self._queue:
            # An emitter that raced shutdown() slipped an item in after the final drain.
            self._drop_queued(ALREADY_SHUTDOWN)
        with self._cond:
            dropped = dict(self._dropped)
            exported = self._exported
            inflight = self._inflight
        full = count_value(self._queue_full)
        late = count_value(self._after_shutdown)
        if full:
            dropped[QUEUE_FULL] = full
        if late:
            dropped[ALREADY_SHUTDOWN] = late
        return count_value(self._offered), exported, dropped, len(self._queue), inflight
