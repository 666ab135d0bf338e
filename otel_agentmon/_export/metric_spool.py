"""Metric export requests in the disk spool.

The SDK's periodic reader exports metrics on its own thread (through ``DeadlineMetricExporter``);
there is no queue to fill, and with cumulative temporality (the default) each export carries the
whole state, so a lost periodic export is made good by the next one. What the spool adds is the
export that has no next one: the last export before exit (the agents' stopped states) and any
export that failed while the endpoint was down. Each is stored as one encoded
``ExportMetricsServiceRequest``; after the next successful export, stored requests are re-sent,
oldest first, for at most ``REPLAY_BUDGET_S``. A backend that refuses samples older than the ones
it has (Prometheus does, per series) drops those points; the Collector accepts them.
"""

from __future__ import annotations

from typing import Any

from .._core.guard import report_internal_error
from .durable import SpoolShare, encode_metrics

REPLAY_BUDGET_S = 1.0


class MetricSpool:
    """Store failed metric exports; re-send them after a successful one. Counts are of requests."""

    def __init__(self, share: SpoolShare) -> None:
        self.share = share

    def store(self, metrics_data: Any) -> None:
        try:
            self.share.store(encode_metrics(metrics_data), 1)
        except Exception:  # noqa: BLE001 - an unencodable or unwritable export stays a failed export
            report_internal_error("metric spool")

    def after_export(self, metrics_data: Any, ok: bool) -> None:
        if not ok:
            self.store(metrics_data)
            return
        try:
            self.share.replay(REPLAY_BUDGET_S)
        except Exception:  # noqa: BLE001
            report_internal_error("metric spool replay")
