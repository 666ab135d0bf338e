"""configure(dashboard=True): the live view in this process, with exports going to it."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.request
from typing import Any

import otel_agentmon as agentmon


def state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "api/state", timeout=5) as resp:
        return json.load(resp)  # type: ignore[no-any-return]


def main() -> int:
    # Something that is not agentmon serve (a Collector, say) holds the standard port, if nothing
    # else already does: the dashboard must come up elsewhere and the exports must follow it.
    squatter = socket.socket()
    try:
        squatter.bind(("127.0.0.1", 4318))
        squatter.listen()
        squatting = True
    except OSError:  # taken already: by an agentmon serve (joined) or by something else (avoided)
        squatting = False
    monitor = agentmon.configure(service_name="dashboard-option", dashboard=True, system_metrics="off")
    url = monitor.dashboard_url
    assert url is not None and url.startswith("http://127.0.0.1:"), url
    assert not (squatting and ":4318/" in url), url
    print(url, flush=True)

    @agentmon.agent("alpha")
    def run() -> None:
        with agentmon.task("t"), agentmon.tool("x"):
            pass

    for _ in range(5):
        run()
    monitor.force_flush()
    deadline = time.monotonic() + 10
    agents: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        agents = state(url)["agents"]
        if agents and agents[0]["tasks"] == 5:
            break
        time.sleep(0.1)
    assert [(a["name"], a["tasks"], a["up"]) for a in agents] == [("alpha", 5, True)], agents
    port = int(url.rsplit(":", 1)[1].strip("/"))
    assert monitor.shutdown(5)
    with socket.socket() as s:  # the dashboard stopped with the monitor
        assert s.connect_ex(("127.0.0.1", port)) != 0
    squatter.close()
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
