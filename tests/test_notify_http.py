"""The webhook notifier's request: one deadline for all of it (a server that answers a byte at a
time cannot hold it, over HTTP or HTTPS), no redirects (a 3xx fails the alert with its status),
and no spans of its own under an application's HTTP client instrumentation."""

from __future__ import annotations

import logging
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.request import OpenerDirector

import pytest
import trustme
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_agentmon import AlertEvent, CallbackNotifier, WebhookNotifier
from otel_agentmon._alerts.notify import Dispatcher
from tests.support.polling import wait_for
from tests.support.webhooks import Dribbler, Hook, event, hooks


@pytest.fixture
def hook() -> Iterator[Callable[..., Hook]]:
    yield from hooks()


@pytest.fixture
def dribbler() -> Iterator[Dribbler]:
    d = Dribbler()
    yield d
    d.close()


@pytest.mark.timeout(40)
def test_webhook_deadline_covers_the_whole_request(dribbler: Dribbler, fresh_log_limiter: None,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    notifier = WebhookNotifier(dribbler.url, timeout=0.5, retries=1, backoff=0.01)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        notifier.notify(event())
    took = time.monotonic() - started
    # Two attempts of 0.5 s each; the margin is for a loaded machine. Per-read timeouts held on for
    # as long as the server kept dribbling (a minute here, forever in the wild).
    assert took < 15, took
    assert dribbler.requests == 2 and dribbler.bytes_sent > 0
    assert (notifier.sent, notifier.failed) == (0, 1)
    assert any("failed after 2 attempts (last: TimeoutError)" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(60)
def test_a_dribbling_webhook_does_not_swallow_the_alerts_behind_it(dribbler: Dribbler) -> None:
    webhook = WebhookNotifier(dribbler.url, timeout=0.3, retries=0)
    got: list[AlertEvent] = []
    dispatcher = Dispatcher([webhook, CallbackNotifier(got.append)])
    try:
        for i in range(3):
            dispatcher.dispatch(event(agent=f"a{i}"))
        assert wait_for(lambda: dispatcher.stats().failed == 3, timeout=30), dispatcher.stats()
        stats = dispatcher.stats()
        assert (stats.sent, stats.failed, stats.dropped_total, stats.queued, stats.in_flight) == (3, 3, 0, 0, 0)
        assert dribbler.requests == 3 and len(got) == 3
    finally:
        dispatcher.stop()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_webhook_redirect_is_a_failure_with_its_status_and_is_not_followed(
        status: int, hook: Callable[..., Hook], fresh_log_limiter: None, caplog: pytest.LogCaptureFixture) -> None:
    elsewhere = hook()
    h = hook(statuses=[status] * 10, location=elsewhere.url + "?moved=1")
    notifier = WebhookNotifier(h.url + "?token=secret", retries=3, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        notifier.notify(event())
    assert (notifier.sent, notifier.failed) == (0, 1)
    assert len(h.bodies) == 1  # retrying cannot help a wrong URL
    assert elsewhere.bodies == [] and elsewhere.gets == []  # nothing went to the other URL
    messages = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    assert len(messages) == 1 and f"answered {status}" in messages[0] and "secret" not in messages[0]


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context for 127.0.0.1 whose CA the default client context trusts (``SSL_CERT_FILE``)."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    return server


@pytest.mark.timeout(40)
def test_https_webhook_delivers_and_its_deadline_covers_the_tls_request(
        tls: ssl.SSLContext, hook: Callable[..., Hook]) -> None:
    h = hook(tls=tls)
    notifier = WebhookNotifier(h.url)
    notifier.notify(event())
    assert len(h.bodies) == 1 and (notifier.sent, notifier.failed) == (1, 0)
    slow = Dribbler(tls=tls)
    try:
        notifier = WebhookNotifier(slow.url, timeout=0.5, retries=0)
        started = time.monotonic()
        notifier.notify(event())
        assert time.monotonic() - started < 15  # one attempt of 0.5 s; the margin is for a loaded machine
        assert slow.requests == 1 and slow.bytes_sent > 0 and (notifier.sent, notifier.failed) == (0, 1)
    finally:
        slow.close()


class UrllibLikeInstrumentation:
    """A stand-in for ``opentelemetry-instrumentation-urllib``, which is not published for this
    OpenTelemetry release: it wraps ``OpenerDirector._open`` the same way, making a CLIENT span per
    request unless instrumentation is suppressed (the standard context keys, checked as it does)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self._original = OpenerDirector._open  # type: ignore[attr-defined]  # OpenerDirector._open is the private hook urllib instrumentation patches

    def __enter__(self) -> UrllibLikeInstrumentation:
        tracer, original = self.provider.get_tracer("urllib-like"), self._original

        def _open(director: OpenerDirector, req: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_http_instrumentation_enabled():
                return original(director, req, *args, **kwargs)
            with tracer.start_as_current_span(f"{req.get_method()}", kind=SpanKind.CLIENT):
                return original(director, req, *args, **kwargs)

        OpenerDirector._open = _open  # type: ignore[attr-defined]  # patched like urllib instrumentation does; undone in __exit__
        return self

    def __exit__(self, *exc: object) -> None:
        OpenerDirector._open = self._original  # type: ignore[attr-defined]  # restores the method patched in __enter__
        self.provider.shutdown()


@pytest.mark.timeout(20)
def test_webhook_traffic_makes_no_spans_under_an_http_client_instrumentation(hook: Callable[..., Hook]) -> None:
    h = hook(statuses=[500])
    with UrllibLikeInstrumentation() as inst:
        with urllib.request.urlopen(h.url.replace("/alerts", "/other"), timeout=10) as resp:  # the app's own call
            assert resp.status == 200
        assert len(inst.exporter.get_finished_spans()) == 1  # the instrumentation is live
        notifier = WebhookNotifier(h.url, retries=1, backoff=0.01)
        notifier.notify(event())  # a 500, then a 200: two requests
        assert len(h.bodies) == 2 and notifier.sent == 1
        assert len(inst.exporter.get_finished_spans()) == 1  # none of ours
