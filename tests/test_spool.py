"""The disk spool (issue 15): what the Collector could not take is kept and delivered later.

Every test checks delivery at an independent receiver (``tests/support/receiver.py``): each span
arrives, exactly once, and ``stats()`` accounts for it. Nothing here is timed: waits are for
states (spans arrived, a process exited), with generous ceilings for a loaded machine.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_agentmon._export import spool as spool_mod
from otel_agentmon._setup.monitor import Monitor
from otel_agentmon._setup.settings import resolve
from tests.conftest import MonitorFor
from tests.support.deadlines import within
from tests.support.polling import wait_for
from tests.support.receiver import OTLPReceiver, ReceivedSpan, blackhole
from tests.support.tasks import agent_task, run_tasks, settled, warnings_with

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "spool-test"


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def spooled_monitor(monitor_for: MonitorFor, spool_dir: Path) -> Callable[..., Monitor]:
    def make(target: OTLPReceiver | str, **opts: Any) -> Monitor:
        return monitor_for(target, spool=True, spool_dir=str(spool_dir), service_name=SERVICE, **opts)

    return make


def files(spool_dir: Path, signal: str = "traces", suffix: str = ".otlp") -> list[Path]:
    """The spool's files of ``signal`` (all with ``signal=""``), oldest first."""
    service = spool_dir / SERVICE
    if not service.exists():
        return []
    return sorted(p for p in service.iterdir() if p.name.endswith(suffix) and f".{signal}" in p.name)


def lookup_ids(spans: list[ReceivedSpan]) -> list[int]:
    return sorted(int(s.attributes["i"]) for s in spans if s.name.endswith("lookup"))


def delivered_once(rx: OTLPReceiver, n_spans: int, timeout: float = 60.0) -> None:
    assert rx.wait_for_spans(n_spans, timeout), f"{len(rx.spans())} of {n_spans} spans arrived"
    assert len(rx.spans()) == len(rx.unique_span_ids()) == n_spans, "a span was lost or sent twice"


def run_paced(monitor: Monitor, n: int, start: int = 0) -> None:
    """``n`` tasks at an agent's pace: chunks of 100, each after the worker has taken the last
    (a tight loop outruns any exporter; the queue is not what is tested here)."""
    for first in range(start, start + n, 100):
        assert wait_for(lambda: monitor.stats().spans_queued == 0, 60.0), monitor.stats()
        for i in range(first, min(first + 100, start + n)):
            assert agent_task(i) == i


def wait_spooled(monitor: Monitor, n: int) -> None:
    assert wait_for(lambda: monitor.stats().spans_spooled >= n, 60.0), monitor.stats()


def run_process(rx: OTLPReceiver, spool_dir: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "tests.support.spool_run", rx.endpoint, str(spool_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# ---- the outages ----------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_outage_in_the_middle_of_a_run_loses_nothing(rx: OTLPReceiver,
                                                     spooled_monitor: Callable[..., Monitor]) -> None:
    monitor = spooled_monitor(rx, span_max_queue_size=256, span_max_export_batch_size=64)
    run_paced(monitor, 100)
    delivered_once(rx, 200)
    rx.down()
    run_paced(monitor, 2000, start=100)  # 4000 spans: far more than the queue holds; they go to disk, not queue_full
    wait_spooled(monitor, 1)
    rx.up()
    run_paced(monitor, 100, start=2100)
    delivered_once(rx, 4400)
    monitor.shutdown(10.0)
    stats = settled(monitor)
    assert stats.spans_exported == 4400 and stats.spans_spooled == 0 and not stats.spans_dropped, stats
    assert stats.spool.written["traces"] == stats.spool.resent["traces"] > 0, stats.spool
    assert lookup_ids(rx.spans()) == list(range(2200))


@pytest.mark.timeout(120)
def test_log_records_are_kept_through_an_outage_too(rx: OTLPReceiver,
                                                    spooled_monitor: Callable[..., Monitor]) -> None:
    rx.down()
    monitor = spooled_monitor(rx, health=False)
    for i in range(50):
        monitor.event_logger.emit(event_name="agentmon.test.event", attributes={"i": i}, body=f"record {i}")
    assert wait_for(lambda: monitor.stats().logs_spooled == 50, 60.0), monitor.stats()
    rx.up()
    assert rx.wait_for(lambda: len(rx.logs()) >= 50, 60.0), len(rx.logs())
    assert sorted(int(r.attributes["i"]) for r in rx.logs()) == list(range(50))
    assert wait_for(lambda: monitor.stats().logs_spooled == 0, 30.0)
    assert monitor.stats().spool.resent["logs"] == 50


@pytest.mark.timeout(240)
def test_outage_at_exit_is_delivered_by_the_next_run_of_the_service(rx: OTLPReceiver, spool_dir: Path) -> None:
    rx.down()
    first = run_process(rx, spool_dir, "--tasks", "300")
    assert first["balanced"] and first["spooled"] == 600 and not first["dropped"], first
    assert within(first["shutdown_s"], 3.0)
    assert files(spool_dir) and not rx.spans()
    rx.up()
    second = run_process(rx, spool_dir, "--tasks", "5", "--start", "1000", "--drain")
    assert second["balanced"] and second["resent"]["traces"] == 600 and second["exported"] == 10, second
    delivered_once(rx, 610)
    by_instance = {s.resource["service.instance.id"] for s in rx.spans() if s.attributes.get("i", 1000) < 1000}
    assert by_instance == {first["instance"]}  # the first run's spans, with the first run's resource
    assert lookup_ids(rx.spans()) == list(range(300)) + list(range(1000, 1005))
    # ... and its last metric export (the agents' stopped state), kept at exit, arrives too.
    assert rx.wait_for(lambda: any(m.resource.get("service.instance.id") == first["instance"]
                                   for m in rx.metrics()), 30.0)
    assert wait_for(lambda: not files(spool_dir, signal=""), 30.0)  # metrics too


@pytest.mark.timeout(240)
def test_two_processes_sharing_a_spool_send_each_request_once(rx: OTLPReceiver, spool_dir: Path) -> None:
    rx.down()
    first = run_process(rx, spool_dir, "--tasks", "1000", "--batch", "8")  # 2000 spans, ~250 files
    assert first["spooled"] == 2000, first
    rx.up()
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.spool_run", rx.endpoint, str(spool_dir),
                               "--batch", "8", "--drain"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    delivered_once(rx, 2000, timeout=120)
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "Traceback" not in err, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["resent"]["traces"] for r in results) == 2000, results
    assert lookup_ids(rx.spans()) == list(range(1000))
    assert not files(spool_dir, signal="", suffix="")  # no request, claim or temp file left


def test_a_claim_left_by_a_dead_process_is_sent(rx: OTLPReceiver, spool_dir: Path,
                                                spooled_monitor: Callable[..., Monitor]) -> None:
    rx.down()
    first = run_process(rx, spool_dir, "--tasks", "10")
    assert first["spooled"] == 20
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (name,) = files(spool_dir)
    name.rename(name.with_name(f"{name.name}.claim.{spool_mod._HOST}.{dead}"))
    rx.up()
    monitor = spooled_monitor(rx)
    delivered_once(rx, 20)
    assert wait_for(lambda: monitor.stats().spool.resent["traces"] == 20, 30.0), monitor.stats().spool


# ---- bounds and damage ------------------------------------------------------------------------------
def test_a_full_spool_drops_the_oldest_first_and_counts_them(spool_dir: Path) -> None:
    directory = spool_mod.SpoolDir.open(spool_dir / SERVICE, max_bytes=1_000_000, max_age_s=3600)
    assert directory is not None
    names = [directory.write("traces", "http://x/v1/traces", 100, bytes([i]) * 300_000) for i in range(5)]
    left = sorted(p.name for p in files(spool_dir))
    assert left == sorted(n for n in names[-3:] if n)  # three files fit; the two oldest went
    assert directory.expired == {"traces": 200} and directory.expired_own == {"traces": 200}
    claimed = directory.claim("traces", spool_mod.endpoint_key("http://x/v1/traces"))
    assert claimed is not None and claimed.payload == bytes([2]) * 300_000  # oldest first


@pytest.mark.timeout(120)
def test_expired_spans_are_dropped_with_a_reason(rx: OTLPReceiver,
                                                 spooled_monitor: Callable[..., Monitor]) -> None:
    rx.down()
    monitor = spooled_monitor(rx, spool_max_age=0.5)
    run_tasks(50)
    wait_spooled(monitor, 100)
    assert wait_for(lambda: monitor.stats().spans_dropped.get("spool_expired", 0) == 100, 60.0), monitor.stats()
    rx.up()
    run_tasks(5)
    delivered_once(rx, 10)
    monitor.shutdown(10.0)
    stats = settled(monitor)
    assert stats.spans_spooled == 0 and stats.spool.expired == {"traces": 100}, stats


def test_a_torn_file_is_removed_and_counted_and_the_rest_delivered(
        rx: OTLPReceiver, spool_dir: Path, spooled_monitor: Callable[..., Monitor]) -> None:
    rx.down()
    first = run_process(rx, spool_dir, "--tasks", "20", "--batch", "10")
    assert first["spooled"] == 40
    oldest = files(spool_dir)[0]
    data = oldest.read_bytes()
    oldest.write_bytes(data[: len(data) // 2])  # torn: a crash, a full disk, a bad copy
    parts = oldest.name.split(".")
    garbage = oldest.with_name(f"{int(parts[0]) - 1:020d}.traces.{parts[2]}.5.bad.otlp")
    garbage.write_bytes(b"not a spool file")
    rx.up()
    monitor = spooled_monitor(rx)
    delivered_once(rx, 30)
    assert wait_for(lambda: monitor.stats().spool.corrupt == 2, 30.0), monitor.stats().spool
    assert wait_for(lambda: not files(spool_dir, signal=""), 30.0)  # metrics too


# ---- an unusable directory: one warning, memory only ----------------------------------------------------
def memory_only(monitor: Monitor, rx: OTLPReceiver) -> None:
    rx.down()
    run_tasks(20)
    monitor.shutdown(2.0)
    stats = settled(monitor)
    assert stats.spool.directory is None and stats.spans_spooled == 0
    assert stats.spans_dropped_total == 40, stats


def test_an_uncreatable_spool_directory_is_one_warning_and_memory_only(
        rx: OTLPReceiver, tmp_path: Path, monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a-file").write_text("")
    caplog.set_level(logging.WARNING, logger="otel_agentmon")
    monitor = monitor_for(rx, spool=True, spool_dir=str(tmp_path / "a-file" / "spool"), service_name=SERVICE)
    memory_only(monitor, rx)
    assert warnings_with(caplog, "spool directory") == 1


def test_a_read_only_spool_directory_is_one_warning_and_memory_only(
        rx: OTLPReceiver, spool_dir: Path, monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (spool_dir / SERVICE).mkdir(parents=True, mode=0o700)
    (spool_dir / SERVICE).chmod(0o500)
    if os.geteuid() == 0:  # permissions do not stop root: the file system says no instead
        real_open = os.open

        def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT and "dir_fd" in kwargs:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only)  # the spool module calls os.open
    caplog.set_level(logging.WARNING, logger="otel_agentmon")
    monitor = monitor_for(rx, spool=True, spool_dir=str(spool_dir), service_name=SERVICE)
    monkeypatch.undo()
    memory_only(monitor, rx)
    assert warnings_with(caplog, "spool directory") == 1
    (spool_dir / SERVICE).chmod(0o700)


def test_a_symlinked_spool_directory_is_refused(rx: OTLPReceiver, spool_dir: Path, tmp_path: Path,
                                                monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    spool_dir.mkdir()
    (spool_dir / SERVICE).symlink_to(target)
    caplog.set_level(logging.WARNING, logger="otel_agentmon")
    monitor = monitor_for(rx, spool=True, spool_dir=str(spool_dir), service_name=SERVICE)
    memory_only(monitor, rx)
    assert warnings_with(caplog, "is a symlink") == 1
    assert not list(target.iterdir())


def test_a_spool_directory_owned_by_another_user_is_refused(
        rx: OTLPReceiver, spool_dir: Path, monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user")
    (spool_dir / SERVICE).mkdir(parents=True, mode=0o700)
    os.chown(spool_dir / SERVICE, 65534, 65534)  # nobody: it could read what we spool, or plant files
    caplog.set_level(logging.WARNING, logger="otel_agentmon")
    monitor = monitor_for(rx, spool=True, spool_dir=str(spool_dir), service_name=SERVICE)
    memory_only(monitor, rx)
    assert warnings_with(caplog, "owned by another user") == 1


def test_the_spool_is_private_to_the_user(rx: OTLPReceiver, spool_dir: Path,
                                         spooled_monitor: Callable[..., Monitor]) -> None:
    (spool_dir / SERVICE).mkdir(parents=True)
    (spool_dir / SERVICE).chmod(0o755)  # made by hand, too open
    rx.down()
    monitor = spooled_monitor(rx)
    run_tasks(5)
    wait_spooled(monitor, 10)
    assert stat.S_IMODE((spool_dir / SERVICE).stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in files(spool_dir)} == {0o600}


# ---- endpoints ---------------------------------------------------------------------------------------------
@pytest.fixture
def other_rx() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.mark.parametrize("any_endpoint", [False, True])
def test_a_spool_is_sent_only_to_the_endpoint_it_was_written_for(
        any_endpoint: bool, rx: OTLPReceiver, other_rx: OTLPReceiver, spool_dir: Path,
        spooled_monitor: Callable[..., Monitor]) -> None:
    rx.down()
    first = run_process(rx, spool_dir, "--tasks", "10")
    assert first["spooled"] == 20
    monitor = spooled_monitor(other_rx, spool_any_endpoint=any_endpoint)
    run_tasks(3)
    monitor.force_flush(10.0)
    if any_endpoint:
        delivered_once(other_rx, 26)
    else:
        delivered_once(other_rx, 6)
        monitor.shutdown(10.0)
        assert monitor.stats().spool.resent["traces"] == 0 and len(files(spool_dir)) == 1


# ---- defaults and shutdown -------------------------------------------------------------------------------------
def test_the_spool_is_on_by_default_in_the_users_state_directory(tmp_path: Path) -> None:
    settings = resolve({}, environ={})
    assert settings.spool and settings.spool_dir is None and not settings.spool_any_endpoint
    assert (settings.spool_max_mb, settings.spool_max_age) == (256, 86400.0)
    os.environ["XDG_STATE_HOME"], saved = str(tmp_path), os.environ.get("XDG_STATE_HOME", "")
    try:
        assert spool_mod.service_dir(None, "my agent/1") == tmp_path / "otel_agentmon" / "spool" / "my_agent_1"
    finally:
        os.environ["XDG_STATE_HOME"] = saved
    off = resolve({}, environ={"AGENTMON_SPOOL": "false", "AGENTMON_SPOOL_DIR": "/srv/spool"})
    assert not off.spool and off.spool_dir == "/srv/spool"
    assert resolve({"spool_dir": tmp_path}, environ={}).spool_dir == str(tmp_path)


@pytest.mark.timeout(60)
def test_shutdown_with_the_collector_down_spools_the_queue_within_its_deadline(
        rx: OTLPReceiver, spooled_monitor: Callable[..., Monitor]) -> None:
    rx.down()
    monitor = spooled_monitor(rx, span_schedule_delay_ms=60_000)  # everything still queued at shutdown
    run_tasks(1000)
    start = time.monotonic()
    monitor.shutdown(2.0)
    assert within(time.monotonic() - start, 2.0)
    stats = settled(monitor)
    assert stats.spans_spooled == 2000 and not stats.spans_dropped, stats


@pytest.mark.timeout(60)
def test_shutdown_while_an_export_hangs_spools_the_queue_within_its_deadline(
        rx: OTLPReceiver, spooled_monitor: Callable[..., Monitor]) -> None:
    rx.mode = blackhole()
    monitor = spooled_monitor(rx, span_max_export_batch_size=64)
    run_tasks(10)
    assert rx.wait_for(lambda: rx.holding("/v1/traces") > 0, 30.0)  # the worker is stuck in that export
    run_tasks(300)
    start = time.monotonic()
    monitor.shutdown(2.0)
    assert within(time.monotonic() - start, 2.0)
    stats = settled(monitor)
    # The queue went to disk; only the batch held by the black hole is lost.
    assert stats.spans_spooled >= 600 and set(stats.spans_dropped) <= {"shutdown_timeout"}, stats
    assert stats.spans_dropped.get("shutdown_timeout", 0) <= 64, stats
