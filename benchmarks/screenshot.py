"""The README's dashboard screenshot: a live swarm and the failing swarm exporting to one serve.

    python benchmarks/screenshot.py [docs/dashboard.png]

Starts ``agentmon serve`` in-process on a free port, runs ``examples/swarm.py`` (exporting to it)
and ``examples/failing_swarm.py`` as two processes, waits until the failing swarm's agents have
gone wrong (stuck, failing, down), opens the dashboard in headless Chromium and saves a PNG.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otel_agentmon.serve import ServeConfig, Server  # noqa: E402
from tests.support.browser import chromium  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png"
    warmup = float(os.environ.get("SCREENSHOT_WARMUP", "25"))  # the research swarm's charts fill up
    wait = float(os.environ.get("SCREENSHOT_AFTER", "6.5"))  # the failing swarm: stuck, failing, down
    with Server(ServeConfig(port=0)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = server.url
        procs = [subprocess.Popen([sys.executable, "-c", _SWARM_FOREVER], env=env, stdout=subprocess.DEVNULL, cwd=ROOT)]
        driver = chromium(1600, 1400)
        try:
            driver.get(server.url + "/")
            time.sleep(warmup)
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "examples" / "failing_swarm.py")], env=env,
                                          stdout=subprocess.DEVNULL, cwd=ROOT))
            time.sleep(wait)
            # open the waterfall of one of the swarm's research tasks
            driver.execute_script("""
                const rows = [...document.querySelectorAll('#traces tbody tr')];
                const ok = rows.filter(r => r.textContent.includes('task research') && r.textContent.endsWith('ok'));
                const pick = ok[0] || rows[0];
                if (pick) pick.click();""")
            time.sleep(1.0)
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
            print(f"wrote {out}")
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
