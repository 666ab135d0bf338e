"""The live dashboard in a real headless browser (Debian's Chromium driven by Selenium)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from otel_agentmon.serve import ServeConfig, Server
from tests.support.browser import chromium
from tests.support.polling import wait_for
from tests.test_serve import agent_spans
from tests.test_serve_health import state

ROOT = Path(__file__).resolve().parents[1]
NO_VALUE = "\u2013"  # what the page shows for a number it does not have yet
pytestmark = pytest.mark.subprocess

#: Records, inside the page, when an agent's row first shows a state (Date.now(), epoch ms).
OBSERVE = """
window.seenStates = {};
const note = (tr) => {
  const key = tr.dataset.agent + '=' + tr.dataset.state;
  if (tr.dataset.agent && tr.dataset.state && !(key in window.seenStates)) window.seenStates[key] = Date.now();
};
document.querySelectorAll('#agents tr[data-agent]').forEach(note);
new MutationObserver((records) => {
  for (const r of records) {
    if (r.type === 'attributes') note(r.target);
    for (const n of r.addedNodes || []) if (n.dataset && n.dataset.agent) note(n);
  }
}).observe(document.querySelector('#agents tbody'), {attributes: true, attributeFilter: ['data-state'],
                                                     childList: true, subtree: true});
"""


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    return {**env, **extra}


def rows(driver: WebDriver) -> dict[str, dict[str, str]]:
    """Each agent row of the page: its state and the text of every cell."""
    data: dict[str, dict[str, str]] = driver.execute_script("""
        const out = {};
        for (const tr of document.querySelectorAll('#agents tbody tr')) {
          const c = tr.querySelectorAll('td');
          out[tr.dataset.agent] = {state: tr.dataset.state, up: c[2].textContent, inflight: c[3].textContent,
                                   throughput: c[5].textContent, p50: c[6].textContent, errors: c[8].textContent};
        }
        return out;""")
    return data


def test_failing_swarm_on_the_page_with_live_numbers_and_the_dead_agent_turning_unhealthy(
        browser: WebDriver) -> None:
    with Server(ServeConfig(port=0)) as srv:
        browser.get(srv.url + "/")
        browser.execute_script(OBSERVE)
        proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "failing_swarm.py")],
                                env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=srv.url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert wait_for(lambda: set(rows(browser)) == {"steady", "flaky", "hanger", "doomed"}, timeout=15)
            assert wait_for(lambda: re.fullmatch(r"\d+\.\d\d", rows(browser)["steady"]["throughput"]), timeout=10)
            first = rows(browser)["steady"]
            assert first["up"] in ("busy", "idle") and re.fullmatch(r"\d+\.?\d* m?s", first["p50"]), first
            # one unit per column (ms, or s once any agent's latency reaches a second)
            units = {r["p50"].split()[-1] for r in rows(browser).values() if r["p50"] != NO_VALUE}
            assert len(units) == 1, rows(browser)
            # live: the numbers move while the page stays open (no reload)
            assert wait_for(lambda: rows(browser)["steady"]["throughput"] != first["throughput"], timeout=10)
            assert browser.find_element(By.ID, "conn-text").text == "live"
            # doomed dies at 3 s; its process reports it unhealthy ~2 s later; the page follows
            assert wait_for(lambda: rows(browser).get("doomed", {}).get("state") == "unhealthy", timeout=15)
            seen_ms: dict[str, int] = browser.execute_script("return window.seenStates")
            event = next(e for e in state(srv)["events"]
                         if e["kind"] == "health" and e["agent"] == "doomed" and e["state"] == "unhealthy")
            delay = seen_ms["doomed=unhealthy"] / 1000 - event["t"]
            # the page followed the event (how soon: bench_serve.py --dashboard, bar < 1 s, in benchmarks/README.md)
            assert delay >= 0, delay
            assert wait_for(lambda: rows(browser)["doomed"]["up"] == "down", timeout=5)  # the next gauge export
            # AgentDown fires 1 s after the agent went down (its rule's "for")
            assert wait_for(lambda: "AgentDown · doomed" in browser.find_element(By.ID, "alerts-firing").text,
                            timeout=5)
        finally:
            proc.kill()
            proc.communicate(timeout=20)


def test_a_clicked_task_opens_in_the_trace_explorer(browser: WebDriver) -> None:
    with Server(ServeConfig(port=0)) as srv:
        exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces", timeout=5)
        exporter.export(agent_spans(3, agent="researcher"))
        exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
        browser.get(srv.url + "/")
        # the link is found and clicked in one step: the list is re-rendered as it refreshes
        assert wait_for(lambda: browser.execute_script("""
            const links = [...document.querySelectorAll('#traces tbody td.name a')];
            const a = links.find((a) => a.textContent === 'task research');
            if (a) a.click();
            return Boolean(a);"""), timeout=10)
        assert wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#tv-rows .tv-row")) == 7, timeout=10)
        assert re.search(r"/traces/[0-9a-f]{32}\?span=[0-9a-f]{16}$", browser.current_url)
        names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#tv-rows .tv-label")]
        assert names == ["invoke_agent researcher"] + ["task research", "execute_tool web_search"] * 3
        kinds = [e.get_attribute("class") for e in browser.find_elements(By.CSS_SELECTOR, "#tv-rows .tv-bar")]
        assert [k.split()[1] for k in kinds if k][:3] == ["k-task", "k-task", "k-tool"]  # a foreign agent run is a task
        selected = browser.find_elements(By.CSS_SELECTOR, "#tv-rows .tv-row[aria-selected=true] .tv-label")
        assert [e.text for e in selected] == ["task research"]


def test_two_hundred_agents_render_as_keyed_rows(browser: WebDriver) -> None:
    with Server(ServeConfig(port=0)) as srv:
        exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces", timeout=5)
        for i in range(200):
            exporter.export(agent_spans(1, agent=f"agent-{i:03d}", instance=f"i-{i % 10}"))
        exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
        browser.get(srv.url + "/")
        assert wait_for(lambda: len(rows(browser)) == 200, timeout=15)
        # rows are kept and updated in place: a row element survives later pushes
        browser.execute_script("window.keep = document.querySelector('#agents tr[data-agent=\"agent-100\"]');")
        updates = browser.execute_script("return window.agentmonUpdates")
        assert wait_for(lambda: browser.execute_script("return window.agentmonUpdates") > updates + 2, timeout=10)
        assert browser.execute_script(
            "return window.keep === document.querySelector('#agents tr[data-agent=\"agent-100\"]')")


def test_the_demo_command_prints_the_dashboard_url_first_and_shows_the_swarm(browser: WebDriver) -> None:
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "swarm.py"), "--live", "--port", "0",
                             "--duration", "12"], env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.match(r"agentmon dashboard: (http://127\.0\.0\.1:\d+)/", first)
        assert match, first
        browser.get(match.group(1) + "/")
        expected = {"planner", "researcher", "reviewer", "writer"}
        assert wait_for(lambda: set(rows(browser)) == expected, timeout=15)
        assert wait_for(lambda: all(r["throughput"] not in (NO_VALUE, "0.00") for r in rows(browser).values()),
                        timeout=10)
        # the process's own CPU, memory and network charts
        assert wait_for(lambda: "MB" in browser.find_element(By.ID, "resources").text, timeout=10)
        resources: Any = browser.find_element(By.ID, "resources").text
        assert resources.startswith("swarm")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "rounds; dashboard stopped" in out


def test_the_demo_picks_another_port_when_the_default_is_taken() -> None:
    with Server(ServeConfig(port=0)) as taken:
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / "swarm.py"), "--live", "--port",
                               str(taken.port), "--duration", "1", "--tasks", "10"], env=clean_env(),
                              capture_output=True, text=True, timeout=90, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"port {taken.port} is taken; using ")
    match = re.match(r"agentmon dashboard: http://127\.0\.0\.1:(\d+)/", lines[1])
    assert match and int(match.group(1)) != taken.port
    time.sleep(0)  # the demo's server is gone with its process
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/", timeout=2)


# A shell runs background jobs with SIGINT ignored and children inherit that (a CI runner may start
# the suite so; Python then never raises KeyboardInterrupt): run the demo with the SIGINT handling a
# terminal user's Ctrl-C meets.
_WITH_CTRL_C = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def test_the_demo_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WITH_CTRL_C, str(ROOT / "examples" / "swarm.py"), "--live",
                             "--port", "0", "--tasks", "20"], env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        match = re.match(r"agentmon dashboard: (http://127\.0\.0\.1:\d+)/", proc.stdout.readline())
        assert match
        assert wait_for(lambda: len(state_of(match.group(1))["agents"]) == 4, timeout=15)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopping" in out and "rounds; dashboard stopped" in out
    assert "Traceback" not in err


def state_of(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/api/state", timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def test_one_alert_row_from_process_and_serve_and_a_clean_exit_shown_stopped(browser: WebDriver,
                                                                              tmp_path: Path) -> None:
    from otel_agentmon import AlertRule, HealthPolicy
    from tests.test_agent_states import finish, rule_file, spawn

    rule = AlertRule("Failing", "error_rate", ">", 0.5, window=5.0, severity="critical")
    with Server(ServeConfig(port=0, policy=HealthPolicy(heartbeat_timeout=30, cpu_limit=None), rules=[rule],
                            health_interval=0.05)) as srv:
        browser.get(srv.url + "/")
        proc = spawn(srv, "flaky", "fail", rule_file(tmp_path, rule))
        try:
            def alert_rows() -> list[str]:  # read in the page at once: the list is re-rendered as it changes
                texts: list[str] = browser.execute_script(
                    "return [...document.querySelectorAll('#alerts-firing li')].map((li) => li.innerText);")
                return texts

            # evaluated by the process and by serve: one row that says so
            assert wait_for(lambda: any("evaluated in process and serve" in t for t in alert_rows()), timeout=15)
            assert len(alert_rows()) == 1 and "Failing · flaky" in alert_rows()[0]
            assert rows(browser)["flaky"]["up"] == "idle"
            finish(proc)
        finally:
            proc.kill()
        # a clean exit: stopped (greyed, last in the table), not counted against the swarm
        assert wait_for(lambda: rows(browser).get("flaky", {}).get("state") == "stopped", timeout=10)
        assert rows(browser)["flaky"]["up"] == "stopped"
        assert "1 stopped" in browser.find_element(By.ID, "k-mix").text
        assert browser.find_element(By.ID, "swarm-state").text == "swarm healthy"
