"""End to end through the real programs: SDK -> OpenTelemetry Collector -> Jaeger v2 and Prometheus.

* ``local.yaml``: examples/swarm.py and examples/failing_swarm.py export to one Collector; the trace
  tree is read back from Jaeger's query API; agent metrics, span_metrics RED series, health
  metrics and the exported alert rules (evaluated by Prometheus) are read from Prometheus.
* ``agent.yaml`` + ``gateway.yaml``: two agent-tier Collectors load-balance by trace ID over two
  gateways that tail-sample into Jaeger; every span of a trace must reach one gateway, error
  traces must arrive complete, fast error-free traces must be dropped.

The binaries come from ``collector-config/build`` (or AGENTMON_OTELCOL / AGENTMON_JAEGER);
Prometheus from Debian's package. A missing binary skips these tests with the reason and the fix,
or fails them when AGENTMON_REQUIRE_STACK=1 (as .ci/run sets it).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support.dashboards import empty_panels
from tests.support.stack import (
    ROOT,
    Binaries,
    Collector,
    Jaeger,
    Prometheus,
    Stack,
    clean_env,
    scrape,
    wait_until,
)

pytestmark = pytest.mark.subprocess
EXAMPLES = ROOT / "examples"
Span = dict[str, Any]




@dataclass(frozen=True)
class Local:
    stack: Stack
    jaeger: Jaeger
    collector: Collector
    prometheus: Prometheus


@pytest.fixture(scope="module")
def local(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """Jaeger + a Collector on local.yaml + Prometheus scraping it every second with the exported rules."""
    workdir = tmp_path_factory.mktemp("local-stack")
    rules = workdir / "agentmon-rules.yaml"
    agentmon_cli = Path(sys.executable).with_name("agentmon")
    cli = [str(agentmon_cli)] if agentmon_cli.exists() else [sys.executable, "-m", "otel_agentmon.cli"]
    subprocess.run([*cli, "rules", "export", str(EXAMPLES / "alert_rules.yaml"), "-o", str(rules)],
                   check=True, timeout=30, cwd=ROOT)
    with Stack(workdir, binaries) as stack, stack.logs_on_failure():
        jaeger = stack.jaeger()
        collector = stack.collector("otelcol-local", "local.yaml", jaeger=jaeger,
                                    env={"AGENTMON_SPANMETRICS_FLUSH": "1s"})
        prometheus = stack.prometheus([collector.metrics_target], rule_files=[rules])
        yield Local(stack, jaeger, collector, prometheus)


def run_python(args: list[str], endpoint: str, stdin: str | None = None, timeout: float = 60) -> str:
    """Run a Python program exporting to ``endpoint``; its stdout (fails on a non-zero exit)."""
    proc = subprocess.run([sys.executable, *args], env=clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}),
                          input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def tags(span: Span) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def parent_id(span: Span) -> str | None:
    refs = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
    return refs[0] if refs else None


def sample_values(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    """An instant-query result as {(values of ``labels``): value}."""
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


def failing_task_ids() -> set[str]:
    """The task IDs examples/swarm.py makes fail (from its own make_tasks, so the two cannot drift)."""
    spec = importlib.util.spec_from_file_location("swarm_example", EXAMPLES / "swarm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        return {t.id for t in module.make_tasks(60, random.Random(7)) if t.fails}
    finally:
        del sys.modules[spec.name]


# ------------------------------------------------------------------------------------- local.yaml
@pytest.mark.timeout(120)
def test_swarm_trace_tree_reaches_jaeger_and_metrics_reach_prometheus(local: Local) -> None:
    with local.stack.logs_on_failure():
        out = run_python([str(EXAMPLES / "swarm.py")], local.collector.otlp_http)
        m = re.search(r"telemetry: (\d+) spans, (\d+) exported", out)
        assert m and m.group(1) == m.group(2), out
        n_spans = int(m.group(1))

        wait_until(lambda: "swarm" in local.jaeger.services(), 30, "service 'swarm' in Jaeger")
        (trace,) = wait_until(lambda: [t for t in local.jaeger.traces("swarm") if len(t["spans"]) == n_spans], 30,
                              f"the swarm trace with all {n_spans} spans in Jaeger")
        spans: list[Span] = trace["spans"]
        assert {p["serviceName"] for p in trace["processes"].values()} == {"swarm"}
        by_id = {s["spanID"]: s for s in spans}
        assert len(by_id) == n_spans
        kinds = Counter(s["operationName"].split(" ")[0] for s in spans)
        assert set(kinds) == {"invoke_workflow", "invoke_agent", "task", "execute_tool", "chat"}, kinds
        assert kinds["task"] == 60

        (root,) = [s for s in spans if parent_id(s) is None]
        assert root["operationName"] == "invoke_workflow research-swarm"
        assert tags(root)["gen_ai.operation.name"] == "invoke_workflow"
        for s in spans:
            if s is not root:
                assert parent_id(s) in by_id, f"{s['operationName']} has a dangling parent"
            assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(tags(s)), "content leaked"

        agents = [s for s in spans if s["operationName"].startswith("invoke_agent ")]
        assert Counter(tags(a)["gen_ai.agent.name"] for a in agents) == {
            "planner": 1, "reviewer": 1, "researcher": 2, "writer": 1}
        for a in agents:
            assert parent_id(a) == root["spanID"]
            assert tags(a)["gen_ai.operation.name"] == "invoke_agent"
            assert a["operationName"] == f"invoke_agent {tags(a)['gen_ai.agent.name']}"

        tasks = [s for s in spans if s["operationName"].startswith("task ")]
        for t in tasks:
            parent = by_id[parent_id(t) or ""]
            assert parent in agents, t["operationName"]
            assert tags(t)["gen_ai.agent.name"] == tags(parent)["gen_ai.agent.name"]
        task_ids = {tags(t)["agentmon.task.id"]: t for t in tasks}
        assert len(task_ids) == 60

        leaves = [s for s in spans if s["operationName"].split(" ")[0] in ("execute_tool", "chat")]
        for leaf in leaves:
            t, op = tags(leaf), leaf["operationName"].split(" ")[0]
            task_span = by_id[parent_id(leaf) or ""]
            assert task_span in tasks, f"{leaf['operationName']} is not under a task"
            assert t["gen_ai.operation.name"] == op
            if op == "execute_tool":
                assert leaf["operationName"] == f"execute_tool {t['gen_ai.tool.name']}"
                assert t["gen_ai.agent.name"] == tags(task_span)["gen_ai.agent.name"]
            else:
                assert t["span.kind"] == "client" and t["gen_ai.usage.output_tokens"] == 25

        failed = {tid for tid, t in task_ids.items() if tags(t).get("otel.status_code") == "ERROR"}
        assert failed == failing_task_ids()
        for tid, t in task_ids.items():
            tt = tags(t)
            if tid in failed:
                assert tt["error"] is True and tt["error.type"].endswith("ToolError"), tt
                assert tt["agentmon.task.outcome"] == "error"
            else:
                assert tt["agentmon.task.outcome"] == "success" and "error.type" not in tt, tt
        failed_tools = [s for s in leaves if tags(s).get("otel.status_code") == "ERROR"]
        assert failed_tools and all(tags(s)["gen_ai.tool.name"] == "web_search" for s in failed_tools)

        # Prometheus (scraping the Collector) agrees with the trace: tasks per agent and outcome ...
        prom = local.prometheus

        def values(expr: str, *labels: str) -> dict[tuple[str, ...], float]:
            return sample_values(prom.query(expr), *labels)
        outcomes = 'sum by (gen_ai_agent_name, agentmon_task_outcome) (agentmon_tasks_completed_total{job="swarm"})'
        by_outcome = ("gen_ai_agent_name", "agentmon_task_outcome")
        expected = Counter((tags(t)["gen_ai.agent.name"], tags(t)["agentmon.task.outcome"]) for t in tasks)
        wait_until(lambda: values(outcomes, *by_outcome) == expected, 30, f"{outcomes} == {dict(expected)}",
                   detail=lambda: str(values(outcomes, *by_outcome)))
        # ... one invoke_agent histogram observation per agent span, with its buckets ...
        runs = 'sum by (gen_ai_agent_name) (gen_ai_invoke_agent_duration_seconds_count{job="swarm"})'
        assert values(runs, "gen_ai_agent_name") == Counter((tags(a)["gen_ai.agent.name"],) for a in agents)
        buckets = prom.query('gen_ai_invoke_agent_duration_seconds_bucket{job="swarm", gen_ai_agent_name="writer"}')
        assert {r["metric"]["le"] for r in buckets} >= {"0.1", "0.2", "409.6", "+Inf"}

        # ... and span_metrics RED series: calls per span name and status, errors per agent, calls per tool.
        red = 'sum by (span_name, status_code) (traces_span_metrics_calls_total{service_name="swarm"})'
        expected_red = Counter((s["operationName"], f"STATUS_CODE_{tags(s).get('otel.status_code', 'UNSET')}")
                               for s in spans)
        wait_until(lambda: values(red, "span_name", "status_code") == expected_red, 30,
                   "span_metrics calls to match the trace", detail=lambda: str(values(red, "span_name", "status_code")))
        task_errors = ('sum by (gen_ai_agent_name) (traces_span_metrics_calls_total'
                       '{service_name="swarm", span_name=~"task .*", status_code="STATUS_CODE_ERROR"})')
        assert values(task_errors, "gen_ai_agent_name") == Counter(
            (tags(task_ids[tid])["gen_ai.agent.name"],) for tid in failed)
        tool_calls = ('sum by (gen_ai_tool_name) (traces_span_metrics_calls_total'
                      '{service_name="swarm", gen_ai_operation_name="execute_tool"})')
        assert values(tool_calls, "gen_ai_tool_name") == Counter(
            (tags(s)["gen_ai.tool.name"],) for s in leaves if s["operationName"].startswith("execute_tool "))
        assert values('count(traces_span_metrics_duration_milliseconds_bucket{service_name="swarm"})')


@pytest.mark.timeout(150)
def test_failing_swarm_health_and_exported_alerts_in_prometheus(local: Local) -> None:
    prom = local.prometheus
    with local.stack.logs_on_failure():
        start = time.time()
        proc = subprocess.Popen([sys.executable, str(EXAMPLES / "failing_swarm.py")],
                                env=clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": local.collector.otlp_http}),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

        def series(expr: str) -> dict[str, list[float]]:
            result = prom.query_range(expr, start, time.time())
            return {r["metric"].get("gen_ai_agent_name", ""): [float(v) for _, v in r["values"]] for r in result}

        def agent_down() -> list[dict[str, Any]]:
            return [a for a in prom.alerts() if a["labels"].get("alertname") == "AgentDown"
                    and a["labels"].get("job") == "failing-swarm"]

        try:  # while it runs: doomed dies at 3 s without a word and is down (it promised heartbeats)
            up = 'agentmon_agent_up{job="failing-swarm"}'
            wait_until(lambda: 0.0 in series(up).get("doomed", []), 30, "agentmon_agent_up of doomed == 0",
                       detail=lambda: str(series(up)))
            ups = series(up)
            assert 1.0 in ups["doomed"], "doomed was up before it died"
            assert ups["steady"] and set(ups["steady"]) == {1.0}, ups["steady"]

            unhealthy = 'agentmon_agent_health{job="failing-swarm", agentmon_health_state="unhealthy"}'
            wait_until(lambda: 1.0 in series(unhealthy).get("doomed", []), 30, "doomed unhealthy",
                       detail=lambda: str(series(unhealthy)))
            assert set(series(unhealthy)["steady"]) == {0.0}

            # The rules exported by `agentmon rules export` are evaluated by Prometheus itself.
            alerts = wait_until(lambda: [a for a in agent_down() if a["labels"].get("gen_ai_agent_name") == "doomed"
                                         and a["state"] in ("pending", "firing")], 30,
                                "AgentDown for doomed in Prometheus' /api/v1/alerts", detail=lambda: str(prom.alerts()))
            assert alerts[0]["labels"]["severity"] == "critical"
            assert alerts[0]["annotations"]["summary"] == "agent doomed stopped reporting"
            assert all(a["labels"]["gen_ai_agent_name"] == "doomed" for a in agent_down()), agent_down()
        finally:
            out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        assert "ALERT AgentDown doomed FIRING" in out, out

        # The clean exit said so: every agent's last state is stopped; Prometheus pages for none.
        stopped = 'agentmon_agent_health{job="failing-swarm", agentmon_health_state="stopped"}'
        wait_until(lambda: {r["metric"]["gen_ai_agent_name"] for r in prom.query(stopped + " == 1")}
                   == {"steady", "flaky", "hanger", "doomed"}, 30, "every agent stopped",
                   detail=lambda: str(prom.query(stopped)))
        wait_until(lambda: not agent_down(), 30, "no AgentDown after the clean exit", detail=lambda: str(agent_down()))
        steady = series('agentmon_agent_up{job="failing-swarm", gen_ai_agent_name="steady"}')["steady"]
        assert steady[-1] == 0.0 and set(steady[:steady.index(0.0)]) == {1.0}, steady  # 0 only once stopped
        # TaskStuck aggregates by agent (no job label); it was active only while hanger's task hung.
        stuck = series('ALERTS{alertname="TaskStuck"}')
        assert set(stuck) == {"hanger"}, f"TaskStuck was active for {set(stuck)}"

        # Every panel of the shipped Grafana dashboards has data in this run (swarm + failing swarm).
        def swarm_ran() -> None:
            if not prom.query("gen_ai_client_operation_duration_seconds_bucket"):
                run_python([str(EXAMPLES / "swarm.py")], local.collector.otlp_http)
        swarm_ran()
        assert empty_panels(prom, over="10m") == []


# ------------------------------------------------------------------------ agent.yaml + gateway.yaml
# Trace i: invoke_workflow wf<i> > invoke_agent front<i> > task job<i> > execute_tool tool<i> in the
# "front" process (through agent-tier Collector 1), continued by the "back" process (through agent-tier
# Collector 2) as invoke_agent back<i> > task job<i> > execute_tool tool<i>: 7 spans whose names all
# carry i, so each gateway's span_metrics (span_name label) show which traces it received.
FRONT = """
import json, sys
import otel_agentmon as agentmon
from opentelemetry import propagate
n, errors = int(sys.argv[1]), set(json.loads(sys.argv[2]))
monitor = agentmon.configure(service_name="gw-front", swarm="gateway-test")
for i in range(n):
    with agentmon.workflow(f"wf{i:02d}"), agentmon.agent(f"front{i:02d}"):
        try:
            with agentmon.task(f"job{i:02d}"):
                with agentmon.tool(f"tool{i:02d}"):
                    pass
                if i in errors:
                    raise RuntimeError("boom")
        except RuntimeError:
            pass
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        print(json.dumps(carrier), flush=True)
monitor.shutdown()
"""
BACK = """
import json, sys
import otel_agentmon as agentmon
from opentelemetry import context, propagate
errors = set(json.loads(sys.argv[1]))
monitor = agentmon.configure(service_name="gw-back", swarm="gateway-test")
for i, line in enumerate(sys.stdin.read().splitlines()):
    token = context.attach(propagate.extract(json.loads(line)))
    try:
        with agentmon.agent(f"back{i:02d}"), agentmon.task(f"job{i:02d}"), agentmon.tool(f"tool{i:02d}"):
            if i in errors:
                raise RuntimeError("boom")
    except RuntimeError:
        pass
    finally:
        context.detach(token)
monitor.shutdown()
"""
N_TRACES, SPANS_PER_TRACE = 16, 7
FRONT_ERRORS, BACK_ERRORS = {1, 6, 11}, {3, 9, 14}  # errors recorded by either process


@pytest.mark.timeout(240)
def test_gateway_routes_whole_traces_and_keeps_error_traces(binaries: Binaries, tmp_path: Path) -> None:
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        jaeger = stack.jaeger()
        # decision_wait covers the second process's start: at load 10 a Python process takes seconds to
        # start, and a trace decided before its back half (with the errors) arrives is dropped.
        gw_env = {"AGENTMON_SAMPLE_PERCENT": "0", "AGENTMON_DECISION_WAIT": "20s", "AGENTMON_SPANMETRICS_FLUSH": "1s"}
        gateways = [stack.collector(f"gateway{g}", "gateway.yaml", jaeger=jaeger, env=gw_env) for g in (1, 2)]
        ring = {"AGENTMON_GATEWAYS": f"[{', '.join(g.otlp_grpc for g in gateways)}]"}
        agent1, agent2 = (stack.collector(f"agent{a}", "agent.yaml", env=ring) for a in (1, 2))

        carriers = run_python(["-c", FRONT, str(N_TRACES), json.dumps(sorted(FRONT_ERRORS))], agent1.otlp_http)
        run_python(["-c", BACK, json.dumps(sorted(BACK_ERRORS))], agent2.otlp_http, stdin=carriers)
        trace_ids = [json.loads(line)["traceparent"].split("-")[1] for line in carriers.splitlines()]
        assert len(set(trace_ids)) == N_TRACES

        # Which gateway saw which trace: span_metrics count every span before sampling, per span name.
        def received() -> dict[int, dict[str, float]]:
            seen: dict[int, dict[str, float]] = defaultdict(dict)
            for gw in gateways:
                for s in scrape(gw.metrics_url):
                    if s.name == "traces_span_metrics_calls_total" and s.labels["service_name"].startswith("gw-"):
                        i, name = int(s.labels["span_name"][-2:]), gw.service.name
                        seen[i][name] = seen[i].get(name, 0.0) + s.value
            return seen

        def all_received() -> dict[int, dict[str, float]] | None:
            seen = received()
            return seen if sum(n for per_gw in seen.values() for n in per_gw.values()) >= total else None
        total = N_TRACES * SPANS_PER_TRACE
        seen = wait_until(all_received, 30, f"span_metrics for all {total} spans on the gateways",
                          detail=lambda: str(dict(received())))
        owner: dict[int, str] = {}
        for i in range(N_TRACES):
            assert len(seen[i]) == 1, f"trace {i} was split over gateways: {seen[i]}"
            ((owner[i], count),) = seen[i].items()
            assert count == SPANS_PER_TRACE, f"trace {i}: {count} spans on {owner[i]}"
        assert set(owner.values()) == {"gateway1", "gateway2"}, f"one gateway got every trace: {owner}"

        # Cross-check with each gateway's own telemetry, and wait until each has decided all its traces.
        def telemetry(gw: Collector, name: str, **labels: str) -> float:
            return sum(s.value for s in scrape(gw.telemetry_url)
                       if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))
        decisions = "otelcol_processor_tail_sampling_global_count_traces_sampled"
        for gw in gateways:
            mine = sum(1 for o in owner.values() if o == gw.service.name)
            assert telemetry(gw, "otelcol_receiver_accepted_spans", receiver="otlp") == mine * SPANS_PER_TRACE
            wait_until(partial(lambda gw, n: telemetry(gw, decisions) >= n, gw, mine), 60,
                       f"{gw.service.name} to decide its {mine} traces")
        errors = FRONT_ERRORS | BACK_ERRORS
        assert sum(telemetry(gw, decisions, sampled="true") for gw in gateways) == len(errors)

        # Error traces survive tail sampling, complete and correctly linked across the two processes.
        def complete(trace_id: str) -> dict[str, Any] | None:
            trace = jaeger.trace(trace_id)
            return trace if trace and len(trace["spans"]) == SPANS_PER_TRACE else None
        for i in sorted(errors):
            trace = wait_until(partial(complete, trace_ids[i]), 30, f"error trace {i} complete in Jaeger",
                               detail=partial(lambda tid: str(jaeger.trace(tid)), trace_ids[i]))
            names = Counter(s["operationName"] for s in trace["spans"])
            assert names == {f"invoke_workflow wf{i:02d}": 1, f"invoke_agent front{i:02d}": 1,
                             f"invoke_agent back{i:02d}": 1, f"task job{i:02d}": 2, f"execute_tool tool{i:02d}": 2}
            by_name = {s["operationName"]: s for s in trace["spans"]}
            assert parent_id(by_name[f"invoke_agent back{i:02d}"]) == by_name[f"invoke_agent front{i:02d}"]["spanID"]
            assert {p["serviceName"] for p in trace["processes"].values()} == {"gw-front", "gw-back"}
            failed = [s for s in trace["spans"] if tags(s).get("otel.status_code") == "ERROR"]
            assert failed and all(tags(s)["error.type"] == "RuntimeError" for s in failed)
        # Metrics are routed by resource: each process's series all land on one gateway.
        def jobs_per_gateway() -> dict[str, set[str]]:
            return {gw.service.name: {s.labels.get("job", "") for s in scrape(gw.metrics_url)
                                      if s.name == "agentmon_tasks_completed_total"} for gw in gateways}
        wait_until(lambda: set().union(*jobs_per_gateway().values()) >= {"gw-front", "gw-back"}, 30,
                   "both processes' agentmon_tasks_completed_total on the gateways",
                   detail=lambda: str(jobs_per_gateway()))
        for job in ("gw-front", "gw-back"):
            assert sum(job in jobs for jobs in jobs_per_gateway().values()) == 1, (job, jobs_per_gateway())
        # Fast traces without errors are dropped (AGENTMON_SAMPLE_PERCENT=0 for the rest).
        kept = [i for i in range(N_TRACES) if i not in errors and jaeger.trace(trace_ids[i]) is not None]
        assert kept == [], f"error-free traces {kept} reached Jaeger"
