"""The private SDK details ``_core/sdk_compat.py`` reads still answer on the SDK versions we allow.

Each shim falls back to public behaviour when its detail goes; these tests make an SDK upgrade
that moves one fail here, by name, instead of silently losing the fast path or the watch."""

from __future__ import annotations

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricExporter
from opentelemetry.sdk.metrics.view import Aggregation, ExplicitBucketHistogramAggregation
from opentelemetry.sdk.trace import TracerProvider

from otel_agentmon._core.sdk_compat import existing_meters, exporter_preferences, fast_attributes, instrument_names


def test_fast_attributes_is_the_plain_dict_behind_bounded_attributes() -> None:
    bounded = BoundedAttributes(attributes={"k": "v"}, immutable=True)
    fast = fast_attributes(bounded)
    assert type(fast) is dict and fast == {"k": "v"}
    plain = {"k": "v"}
    assert fast_attributes(plain) is plain and fast_attributes(None) is None


def test_fast_attributes_of_a_finished_span_answers_like_its_attributes() -> None:
    # The SDK hands out a read-only proxy of a span's attributes: the shim falls back to it.
    span = TracerProvider(shutdown_on_exit=False).get_tracer("t").start_span("s", attributes={"k": "v"})
    span.end()
    attributes = span.attributes  # type: ignore[attr-defined]  # the SDK's span is readable
    assert dict(fast_attributes(attributes) or {}) == {"k": "v"}


def test_exporter_preferences_are_the_exporter_s_own() -> None:
    class Exporter(MetricExporter):
        def export(self, metrics_data: object, timeout_millis: float = 10_000, **kwargs: object) -> None:  # type: ignore[override]  # never called
            raise NotImplementedError

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
            pass

    temporality: dict[type, AggregationTemporality] = {int: AggregationTemporality.DELTA}
    aggregation: dict[type, Aggregation] = {int: ExplicitBucketHistogramAggregation((1.0, 2.0))}
    exporter = Exporter(preferred_temporality=temporality, preferred_aggregation=aggregation)
    got_temporality, got_aggregation = exporter_preferences(exporter)
    assert got_temporality[int] is AggregationTemporality.DELTA
    assert got_aggregation[int] is aggregation[int]
    assert exporter_preferences(object()) == (None, None)


def test_existing_meters_and_their_instrument_names_are_readable() -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    try:
        provider.get_meter("scope-a").create_counter("requests")
        meters = existing_meters(provider)
        assert meters is not None and len(meters) == 1
        assert instrument_names(meters[0]) == ["requests"]
        assert existing_meters(object()) is None and instrument_names(object()) is None
    finally:
        provider.shutdown()
