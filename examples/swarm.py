"""A small agent swarm working a shared task queue, fully instrumented.

    python examples/swarm.py                    # no backend needed: prints what each agent did
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python examples/swarm.py   # also export
    python examples/swarm.py --live             # keeps working, with the live dashboard (Ctrl-C stops)

Agents run both ways real swarms do: worker threads (researchers, a writer) and asyncio
coroutines (a planner and a reviewer). Some tasks are slow, some fail. One trace per run:
invoke_workflow research-swarm -> invoke_agent <name> -> task <type> -> execute_tool / chat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import otel_agentmon as agentmon


class ToolError(RuntimeError):
    """A tool failed (the swarm's realistic failure mode)."""


@dataclass(frozen=True)
class Task:
    id: str
    type: str
    slow: bool
    fails: bool


def make_tasks(n: int, rng: random.Random) -> list[Task]:
    types = ["research", "research", "write", "review", "plan"]
    # About one task in ten is slow and one in eight fails, spread over all task types.
    return [Task(f"t{i:03d}", rng.choice(types), slow=i % 10 == 3, fails=i % 8 == 5) for i in range(n)]


def stub_llm(model: str, prompt: str, delay: float) -> str:
    with agentmon.llm(model, provider="openai") as call:
        time.sleep(delay)
        call.record_usage(input_tokens=40 + len(prompt), output_tokens=25, response_model=model)
        return f"{model}: {prompt[:20]}"


@agentmon.tool("web_search")
def web_search(query: str, task: Task) -> list[str]:
    time.sleep(0.25 if task.slow else 0.01)
    if task.fails:
        raise ToolError(f"search backend timed out for {query!r}")
    return [f"result for {query}"]


@agentmon.tool("write_file")
def write_file(text: str) -> int:
    time.sleep(0.005)
    return len(text)


def do_task(agent_name: str, task: Task) -> None:
    with agentmon.task(task.type, task_id=task.id):
        if task.type == "research":
            hits = web_search(task.id, task)
            stub_llm("stub-large", " ".join(hits), 0.02)
        elif task.type == "write":
            draft = stub_llm("stub-large", f"write {task.id}", 0.03)
            write_file(draft)
            if task.fails:
                raise ToolError("disk full")
        else:
            stub_llm("stub-small", f"{task.type} {task.id}", 0.01)
            if task.slow:
                time.sleep(0.2)
            if task.fails:
                raise ToolError(f"{agent_name} could not {task.type} {task.id}")


def thread_agent(name: str, work: queue.Queue[Task], types: set[str], done: list[Task]) -> None:
    with agentmon.agent(name):
        while True:
            try:
                task = work.get(timeout=0.05)
            except queue.Empty:
                return
            if task.type not in types:
                work.put(task)
                time.sleep(0.001)
                continue
            try:
                do_task(name, task)
            except ToolError:
                pass  # failed task: recorded on its span; the agent moves on
            done.append(task)


async def async_agent(name: str, work: queue.Queue[Task], types: set[str], done: list[Task]) -> None:
    with agentmon.agent(name):
        while True:
            try:
                task = work.get_nowait()
            except queue.Empty:
                if all(not t.is_alive() for t in threading.enumerate() if t.name.startswith("agent-")):
                    return
                await asyncio.sleep(0.01)
                continue
            if task.type not in types:
                work.put(task)
                await asyncio.sleep(0.001)
                continue
            try:
                async with agentmon.task(task.type, task_id=task.id):
                    await asyncio.to_thread(stub_llm, "stub-small", f"{task.type} {task.id}", 0.01)
                    await asyncio.sleep(0.2 if task.slow else 0.005)
                    if task.fails:
                        raise ToolError(f"{name} rejected {task.id}")
            except ToolError:
                pass
            done.append(task)


@agentmon.workflow("research-swarm")
async def run_swarm(tasks: list[Task]) -> list[Task]:
    work: queue.Queue[Task] = queue.Queue()
    for t in tasks:
        work.put(t)
    done: list[Task] = []
    threads = [
        threading.Thread(target=agentmon.with_context(thread_agent), name=f"agent-{name}",
                         args=(name, work, types, done))
        for name, types in (("researcher", {"research"}), ("researcher", {"research"}), ("writer", {"write"}))
    ]
    for t in threads:
        t.start()
    await asyncio.gather(async_agent("planner", work, {"plan"}, done),
                         async_agent("reviewer", work, {"review"}, done))
    for t in threads:
        t.join()
    return done


def print_summary(monitor: agentmon.Monitor, elapsed: float) -> None:
    print(f"\nswarm finished in {elapsed:.2f}s\n")
    print(f"{'agent':<12}{'ok':>5}{'failed':>8}{'p50 ms':>9}{'p95 ms':>9}{'tools':>7}{'llm':>6}{'tokens':>8}"
          f"{'busy s':>8}  errors")
    for name, s in sorted(monitor.snapshot().items()):
        p50, p95 = s.percentile(0.5), s.percentile(0.95)
        print(f"{name:<12}{s.tasks_ok:>5}{s.tasks_failed:>8}"
              f"{(p50 or 0) * 1000:>9.1f}{(p95 or 0) * 1000:>9.1f}{s.tool_calls:>7}{s.inference_calls:>6}"
              f"{s.input_tokens + s.output_tokens:>8}{s.busy_seconds:>8.2f}  "
              + ", ".join(f"{k.rsplit('.', 1)[-1]} x{v}" for k, v in sorted(s.errors.items())))


def run_live(args: argparse.Namespace) -> None:
    """The swarm in rounds, exporting to an in-process ``agentmon serve`` whose dashboard it prints."""
    from otel_agentmon.serve import start_in_process

    server = start_in_process(args.port)  # the standard port taken (a Collector?): any free one
    if args.port and server.port != args.port:
        print(f"port {args.port} is taken; using {server.port}", flush=True)
    print(f"agentmon dashboard: {server.url}/   (Ctrl-C to stop)", flush=True)
    monitor = agentmon.configure(service_name="swarm", swarm="research-swarm", endpoint=server.url,
                                 alert_rules=Path(__file__).with_name("alert_rules.yaml"))
    stop = threading.Event()
    rounds: list[float] = []

    def work() -> None:
        seed = args.seed
        while not stop.is_set():
            start = time.monotonic()
            asyncio.run(run_swarm(make_tasks(args.tasks, random.Random(seed))))
            rounds.append(time.monotonic() - start)
            seed += 1
            stop.wait(0.5)

    runner = threading.Thread(target=work, name="swarm-rounds", daemon=True)
    runner.start()
    try:
        stop.wait(args.duration)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    stop.set()
    runner.join(30.0)  # the round in progress finishes
    print_summary(monitor, sum(rounds))
    monitor.shutdown()
    server.stop()
    print(f"\n{len(rounds)} rounds; dashboard stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--live", action="store_true",
                        help="run rounds until Ctrl-C with the live dashboard (an in-process agentmon serve)")
    parser.add_argument("--port", type=int, default=4318, help="dashboard port with --live (taken: any free one)")
    parser.add_argument("--duration", type=float, help="with --live: stop after this many seconds")
    args = parser.parse_args()
    if args.live:
        run_live(args)
        return
    exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_TRACES_EXPORTER"))
    # With no backend configured, keep everything in-process and just show the summary.
    options = {} if exporting else {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
    monitor = agentmon.configure(service_name="swarm", swarm="research-swarm", **options)
    start = time.monotonic()
    asyncio.run(run_swarm(make_tasks(args.tasks, random.Random(args.seed))))
    elapsed = time.monotonic() - start
    print_summary(monitor, elapsed)
    shutdown_start = time.monotonic()
    monitor.shutdown()
    stats = monitor.stats()
    where = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "nowhere (set OTEL_EXPORTER_OTLP_ENDPOINT to export)")
    print(f"\ntelemetry: {stats.spans_started} spans, {stats.spans_exported} exported to {where}, "
          f"dropped {dict(stats.spans_dropped) or 0}; shutdown took {time.monotonic() - shutdown_start:.2f}s")


if __name__ == "__main__":
    main()
