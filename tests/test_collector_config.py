"""Hardening lint for every Collector config in collector-config/, and the built Collector's `validate`.

The rules (issue 4, "hardened defaults throughout"), checked on the parsed YAML of each config:

* listeners (receivers, extensions, the prometheus exporter, the Collector's own telemetry) bind
  127.0.0.1/localhost, or `${env:…}` whose default does; never the all-interfaces wildcard;
* `memory_limiter` is the first processor of every pipeline;
* no pprof, zpages or expvar extensions;
* network exporters (otlp*, load_balancing, prometheus_remote_write) queue and retry;
* OTLP receivers cap request sizes (HTTP `max_request_body_size`, gRPC `max_recv_msg_size_mib`);
* no literal secrets: header and credential values come only from `${env:…}`;
* the `debug` exporter is in no traces or metrics pipeline.

`test_lint_catches_each_violation` proves every rule fires on a config that breaks it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.stack import CONFIG_DIR, Binaries, clean_env

Config = dict[str, Any]
Rule = Callable[[Config], list[str]]

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_]\w*)(?::-([^}]*))?\}")
_WHOLE_ENV_REF = re.compile(r"^\$\{env:[A-Za-z_]\w*(?::-[^}]*)?\}$")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
NETWORK_EXPORTERS = {"otlp", "otlp_grpc", "otlphttp", "otlp_http", "loadbalancing", "load_balancing",
                     "prometheusremotewrite", "prometheus_remote_write"}
LISTENING_EXPORTERS = {"prometheus"}  # exporters that serve a port instead of sending
FORBIDDEN_EXTENSIONS = {"pprof", "zpages", "expvar"}
SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|authorization|bearer|cookie|credential)")
SECRET_VALUE = re.compile(r"(?i)^\s*(basic|bearer)\s+\S")


def _type(component_id: str) -> str:
    """`otlp_grpc/jaeger` -> `otlp_grpc`."""
    return component_id.split("/", 1)[0]


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, str(key), value
            yield from _walk(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def _default_value(value: str) -> str | None:
    """``value`` with each `${env:X:-d}` replaced by its default ``d``; None if a reference has no default."""
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        missing = missing or m.group(2) is None
        return m.group(2) or ""
    resolved = _ENV_REF.sub(sub, value)
    return None if missing else resolved


def _host(address: str) -> str:
    address = re.sub(r"^[a-z]+://", "", address).split("/", 1)[0]
    if address.startswith("["):
        return address[: address.index("]") + 1]
    return address.rsplit(":", 1)[0] if ":" in address else address


# ------------------------------------------------------------------------------------------ rules
def listeners_on_loopback(cfg: Config) -> list[str]:
    places: list[tuple[str, Any]] = [("receivers", cfg.get("receivers")), ("extensions", cfg.get("extensions")),
                                     ("service.telemetry", cfg.get("service", {}).get("telemetry"))]
    places += [(f"exporters.{cid}", c) for cid, c in (cfg.get("exporters") or {}).items()
               if _type(cid) in LISTENING_EXPORTERS]
    bad = []
    for where, section in places:
        for path, key, value in _walk(section, where):
            if key not in ("endpoint", "host") or isinstance(value, (dict, list)):
                continue
            default = _default_value(str(value))
            if default is None:
                bad.append(f"{path}: {value!r} has no loopback default")
            elif _host(default) not in LOOPBACK:
                bad.append(f"{path}: {value!r} binds {_host(default) or 'every interface'!r}, not loopback")
    return bad


def memory_limiter_first(cfg: Config) -> list[str]:
    pipelines = cfg.get("service", {}).get("pipelines") or {}
    bad = [f"pipeline {name}: processors {(p or {}).get('processors')} do not start with memory_limiter"
           for name, p in pipelines.items()
           if not (p or {}).get("processors") or _type(p["processors"][0]) != "memory_limiter"]
    return bad or ([] if pipelines else ["no pipelines"])


def no_debug_extensions(cfg: Config) -> list[str]:
    ids = [*(cfg.get("extensions") or {}), *(cfg.get("service", {}).get("extensions") or [])]
    return [f"extension {cid} exposes internals" for cid in ids if _type(cid) in FORBIDDEN_EXTENSIONS]


def _enabled(block: Any) -> bool:
    return isinstance(block, dict) and block.get("enabled") is True


def exporters_queue_and_retry(cfg: Config) -> list[str]:
    bad = []
    for cid, settings in (cfg.get("exporters") or {}).items():
        kind, c = _type(cid), settings or {}
        if kind not in NETWORK_EXPORTERS:
            continue
        # prometheus_remote_write has its own queue (remote_write_queue); exporterhelper's is unused there.
        queue = "remote_write_queue" if "remote" in kind else "sending_queue"
        blocks = [(cid, c)]
        if "balancing" in kind:
            blocks += [(f"{cid}.protocol.{p}", pc or {}) for p, pc in (c.get("protocol") or {}).items()]
        for where, block in blocks:
            bad += [f"{where}: {key}.enabled is not true" for key in (queue, "retry_on_failure")
                    if not _enabled(block.get(key))]
    return bad


def receivers_limit_sizes(cfg: Config) -> list[str]:
    bad = []
    for cid, c in (cfg.get("receivers") or {}).items():
        protocols = (c or {}).get("protocols") or {}
        for proto, limit in (("grpc", "max_recv_msg_size_mib"), ("http", "max_request_body_size")):
            if proto in protocols and not (protocols[proto] or {}).get(limit):
                bad.append(f"receivers.{cid}.protocols.{proto}: no {limit}")
    return bad


def secrets_only_from_env(cfg: Config) -> list[str]:
    bad = []
    for path, key, value in _walk(cfg):
        if isinstance(value, (dict, list)) or value is None:
            continue
        text = str(value)
        in_headers = ".headers." in f".{path}"
        secretish = bool(SECRET_KEY.search(key)) and not key.endswith("_file")
        if SECRET_VALUE.search(text):
            bad.append(f"{path}: literal credential {text[:12]!r}…")
        elif (in_headers or secretish) and not _WHOLE_ENV_REF.match(text):
            bad.append(f"{path}: literal value; take it from ${{env:…}}")
        elif secretish and _default_value(text):
            bad.append(f"{path}: {text!r} has a non-empty default credential")
    return bad


def no_debug_in_traces_or_metrics(cfg: Config) -> list[str]:
    pipelines = cfg.get("service", {}).get("pipelines") or {}
    return [f"pipeline {name} exports to {e}" for name, p in pipelines.items()
            if _type(name) in ("traces", "metrics")
            for e in (p or {}).get("exporters") or [] if _type(e) in ("debug", "logging")]


RULES: dict[str, Rule] = {
    "listeners_on_loopback": listeners_on_loopback,
    "memory_limiter_first": memory_limiter_first,
    "no_pprof_zpages": no_debug_extensions,
    "exporters_queue_and_retry": exporters_queue_and_retry,
    "receivers_limit_sizes": receivers_limit_sizes,
    "secrets_only_from_env": secrets_only_from_env,
    "no_debug_in_traces_or_metrics": no_debug_in_traces_or_metrics,
}


def _is_collector_config(path: Path) -> bool:
    data = yaml.safe_load(path.read_text())
    return isinstance(data, dict) and "service" in data and "receivers" in data


CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if _is_collector_config(p))


@pytest.mark.timeout(10)
def test_every_config_is_linted() -> None:
    names = {p.name for p in CONFIGS}
    assert {"local.yaml", "agent.yaml", "gateway.yaml", "tempo.yaml", "jaeger.yaml"} <= names, names
    assert "builder-config.yaml" not in names


@pytest.mark.timeout(10)
@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_is_hardened(config: Path, rule: str) -> None:
    assert RULES[rule](yaml.safe_load(config.read_text())) == []


BAD_CONFIG = """
extensions:
  pprof: {endpoint: 127.0.0.1:1777}
  health_check: {endpoint: "${env:HEALTH:-0.0.0.0:13133}"}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "0.0.0.0:4317"}
      http: {endpoint: ":4318"}
exporters:
  otlp_grpc/x: {endpoint: "backend:4317", headers: {authorization: "Bearer abc123", x-tenant: acme}}
  load_balancing:
    protocol: {otlp: {sending_queue: {enabled: true}}}
    resolver: {static: {hostnames: [a]}}
  prometheus_remote_write: {endpoint: "https://m/api/v1/push", remote_write_queue: {enabled: false}}
  prometheus: {endpoint: "${env:PROM}"}
  debug: {}
processors:
  memory_limiter: {check_interval: 1s, limit_mib: 100}
  batch: {}
service:
  extensions: [pprof, health_check]
  pipelines:
    traces: {receivers: [otlp], processors: [batch, memory_limiter], exporters: [otlp_grpc/x, debug]}
    metrics/x: {receivers: [otlp], exporters: [prometheus, debug]}
    logs: {receivers: [otlp], processors: [memory_limiter], exporters: [debug]}
"""


@pytest.mark.timeout(10)
def test_lint_catches_each_violation() -> None:
    found = {name: rule(yaml.safe_load(BAD_CONFIG)) for name, rule in RULES.items()}
    assert all(found.values()), {name: v for name, v in found.items() if not v}
    text = "\n".join(v for vs in found.values() for v in vs)
    for expected in ("receivers.otlp.protocols.grpc.endpoint", "receivers.otlp.protocols.http.endpoint",
                     "extensions.health_check.endpoint", "exporters.prometheus.endpoint",
                     "pipeline traces: processors", "pipeline metrics/x: processors", "extension pprof",
                     "otlp_grpc/x: sending_queue", "otlp_grpc/x: retry_on_failure", "load_balancing: sending_queue",
                     "load_balancing.protocol.otlp: retry_on_failure", "prometheus_remote_write: remote_write_queue",
                     "protocols.grpc: no max_recv_msg_size_mib", "protocols.http: no max_request_body_size",
                     "headers.authorization: literal credential", "headers.x-tenant: literal value",
                     "pipeline traces exports to debug", "pipeline metrics/x exports to debug"):
        assert expected in text, f"{expected!r} not reported:\n{text}"
    assert "pipeline logs" not in text, "debug in a logs pipeline is allowed"




DURABLE_CONFIGS = ("local.yaml", "agent.yaml", "gateway.yaml")
QUEUE_DIR_REF = re.compile(r"^\$\{env:AGENTMON_COLLECTOR_QUEUE_DIR:-/var/lib/otelcol/[\w.-]+\}$")


def durable_queues(cfg: Config) -> list[str]:
    """Network exporters queue on file_storage (a private, env-configured directory), and no batch
    processor answers the client before the data reaches that queue (issue 15; README "Durable queues")."""
    bad = []
    extensions = cfg.get("extensions") or {}
    enabled = set(cfg.get("service", {}).get("extensions") or [])
    for cid, c in (cfg.get("exporters") or {}).items():
        if _type(cid) not in NETWORK_EXPORTERS or "remote" in _type(cid):
            continue
        storage = ((c or {}).get("sending_queue") or {}).get("storage")
        if not storage or _type(str(storage)) != "file_storage":
            bad.append(f"exporters.{cid}.sending_queue: no file_storage `storage`")
            continue
        if "balancing" in _type(cid):  # its sub-exporters' queues are in memory: deliver before letting go
            bad += [f"exporters.{cid}.protocol.{proto}.sending_queue: wait_for_result is not true"
                    for proto, pc in ((c or {}).get("protocol") or {}).items()
                    if ((pc or {}).get("sending_queue") or {}).get("wait_for_result") is not True]
        ext = extensions.get(storage) or {}
        if storage not in enabled:
            bad.append(f"{storage} is not in service.extensions")
        if not QUEUE_DIR_REF.match(str(ext.get("directory", ""))):
            bad.append(f"extensions.{storage}.directory: {ext.get('directory')!r} is not AGENTMON_COLLECTOR_QUEUE_DIR")
        if ext.get("create_directory") is not True or str(ext.get("directory_permissions")) != "0700":
            bad.append(f"extensions.{storage}: not created private (create_directory, directory_permissions 0700)")
    for name, p in (cfg.get("service", {}).get("pipelines") or {}).items():
        bad += [f"pipeline {name}: {proc} answers before the queue has the data"
                for proc in (p or {}).get("processors") or [] if _type(proc) == "batch"]
    return bad


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", DURABLE_CONFIGS)
def test_config_queues_on_disk(name: str) -> None:
    assert durable_queues(yaml.safe_load((CONFIG_DIR / name).read_text())) == []


@pytest.mark.timeout(10)
def test_durable_queue_lint_catches_memory_queues_and_batch() -> None:
    text = "\n".join(durable_queues(yaml.safe_load(BAD_CONFIG)))
    text += "\n" + "\n".join(durable_queues({"exporters": {"load_balancing": {
        "sending_queue": {"storage": "file_storage/q"}, "protocol": {"otlp": {"sending_queue": {"enabled": True}}}}}}))
    for expected in ("exporters.otlp_grpc/x.sending_queue: no file_storage", "exporters.load_balancing.sending_queue",
                     "pipeline traces: batch answers before", "file_storage/q is not in service.extensions",
                     "load_balancing.protocol.otlp.sending_queue: wait_for_result is not true"):
        assert expected in text, f"{expected!r} not reported:\n{text}"


@pytest.mark.timeout(180)
def test_validate_subcommand_accepts_every_config(binaries: Binaries) -> None:
    env = clean_env({"OTELCOL": str(binaries.otelcol), "JAEGER": str(binaries.jaeger)})
    proc = subprocess.run([str(CONFIG_DIR / "validate"), "--no-start"], env=env, capture_output=True, text=True,
                          timeout=150, check=False)
    assert proc.returncode == 0, f"collector-config/validate --no-start failed:\n{proc.stdout}\n{proc.stderr}"
    checked = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    for cfg in CONFIGS:
        assert any(f" {cfg.name}" in line for line in checked), f"{cfg.name} was not validated:\n{proc.stdout}"
    assert "FAIL" not in proc.stdout
