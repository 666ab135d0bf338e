"""Health and alerts in ``agentmon serve``: derived from any SDK's spans, reported by ours, and one
view for many processes; the ``agentmon serve`` command itself."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from otel_agentmon import AlertRule, HealthPolicy
from otel_agentmon._records.recording import read_recording
from otel_agentmon.serve import ServeConfig, Server
from tests.support.polling import wait_for
from tests.test_serve import agent_spans

ROOT = Path(__file__).resolve().parents[1]
FAST = HealthPolicy(heartbeat_timeout=0.5, stuck_after=0.3, cpu_limit=None)


def state(srv: Server) -> dict[str, Any]:
    with urllib.request.urlopen(srv.url + "/api/state", timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def agent(srv: Server, name: str) -> dict[str, Any] | None:
    return next((a for a in state(srv)["agents"] if a["name"] == name), None)


def test_an_agent_whose_spans_stop_goes_down() -> None:
    with Server(ServeConfig(port=0, policy=FAST, health_interval=0.05)) as srv:
        exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces", timeout=5)
        exporter.export(agent_spans(3, agent="solo"))  # the plain OTel SDK: no agentmon in the sender
        exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
        assert wait_for(lambda: (agent(srv, "solo") or {}).get("tasks") == 4, timeout=5)
        assert wait_for(lambda: (agent(srv, "solo") or {}).get("up") is False, timeout=5)
        solo = agent(srv, "solo")
        assert solo is not None
        assert (solo["state"], solo["lifecycle"], solo["source"]) == ("unhealthy", "down", "derived")
        assert solo["reasons"][0].startswith("down: svc/") and "stopped reporting" in solo["reasons"][0]
        # serve's health loop says so at its next tick (the page judges at the time of the view)
        assert wait_for(lambda: any(e["agent"] == "solo" and e["state"] == "unhealthy" and e["source"] == "serve"
                                    for e in state(srv)["events"]), timeout=5)


def test_error_rate_window_and_alert_rules_from_received_spans() -> None:
    rule = AlertRule("FailingAgent", "error_rate", ">", 0.5, window=5.0, severity="critical",
                     annotations={"summary": "{agent} fails {value}"})
    with Server(ServeConfig(port=0, policy=HealthPolicy(cpu_limit=None), rules=[rule],
                            health_interval=0.05)) as srv:
        exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces", timeout=5)
        exporter.export(agent_spans(6, agent="flaky", fail=True))
        exporter.export(agent_spans(6, agent="fine"))
        exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
        assert wait_for(lambda: state(srv)["alerts"]["firing"], timeout=5)
        [alert] = state(srv)["alerts"]["firing"]
        assert (alert["rule"], alert["agent"], alert["severity"], alert["source"]) == \
            ("FailingAgent", "flaky", "critical", "serve")
        assert alert["summary"].startswith("flaky fails 0.85")
        flaky, fine = agent(srv, "flaky"), agent(srv, "fine")
        assert flaky is not None and fine is not None
        assert flaky["state"] == "unhealthy" and flaky["error_rate"] == pytest.approx(6 / 7, abs=1e-3)
        assert fine["state"] == "healthy" and fine["error_rate"] == 0


_EMITTER = textwrap.dedent("""
    import sys, time
    import otel_agentmon as agentmon
    service, own = sys.argv[1], sys.argv[2]
    monitor = agentmon.configure(service_name=service, system_metrics="off")
    for name in (own, "shared"):
        with agentmon.agent(name):
            for i in range(3):
                with agentmon.task("work", task_id=f"{name}-{i}"):
                    with agentmon.llm("stub", provider="stub") as call:
                        call.record_usage(input_tokens=10, output_tokens=5)
    time.sleep(0.7)  # one more metric export: the health gauges
    monitor.shutdown()
    print("spans", monitor.stats().spans_exported)
""")


def test_two_processes_appear_in_one_view() -> None:
    with Server(ServeConfig(port=0)) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = srv.url
        procs = [subprocess.run([sys.executable, "-c", _EMITTER, service, own], env=env, capture_output=True,
                                text=True, timeout=60, cwd=ROOT, check=False)
                 for service, own in (("proc-a", "alpha"), ("proc-b", "beta"))]
        for proc in procs:
            assert proc.returncode == 0, proc.stderr
            assert "spans 14" in proc.stdout
        data = state(srv)
        by_name = {a["name"]: a for a in data["agents"]}
        assert set(by_name) == {"alpha", "beta", "shared"}
        assert [p.split("/")[0] for p in by_name["alpha"]["instances"]] == ["proc-a"]
        assert sorted(p.split("/")[0] for p in by_name["shared"]["instances"]) == ["proc-a", "proc-b"]
        assert by_name["shared"]["tasks"] == 6  # both processes' tasks, one row
        assert by_name["shared"]["tokens_per_task"] == 15
        assert all(a["source"] == "reported" for a in by_name.values())  # our SDK reports its own health
        assert data["store"]["instances"] == 2


def test_serve_command_prints_its_url_and_records(tmp_path: Path) -> None:
    recording = tmp_path / "run.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "otel_agentmon.cli", "serve", "--port", "0", "--duration", "20",
                             "--record", str(recording)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", first)
        assert match, first
        url = match.group(1)
        with urllib.request.urlopen(url + "/", timeout=10) as resp:
            page = resp.read().decode()
        assert "<title>agentmon" in page and "/static/app.js" in page
        exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=5)
        exporter.export(agent_spans(2, agent="recorded"))
        exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "received 5 spans" in out
    assert sorted(s.name for s in read_recording(recording).spans)[-1] == "task research"


def test_serve_command_refuses_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "otel_agentmon.cli", "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=30, cwd=ROOT, check=False)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_a_late_gauge_does_not_undo_a_newer_health_event() -> None:
    from otel_agentmon._names import semconv as sc
    from otel_agentmon.serve._ingest import apply_event, apply_points
    from otel_agentmon.serve._otlp import LogEvent, Point

    resource = {"service.name": "svc", "service.instance.id": "i-1"}
    with Server(ServeConfig(port=0)) as srv:
        now_ns = time.time_ns()
        event = LogEvent("agentmon.health.changed", {sc.GEN_AI_AGENT_NAME: "doomed", sc.AGENTMON_HEALTH_STATE:
                                                     "unhealthy", "agentmon.health.reasons": ["down: no activity"]},
                         "agent doomed is unhealthy", "ERROR", now_ns, "", "", resource)
        srv.store.add_event(event, "otlp", apply_event)

        def gauge(state: str, at_ns: int) -> Point:
            return Point(sc.M_AGENT_HEALTH, {sc.GEN_AI_AGENT_NAME: "doomed", sc.AGENTMON_HEALTH_STATE: state},
                         1.0, at_ns, resource)

        srv.store.add_points([gauge("healthy", now_ns - 300_000_000)], apply_points)  # collected before the event
        assert (agent(srv, "doomed") or {})["state"] == "unhealthy"
        srv.store.add_points([gauge("healthy", now_ns + 300_000_000)], apply_points)  # a newer observation
        assert (agent(srv, "doomed") or {})["state"] == "healthy"


def test_serve_never_blames_its_own_cpu_or_memory_on_the_agents_it_watches() -> None:
    # A policy that would degrade every agent on any CPU use, and rules that would fire on any:
    # serve's own process must not feed them.
    greedy = HealthPolicy(heartbeat_timeout=30.0, cpu_limit=0.0, memory_limit_bytes=1)
    rules = [AlertRule("Cpu", "cpu", ">=", 0.0), AlertRule("Memory", "memory", ">", 0.0)]
    with Server(ServeConfig(port=0, policy=greedy, rules=rules, health_interval=0.05)) as srv:
        exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces", timeout=5)
        exporter.export(agent_spans(3, agent="calm"))
        exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
        assert wait_for(lambda: (agent(srv, "calm") or {}).get("tasks") == 4, timeout=5)
        time.sleep(0.3)  # several health ticks
        calm = agent(srv, "calm")
        assert calm is not None and (calm["state"], calm["reasons"]) == ("healthy", [])
        assert state(srv)["alerts"] == {"firing": [], "resolved": []}


@pytest.mark.timeout(60)
def test_a_process_reporting_slower_than_the_heartbeat_timeout_keeps_its_idle_agent_up() -> None:
    # Any SDK's periodic metric export is a sign of life at the cadence the process has shown: an agent
    # idle between exports 1.5 s apart is not down under a 1 s heartbeat timeout; silence is.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    def up(options: CallbackOptions) -> list[Observation]:
        return [Observation(1, {"gen_ai.agent.name": "waiter"})]

    with Server(ServeConfig(port=0, policy=HealthPolicy(heartbeat_timeout=1.0, cpu_limit=None),
                            health_interval=0.05)) as srv:
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=srv.url + "/v1/metrics", timeout=5),
                                               export_interval_millis=1500)
        provider = MeterProvider([reader], resource=Resource({"service.name": "slow", "service.instance.id": "s-1"}))
        provider.get_meter("any").create_observable_gauge("agentmon.agent.up", [up])
        try:
            assert wait_for(lambda: any(i.metric_batches >= 2 for i in srv.store.instances.values()), timeout=15)
            deadline = time.monotonic() + 4.0  # several exports, each gap longer than the timeout
            while time.monotonic() < deadline:
                waiter = agent(srv, "waiter")
                assert waiter is not None and (waiter["lifecycle"], waiter["up"]) == ("idle", True), waiter
                time.sleep(0.1)
        finally:
            provider.shutdown()  # no word of stopping from a plain SDK: its silence is down
        assert wait_for(lambda: (agent(srv, "waiter") or {}).get("lifecycle") == "down", timeout=15)
