"""``Monitor.stats()``: an in-process account of every span, kept apart from the metrics
pipeline so it stays true when that pipeline is down.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class NotifierStats:
    """Where every alert notification went: one per transition (firing or resolved) and notifier.

    ``sent`` (a webhook's 2xx; any other notifier's ``notify`` that returned), ``failed`` (a webhook
    out of attempts or answering a redirect; a ``notify`` that raised), ``deduplicated`` (the same
    alert in the same state already went out), ``dropped`` by reason (``queue_full``; ``shutdown``:
    still queued, or cut mid-request, when the notifiers stopped), and ``queued``/``in_flight``.
    """

    sent: int = 0
    failed: int = 0
    deduplicated: int = 0
    dropped: Mapping[str, int] = dataclasses.field(default_factory=dict[str, int])
    queued: int = 0
    in_flight: int = 0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def total(self) -> int:
        """Every notification handed to the notifiers (each one counted exactly once above)."""
        return self.sent + self.failed + self.deduplicated + self.dropped_total + self.queued + self.in_flight


@dataclasses.dataclass(frozen=True)
class SpoolStats:
    """The disk spool, by signal (``traces`` and ``logs`` count items, ``metrics`` export requests).

    ``written``: put on disk by this process because they could not be delivered. ``resent``:
    delivered from the spool by this process — its own, or left by an earlier (or another) process
    of the service. ``expired``: removed undelivered by the age or size bound (oldest first).
    ``refused``: re-sent and refused for good (a non-retryable HTTP status), so removed.
    ``corrupt``: files that were torn or unreadable, removed. ``directory``: None when the spool is
    off (option, gRPC, or an unusable directory: memory-only behaviour).
    """

    directory: str | None = None
    written: Mapping[str, int] = dataclasses.field(default_factory=dict[str, int])
    resent: Mapping[str, int] = dataclasses.field(default_factory=dict[str, int])
    expired: Mapping[str, int] = dataclasses.field(default_factory=dict[str, int])
    refused: Mapping[str, int] = dataclasses.field(default_factory=dict[str, int])
    corrupt: int = 0


@dataclasses.dataclass(frozen=True)
class Stats:
    """Where every span went. At quiescence (after ``shutdown()``) ``balanced`` holds and
    ``spans_queued == spans_in_flight == 0``.

    * ``spans_started``: spans our processor saw start (on this process's providers).
    * ``spans_exported``: acknowledged by the receiver (minus OTLP partial-success rejections).
    * ``spans_dropped``: by reason: ``queue_full``, ``already_shutdown``, ``shutdown_timeout``,
      ``rejected_by_collector``, ``export_failed:<error.type>`` (e.g. ``export_failed:http_400``),
      ``spool_expired`` (spooled, then removed undelivered by the spool's age or size bound).
    * ``spans_spooled``: this process's spans in the disk spool, neither exported nor dropped yet
      (they are re-sent later by this process or the next one of the service: a span re-sent by
      this process moves to ``spans_exported``; one re-sent by another process stays here).
      See ``spool`` (:class:`SpoolStats`) for the spool as a whole.
    * ``spans_not_exported``: ended while no exporter of ours was configured (traces exporter
      ``none``, or the application's own provider and pipeline export them) or not sampled.
    * ``spans_open``: started and not yet ended.
    * ``notifications``: where each alert notification went (sent, failed, de-duplicated, dropped
      by reason), one per transition and notifier; see :class:`NotifierStats`.
    * ``derivation_dropped``: what metric derivation lost under overload (agent metrics and
      summaries undercount; export is not affected), by reason in ``derivation_dropped_by_reason``:
      ``queue_full`` and ``stopped`` (span starts/ends offered while its queue was full or after
      shutdown), ``shutdown_deadline`` (still queued at shutdown's deadline), ``in_flight_evicted``
      (running tasks forgotten at the in-flight table's cap). Also the ``agentmon.derivation.dropped``
      metric.
    """

    spans_started: int
    spans_ended: int
    spans_exported: int
    spans_dropped: Mapping[str, int]
    spans_queued: int
    spans_in_flight: int
    spans_not_exported: int
    logs_emitted: int
    logs_exported: int
    logs_dropped: Mapping[str, int]
    metric_exports_ok: int
    metric_exports_failed: int
    metric_exports_skipped: int
    derivation_dropped: int
    notifications: NotifierStats = dataclasses.field(default_factory=NotifierStats)
    derivation_dropped_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)
    spans_spooled: int = 0
    logs_spooled: int = 0
    spool: SpoolStats = dataclasses.field(default_factory=SpoolStats)

    @property
    def spans_open(self) -> int:
        return self.spans_started - self.spans_ended

    @property
    def spans_dropped_total(self) -> int:
        return sum(self.spans_dropped.values())

    @property
    def balanced(self) -> bool:
        """started == exported + dropped + spooled + queued + in flight + not exported + open."""
        return self.spans_started == (
            self.spans_exported + self.spans_dropped_total + self.spans_spooled + self.spans_queued
            + self.spans_in_flight + self.spans_not_exported + self.spans_open
        )
