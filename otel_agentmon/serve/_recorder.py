"""``serve --record`` off the ingestion path, and the records serve writes (recordings and exports).

The store hands each kept span, alert transition and metric sample to ``QueuedRecorder.put``
while it holds its lock: that only appends to a bounded queue (a full queue drops and counts).
A daemon thread turns the items into JSON Lines through ``RecordingWriter`` and flushes after
each batch, so a slow disk slows the recording, never ingestion. A forked child records nothing:
the parent owns the file.
"""

from __future__ import annotations

import collections
import threading
from typing import Final, TypeAlias

from .._core.guard import after_fork_in_child, report_internal_error
from .._names import semconv as sc
from .._records.recording import AlertRecord, MetricSample, RecordingWriter
from .._records.records import SERVICE_INSTANCE_ID, SpanRecord
from ._otlp import SCALAR
from ._store import Alert

#: series name -> (metric name written to recordings and exports, unit)
SERIES_METRICS: Final = {"cpu": (sc.PROCESS_CPU_UTILIZATION, "1"), "memory": (sc.PROCESS_MEMORY_USAGE, "By"),
                         "net_rx": (sc.M_PROCESS_NETWORK_IO_RATE, "By/s"),
                         "net_tx": (sc.M_PROCESS_NETWORK_IO_RATE, "By/s")}
#: a metric sample as the store keeps it: (series name, (service, instance), wall time, value)
Sample: TypeAlias = tuple[str, tuple[str, str], float, float]
Item: TypeAlias = SpanRecord | Alert | Sample
DEFAULT_QUEUE: Final = 65536
_FLUSH_S: Final = 1.0


def alert_record(alert: Alert) -> AlertRecord:
    return AlertRecord(rule=alert.rule, state="resolved" if alert.state == "resolved" else "firing",
                       severity=alert.severity, time_ns=int(alert.at * 1e9), agent=alert.agent, value=alert.value,
                       summary=alert.summary, labels={"source": alert.source})


def metric_sample(series: str, key: tuple[str, str], t: float, value: float) -> MetricSample:
    name, unit = SERIES_METRICS.get(series, (series, ""))
    attrs: dict[str, SCALAR] = {sc.SERVICE_NAME: key[0], SERVICE_INSTANCE_ID: key[1]}
    if series.startswith("net_"):
        attrs[sc.NETWORK_IO_DIRECTION] = "receive" if series == "net_rx" else "transmit"
    return MetricSample(name=name, value=value, time_ns=int(t * 1e9), unit=unit, attributes=attrs)


class QueuedRecorder:
    """A bounded queue in front of a ``RecordingWriter``, drained by one daemon thread."""

    def __init__(self, writer: RecordingWriter, max_queue: int = DEFAULT_QUEUE) -> None:
        self.writer = writer
        self.dropped = 0  # items the full queue (or a closed recorder) turned away
        self._max = max(1, max_queue)
        self._queue: collections.deque[Item] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="agentmon-serve-recorder", daemon=True)
        self._thread.start()
        after_fork_in_child(self._after_fork_in_child)

    def put(self, item: Item) -> None:
        """Called with the store's lock held: never blocks on I/O."""
        queue = self._queue
        if self._closed or len(queue) >= self._max:
            self.dropped += 1
            return
        queue.append(item)
        if len(queue) == 1:
            with self._cond:
                self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then close the file."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.writer.close()

    def _after_fork_in_child(self) -> None:
        self._closed = True  # the parent's thread and file: leave both alone
        self._queue = collections.deque()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(_FLUSH_S)
                done = self._closed
            try:
                if self._drain():
                    self.writer.flush()
            except Exception:  # noqa: BLE001 - the recorder thread must survive anything
                report_internal_error("serve recorder")
            if done and not self._queue:
                return

    def _drain(self) -> int:
        queue, writer, written = self._queue, self.writer, 0
        while queue:
            item = queue.popleft()
            if isinstance(item, SpanRecord):
                writer.write_span(item)
            elif isinstance(item, Alert):
                writer.write_alert(alert_record(item))
            else:
                writer.write_metric(metric_sample(*item))
            written += 1
        return written
