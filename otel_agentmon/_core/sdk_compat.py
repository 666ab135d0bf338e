"""The one place otel_agentmon touches private OpenTelemetry API.

Every other module imports what it needs from here, so an SDK upgrade that moves a private
detail breaks (or degrades) one file, and the tests of these shims say which.

Relied on (tests pin the behaviour to the SDK versions pyproject allows, so a change fails our
CI rather than users' start-up):

- ``opentelemetry.sdk._configuration._BaseConfigurator`` (:class:`ConfiguratorBase`):
  ``opentelemetry-instrument`` loads configurators from the ``opentelemetry_configurator``
  entry point and calls ``configure(auto_instrumentation_version=...)`` on an instance; the
  SDK's base class for them is private.

Read, never relied on (each shim falls back to public behaviour when the detail is absent):

- ``BoundedAttributes._dict`` (:func:`fast_attributes`): a plain dict answers a missing key
  ~10x faster than the mapping, which raises and catches a ``KeyError`` per miss; used by the
  span processor's start check and the dialect view of other instrumentations' spans.
- ``MetricExporter._preferred_temporality`` / ``._preferred_aggregation``
  (:func:`exporter_preferences`): copied onto the deadline wrapper so the reader sees the
  wrapped exporter's choices.
- ``MeterProvider._meters`` / ``._meter_lock`` and ``Meter._instrument_id_instrument``
  (:func:`existing_meters`, :func:`instrument_names`): the instruments already created before
  we started watching, so each measurement is counted once.
- ``OTLP*Exporter._client`` (an ``_OTLPHTTPClient``: ``_endpoint``, ``_compress``, ``_submit``)
  (:func:`otlp_http_client`, :func:`send_once`): one attempt to send an already encoded request
  with the exporter's own endpoint, headers, compression and TLS, for the disk spool. Without
  them the spool is off (one warning) and exports behave as before.
- ``View._meter_name`` (:func:`quiet_cross_scope_view_conflicts`): the SDK warns that two views
  "will cause conflicting metrics identities" when two instruments of the same name exist in
  different meters, although a metric's identity includes its instrumentation scope (our derived
  ``gen_ai.client.token.usage`` next to an official GenAI instrumentation's own): that one
  warning is dropped when exactly one of the two views is restricted to our meter.

Not counted as private here: the logs signal. ``opentelemetry._logs``,
``opentelemetry.sdk._logs`` and ``opentelemetry.exporter.otlp.proto.*._log_exporter`` are the
only import paths the OpenTelemetry Python projects publish for logs (the signal is still marked
in development); every module that emits or exports log records imports them directly, as the
SDK's own documentation does. Logger *names* of private SDK modules (the noisy-logger filter in
``_export/exporters.py``) are strings, not API use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

try:
    from opentelemetry.sdk._configuration import _BaseConfigurator as ConfiguratorBase
except ImportError:  # pragma: no cover - only if a future SDK drops it; the loader needs no base
    class ConfiguratorBase:  # type: ignore[no-redef]  # stand-in for the SDK class of the same name
        """Stand-in with the same calling convention."""

        def configure(self, **kwargs: Any) -> None:
            self._configure(**kwargs)

        def _configure(self, **kwargs: Any) -> None:
            raise NotImplementedError

__all__ = ["ConfiguratorBase", "existing_meters", "exporter_preferences", "fast_attributes",
           "instrument_names", "otlp_http_client", "send_once", "client_timeout",
           "client_endpoint", "quiet_cross_scope_view_conflicts"]


def fast_attributes(attrs: Mapping[str, object] | None) -> Mapping[str, object] | None:
    """The plain dict behind a span's ``BoundedAttributes`` when there is one, else ``attrs``.

    Read only: callers must not mutate the result."""
    raw = getattr(attrs, "_dict", None)
    return raw if isinstance(raw, dict) else attrs


def exporter_preferences(exporter: object) -> tuple[Any, Any]:
    """(preferred_temporality, preferred_aggregation) of a metric exporter, None where unknown."""
    return (getattr(exporter, "_preferred_temporality", None),
            getattr(exporter, "_preferred_aggregation", None))


def existing_meters(provider: object) -> list[object] | None:
    """The meters an SDK MeterProvider made so far, None when they cannot be read."""
    meters = getattr(provider, "_meters", None)
    if not isinstance(meters, dict):
        return None
    lock = getattr(provider, "_meter_lock", None)
    if lock is None:
        return list(meters.values())
    with lock:
        return list(meters.values())


def instrument_names(meter: object) -> list[str] | None:
    """The names of the instruments an SDK Meter made so far, None when they cannot be read."""
    instruments = getattr(meter, "_instrument_id_instrument", None)
    if not isinstance(instruments, dict):
        return None
    return [str(getattr(i, "name", "")) for i in list(instruments.values())]


def otlp_http_client(exporter: object) -> Any | None:
    """The OTLP/HTTP exporter's client when it can send encoded bytes once (see the module doc)."""
    client = getattr(exporter, "_client", None)
    if all(callable(getattr(client, name, None)) for name in ("_compress", "_submit")) and isinstance(
            getattr(client, "_endpoint", None), str):
        return client
    return None


def send_once(client: Any, payload: bytes, timeout_s: float) -> tuple[int | None, BaseException | None]:
    """One POST of ``payload`` (plus the client's one immediate reconnect): (status, error)."""
    result = client._submit(client._compress(payload), timeout_s)  # noqa: SLF001 - see the module doc
    return result.status_code, result.error


def client_timeout(client: Any, default: float) -> float:
    """The exporter's resolved timeout in seconds (its argument, or ``OTEL_EXPORTER_OTLP_*TIMEOUT``)."""
    value = getattr(client, "_timeout", None)
    return float(value) if isinstance(value, (int, float)) and value > 0 else default


def client_endpoint(client: Any) -> str:
    """The URL the exporter sends to (checked to be a str by :func:`otlp_http_client`)."""
    return str(client._endpoint)  # noqa: SLF001 - see the module doc


_VIEW_CONFLICT_LOGGER = "opentelemetry.sdk.metrics._internal.metric_reader_storage"


class _CrossScopeViewConflict(logging.Filter):
    """Drops the SDK's view-conflict warning for two instruments in different meters, one ours."""

    def __init__(self, own_meter: str) -> None:
        super().__init__()
        self.own_meter = own_meter

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            args = record.args if isinstance(record.args, tuple) else ()
            if "conflicting metrics identities" not in str(record.msg) or len(args) < 2:
                return True
            ours = [getattr(view, "_meter_name", None) == self.own_meter for view in args[:2]]
            return ours.count(True) != 1
        except Exception:  # noqa: BLE001 - a filter must never break logging
            return True


def quiet_cross_scope_view_conflicts(own_meter: str) -> None:
    """Install :class:`_CrossScopeViewConflict` on the SDK's metric storage logger (once)."""
    logger = logging.getLogger(_VIEW_CONFLICT_LOGGER)
    if not any(isinstance(f, _CrossScopeViewConflict) for f in logger.filters):
        logger.addFilter(_CrossScopeViewConflict(own_meter))
