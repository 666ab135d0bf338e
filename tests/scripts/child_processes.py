"""Trace context and flushing across child processes. Usage: child_processes.py ENDPOINT

Under one agent span the parent starts: a fork child with a plain target, a spawn child with a
plain target and one with ``with_context``, a spawn process pool running ``with_context`` tasks,
and ``subprocess.run`` of this script (``sub`` mode) with ``inject_env()``. No child flushes or
shuts down by hand: their spans must leave at exit. Prints one JSON line from the parent.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import otel_agentmon

OPTIONS: dict[str, Any] = {"system_metrics": "off", "export_timeout": 2.0, "shutdown_timeout": 3.0,
                           "span_schedule_delay_ms": 60_000}


def child_tool(endpoint: str, label: str) -> int:
    """Runs in a child: one tool span. A fork child has its parent's monitor; a spawned one configures."""
    if otel_agentmon.get_monitor() is None:
        otel_agentmon.configure(endpoint=endpoint, **OPTIONS)
    with otel_agentmon.tool(label, attributes={"pid": os.getpid()}):
        pass
    return os.getpid()


def run_process(method: str, target: object, endpoint: str, label: str) -> int | None:
    context = multiprocessing.get_context(method)
    process: multiprocessing.process.BaseProcess = context.Process(  # type: ignore[attr-defined]  # a concrete context
        target=target, args=(endpoint, label))
    process.start()
    process.join(30)
    return process.exitcode


def parent(endpoint: str) -> None:
    monitor = otel_agentmon.configure(endpoint=endpoint, **OPTIONS)
    exits: dict[str, int | None] = {}
    with otel_agentmon.agent("parent-agent"):
        exits["fork"] = run_process("fork", child_tool, endpoint, "fork-plain")
        exits["spawn-plain"] = run_process("spawn", child_tool, endpoint, "spawn-plain")
        exits["spawn"] = run_process("spawn", otel_agentmon.with_context(child_tool), endpoint, "spawn-bound")
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            bound = otel_agentmon.with_context(child_tool)
            pool_pids = list(pool.map(bound, [endpoint] * 4, ["pool-spawn"] * 4))
        env = {k: v for k, v in otel_agentmon.inject_env().items() if not k.startswith("OTEL_")}
        sub = subprocess.run([sys.executable, __file__, endpoint, "sub"], env=env, check=False, timeout=30,
                             capture_output=True, text=True)
        exits["subprocess"] = sub.returncode
    ok = monitor.shutdown(3.0)
    print(json.dumps({"pid": os.getpid(), "ok": ok, "exits": exits, "pool_pids": pool_pids,
                      "sub_stderr": sub.stderr[-2000:]}), flush=True)


def sub(endpoint: str) -> None:
    """Another Python program: configure() adopts TRACEPARENT, so its root span joins the trace."""
    otel_agentmon.configure(endpoint=endpoint, **OPTIONS)
    with otel_agentmon.task("subprocess-task", agent="sub-agent"):
        child_tool(endpoint, "subprocess-tool")


if __name__ == "__main__":
    if sys.argv[2:] == ["sub"]:
        sub(sys.argv[1])
    else:
        parent(sys.argv[1])
