"""The README's screenshots: a live swarm and the failing swarm exporting to one serve, at a laptop
width (1366 px) and a phone width (390 px).

    python benchmarks/screenshot.py [OUT_DIR]        # default: docs/

Starts ``agentmon serve`` in-process on a free port, runs ``examples/swarm.py`` (exporting to it)
and ``examples/failing_swarm.py`` as two processes, waits until the failing swarm's agents have
gone wrong (stuck, failing, down), then saves with headless Chromium:

- ``dashboard-1366.png``: the overview at 1366 px (the first screen and a bit);
- ``trace-1366.png``: the trace explorer on one of the failing swarm's failed tasks, its
  exception and stack trace in the detail pane;
- ``dashboard-390.png`` and ``trace-390.png``: the same at 390 px (a phone): one screen each, the
  trace scrolled to its span detail.

Each shot waits for what it shows (rows in the tables, the detail pane filled), not a fixed time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium.webdriver.chrome.webdriver import WebDriver  # noqa: E402

from otel_agentmon.serve import ServeConfig, Server  # noqa: E402
from tests.support.browser import chromium, set_viewport  # noqa: E402

SHOTS = ((1366, 900), (390, 844))


def wait(what: str, predicate: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshot: gave up waiting for {what}")
        time.sleep(0.1)


def failed_task(url: str) -> dict[str, str] | None:
    """A task of the failing swarm that raised (its row in the explorer's search)."""
    with urllib.request.urlopen(f"{url}/api/search?status=error&q=upstream", timeout=10) as resp:
        rows = json.loads(resp.read())["rows"]
    return next((r for r in rows if r["name"].startswith("task")), rows[0] if rows else None)


def shoot(driver: WebDriver, path: Path, width: int, height: int) -> None:
    """One screen of the page as laid out ``width`` wide."""
    set_viewport(driver, width, height)
    driver.execute_script("return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    warmup = float(os.environ.get("SCREENSHOT_WARMUP", "25"))  # the research swarm's charts fill up
    with Server(ServeConfig(port=0)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = server.url
        procs = [subprocess.Popen([sys.executable, "-c", _SWARM_FOREVER], env=env, stdout=subprocess.DEVNULL, cwd=ROOT)]
        driver = chromium(1366, 900)
        try:
            time.sleep(warmup)
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "examples" / "failing_swarm.py")], env=env,
                                          stdout=subprocess.DEVNULL, cwd=ROOT))
            # the failing swarm: a task failed, an agent went down
            wait("a failed task", lambda: failed_task(server.url))
            wait("an agent down", lambda: any(a["lifecycle"] == "down" for a in json.loads(
                urllib.request.urlopen(server.url + "/api/state", timeout=10).read())["agents"]))
            task = failed_task(server.url)
            assert task is not None
            out.mkdir(parents=True, exist_ok=True)
            for width, height in SHOTS:
                set_viewport(driver, width, height)
                driver.get(server.url + "/")
                wait("the agents table", lambda: len(driver.find_elements("css selector", "#agents tbody tr")) >= 7)
                wait("the task list", lambda: driver.find_elements("css selector", "#traces tbody tr"))
                wait("the resource charts", lambda: "MB" in driver.find_element("id", "resources").text)
                time.sleep(1.5)  # two more pushes: the sparklines have a few points
                shoot(driver, out / f"dashboard-{width}.png", width, height)
                driver.get(f"{server.url}/traces/{task['trace_id']}?span={task['span_id']}")
                wait("the span detail", lambda: "upstream timed out" in driver.find_element("id", "detail").text)
                if width < 800:  # a phone: the detail is below the tree
                    driver.execute_script("document.getElementById('detail').scrollIntoView()")
                shoot(driver, out / f"trace-{width}.png", width, height)
        finally:
            driver.quit()
            for p in procs:
                p.terminate()
                p.wait(10)


# examples/swarm.py in rounds, exporting to OTEL_EXPORTER_OTLP_ENDPOINT (a second process).
_SWARM_FOREVER = """
import asyncio, random, sys
sys.path.insert(0, 'examples')
import swarm
import otel_agentmon as agentmon
agentmon.configure(service_name='research-swarm', swarm='research-swarm')
seed = 1
while True:
    asyncio.run(swarm.run_swarm(swarm.make_tasks(40, random.Random(seed))))
    seed += 1
"""

if __name__ == "__main__":
    main()
