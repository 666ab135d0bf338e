"""The real observability stack for the end-to-end tests: the Collector, Jaeger v2 and Prometheus.

Each runs as a subprocess in its own process group on free 127.0.0.1 ports, its files (logs,
Prometheus' config and TSDB) under a temporary directory::

    with Stack(tmp_path, locate_binaries()) as stack, stack.logs_on_failure():
        jaeger = stack.jaeger()
        col = stack.collector("local", "local.yaml", jaeger=jaeger, env={"AGENTMON_SPANMETRICS_FLUSH": "1s"})
        prom = stack.prometheus([col.metrics_target], rule_files=[...])

Leaving the ``with`` block stops every process group (SIGTERM, then SIGKILL). On failure the tail
of every log is printed (pytest shows it with the failure) and the files stay under ``tmp_path``.

Tests get the binaries from the ``binaries`` fixture (:func:`binaries_or_skip`): when one is
missing they are skipped with the reason and the fix, unless ``AGENTMON_REQUIRE_STACK=1`` (which
``.ci/run`` sets) makes them fail instead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "collector-config"
BUILD = CONFIG_DIR / "build"
BUILD_TIMEOUT = 60.0  # a warm (cached) build returns in milliseconds; a cold one takes ~10 minutes
REQUIRE_ENV = "AGENTMON_REQUIRE_STACK"  # "1": a missing binary fails the tests instead of skipping them
BUILD_HINT = ("run `collector-config/build` before the tests (CI's .ci/run does; a cold build takes about "
              "10 minutes and needs Go >= 1.26 and the Go module proxy), or point AGENTMON_OTELCOL and "
              "AGENTMON_JAEGER at already-built binaries")
T = TypeVar("T")


class StackError(AssertionError):
    """A stack component did not start, answer or stop as it should (message carries its log)."""


class MissingBinaries(RuntimeError):
    """The Collector, Jaeger or Prometheus binary is not available."""


@dataclass(frozen=True)
class Binaries:
    otelcol: Path
    jaeger: Path
    prometheus: Path


def _executable(path: str, what: str, hint: str) -> Path:
    p = Path(path)
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise MissingBinaries(f"{what} not found or not executable: {path!r}; {hint}")
    return p


def locate_binaries() -> Binaries:
    """The binaries' paths (looked up once per session); raises :class:`MissingBinaries` with the fix."""
    found = _locate_once()
    if isinstance(found, str):
        raise MissingBinaries(found)
    return found


def stack_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def binaries_or_skip() -> Binaries:
    """For the ``binaries`` fixture: the binaries; if one is missing, skip (or fail, when required)."""
    try:
        return locate_binaries()
    except MissingBinaries as exc:
        message = str(exc)
    if stack_required():
        pytest.fail(f"{message}\n({REQUIRE_ENV}=1: the Collector, Jaeger and Prometheus are required)",
                    pytrace=False)
    pytest.skip(f"needs the Collector, Jaeger and Prometheus binaries: {message} "
                f"(with {REQUIRE_ENV}=1, as in .ci/run, this fails instead)")


@functools.cache
def _locate_once() -> Binaries | str:
    try:
        return _locate()
    except MissingBinaries as exc:
        return str(exc)


def _locate() -> Binaries:
    otelcol, jaeger = os.environ.get("AGENTMON_OTELCOL"), os.environ.get("AGENTMON_JAEGER")
    if not (otelcol and jaeger):
        try:
            proc = subprocess.Popen([str(BUILD)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=ROOT, start_new_session=True)
        except OSError as exc:
            raise MissingBinaries(f"cannot run {BUILD}: {exc}; {BUILD_HINT}") from exc
        try:
            stdout, stderr = proc.communicate(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the whole build (go, ocb), not only the script
            proc.communicate()
            raise MissingBinaries(f"`collector-config/build` did not finish within {BUILD_TIMEOUT:.0f} s, "
                                  f"so the Collector/Jaeger binaries are not cached; {BUILD_HINT}") from exc
        lines = stdout.strip().splitlines()
        if proc.returncode != 0 or len(lines) < 2:
            raise MissingBinaries(f"`collector-config/build` failed (exit {proc.returncode}); {BUILD_HINT}\n"
                                  f"--- its stderr (tail) ---\n{_tail(stderr, 30)}")
        otelcol, jaeger = otelcol or lines[-2].strip(), jaeger or lines[-1].strip()
    return Binaries(
        otelcol=_executable(otelcol, "the Collector (AGENTMON_OTELCOL / collector-config/build)", BUILD_HINT),
        jaeger=_executable(jaeger, "Jaeger (AGENTMON_JAEGER / collector-config/build)", BUILD_HINT),
        prometheus=_executable(shutil.which("prometheus") or "/usr/bin/prometheus", "prometheus",
                               "install Debian's prometheus package (apt-get install prometheus)"),
    )


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process' environment without OTEL_*/AGENTMON_*/JAEGER_*/TEMPO_* settings, plus ``extra``."""
    own = ("OTEL_", "AGENTMON_", "JAEGER_", "TEMPO_", "PROMETHEUS_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(own)}, **(extra or {})}


# ------------------------------------------------------------------------------------------ HTTP
def http_get(url: str, params: Mapping[str, str] | None = None, timeout: float = 5.0) -> bytes:
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback only
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response open
        raise


def get_json(url: str, params: Mapping[str, str] | None = None, timeout: float = 5.0) -> Any:
    return json.loads(http_get(url, params, timeout))


def answers(url: str) -> bool:
    try:
        return http_get(url, timeout=2.0) is not None
    except (OSError, urllib.error.URLError):
        return False


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25,
               detail: Callable[[], str] | None = None) -> T:
    """Call ``probe`` until it returns something truthy (returned); ``StackError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            result = probe()
            if result:
                return result
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            last_error = f" (last error: {exc!r})"
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}{last_error}{extra}")
        time.sleep(interval)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"')


def scrape(url: str) -> list[Sample]:
    """A Prometheus text-format endpoint's samples (enough of the format for the Collector's output)."""
    samples = []
    for line in http_get(url).decode().splitlines():
        m = _SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m.group(2) or "")}
        samples.append(Sample(m.group(1), labels, float(m.group(3))))
    return samples


# ------------------------------------------------------------------------------------- processes
@dataclass
class Service:
    """One running program: its own process group, stdout+stderr in ``log``."""

    name: str
    log: Path
    popen: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log.read_text(errors="replace"), lines) if self.log.exists() else "(no log)"

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the whole process group, SIGKILL it after ``timeout`` s; the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # stragglers in the group, if any
        return self.popen.wait(timeout)


@dataclass(frozen=True)
class Jaeger:
    service: Service
    query_url: str      # http://127.0.0.1:P  (/api/services, /api/traces)
    otlp_grpc: str      # 127.0.0.1:P, where Collectors export

    def traces(self, service: str, limit: int = 100) -> list[dict[str, Any]]:
        body = get_json(f"{self.query_url}/api/traces", {"service": service, "limit": str(limit), "lookback": "1h"})
        return list(body.get("data") or [])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace by ID (``None`` if Jaeger has none)."""
        try:
            body = get_json(f"{self.query_url}/api/traces/{trace_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        data = body.get("data") or []
        return dict(data[0]) if data else None

    def services(self) -> list[str]:
        return list(get_json(f"{self.query_url}/api/services").get("data") or [])


@dataclass(frozen=True)
class Collector:
    service: Service
    otlp_http: str      # http://127.0.0.1:P for OTEL_EXPORTER_OTLP_ENDPOINT
    otlp_grpc: str      # 127.0.0.1:P
    metrics_target: str  # 127.0.0.1:P, the prometheus exporter (path /metrics)
    telemetry_url: str  # http://127.0.0.1:P/metrics, the Collector's own otelcol_* metrics

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_target}/metrics"


@dataclass(frozen=True)
class Prometheus:
    service: Service
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self._api("query", {"query": expr})

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[dict[str, Any]]:
        return self._api("query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})

    def alerts(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.url}/api/v1/alerts")["data"]["alerts"])

    def _api(self, endpoint: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        body = get_json(f"{self.url}/api/v1/{endpoint}", params)
        if body.get("status") != "success":
            raise StackError(f"Prometheus {endpoint} {params}: {body}")
        return list(body["data"]["result"])


class Stack:
    """Starts services under ``workdir`` and stops them all (reverse order) when the block ends."""

    def __init__(self, workdir: Path, binaries: Binaries) -> None:
        self.workdir = workdir
        self.bins = binaries
        self.services: list[Service] = []
        self._ports: set[int] = set()

    def __enter__(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        problems = self.stop_all()
        if problems and exc is None:
            raise StackError("; ".join(problems) + "\n" + self.report())

    def stop_all(self) -> list[str]:
        """Stop every service, newest first; what went wrong (a crash, an unclean or late exit)."""
        problems = []
        for svc in reversed(self.services):
            crashed = not svc.alive()
            code = svc.stop()
            if crashed:
                problems.append(f"{svc.name} exited on its own during the test (exit {code})")
            elif code != 0:
                problems.append(f"{svc.name} did not stop cleanly on SIGTERM (exit {code})")
        return problems

    def report(self) -> str:
        parts = [f"=== {s.name} (pid {s.popen.pid}, log {s.log}) ===\n{s.log_tail()}" for s in self.services]
        return "\n".join(parts) or f"(no services running; logs under {self.workdir})"

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        """Print every service's log tail if the block fails (pytest shows it with the failure)."""
        try:
            yield
        except BaseException:
            print(f"\n--- stack logs (kept under {self.workdir}) ---\n{self.report()}")
            raise

    def free_ports(self, n: int) -> list[int]:
        """``n`` distinct free 127.0.0.1 ports, never one handed out before by this stack."""
        socks: list[socket.socket] = []
        try:
            while len(socks) < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                if s.getsockname()[1] in self._ports:
                    s.close()
                    continue
                socks.append(s)
            ports = [int(s.getsockname()[1]) for s in socks]
        finally:
            for s in socks:
                s.close()
        self._ports.update(ports)
        return ports

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> Service:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(list(argv), env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=cwd or self.workdir, start_new_session=True)
        svc = Service(name, log, popen)
        self.services.append(svc)
        return svc

    def wait_ready(self, svc: Service, url: str, timeout: float = 30.0) -> None:
        def probe() -> bool:
            if not svc.alive():
                raise StackError(f"{svc.name} exited (code {svc.popen.returncode}) before answering {url}\n"
                                 f"--- {svc.log} ---\n{svc.log_tail()}")
            return answers(url)
        wait_until(probe, timeout, f"{svc.name} to answer {url}", interval=0.1,
                   detail=lambda: f"--- {svc.log} ---\n{svc.log_tail()}")

    # -------------------------------------------------------------------------------- services
    def jaeger(self, name: str = "jaeger") -> Jaeger:
        names = ("OTLP_GRPC", "OTLP_HTTP", "QUERY_HTTP", "QUERY_GRPC", "HEALTH")
        ports = dict(zip(names, self.free_ports(len(names)), strict=True))
        env = clean_env({f"JAEGER_{n}_ENDPOINT": f"127.0.0.1:{port}" for n, port in ports.items()})
        svc = self.spawn(name, [str(self.bins.jaeger), f"--config={CONFIG_DIR / 'jaeger.yaml'}"], env)
        self.wait_ready(svc, f"http://127.0.0.1:{ports['QUERY_HTTP']}/api/services")
        return Jaeger(svc, f"http://127.0.0.1:{ports['QUERY_HTTP']}", f"127.0.0.1:{ports['OTLP_GRPC']}")

    def collector(self, name: str, config: str, *, jaeger: Jaeger | None = None,
                  env: Mapping[str, str] | None = None) -> Collector:
        """Run ``collector-config/<config>`` with every listener moved to a free port."""
        grpc, http, prom, health, tel = self.free_ports(5)
        variables = {
            "AGENTMON_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}", "AGENTMON_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
            "AGENTMON_GATEWAY_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
            "AGENTMON_GATEWAY_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
            "AGENTMON_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom}", "AGENTMON_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "AGENTMON_TELEMETRY_HOST": "127.0.0.1", "AGENTMON_TELEMETRY_PORT": str(tel),
            "AGENTMON_COLLECTOR_QUEUE_DIR": str(self.workdir / f"{name}-queue"),  # persistent queues: own dir
        }
        if jaeger is not None:
            variables["AGENTMON_JAEGER_OTLP_ENDPOINT"] = jaeger.otlp_grpc
        variables.update(env or {})
        svc = self.spawn(name, [str(self.bins.otelcol), f"--config={CONFIG_DIR / config}"], clean_env(variables))
        self.wait_ready(svc, f"http://127.0.0.1:{health}/")
        return Collector(svc, f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}", f"127.0.0.1:{prom}",
                         f"http://127.0.0.1:{tel}/metrics")

    def prometheus(self, targets: Sequence[str], *, rule_files: Sequence[Path] = (), name: str = "prometheus",
                   interval: str = "1s") -> Prometheus:
        """Prometheus scraping ``targets`` (host:port, /metrics) with ``honor_labels``, rules every ``interval``."""
        (port,) = self.free_ports(1)
        home = self.workdir / name
        home.mkdir(exist_ok=True)
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": "otel-agentmon", "honor_labels": True,
                                "static_configs": [{"targets": list(targets)}]}],
        }
        cfg = home / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))  # if Prometheus rejects it, wait_ready shows why
        argv = [str(self.bins.prometheus), f"--config.file={cfg}", f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=info"]
        svc = self.spawn(name, argv, clean_env(), cwd=home)
        self.wait_ready(svc, f"http://127.0.0.1:{port}/-/ready")
        return Prometheus(svc, f"http://127.0.0.1:{port}")
