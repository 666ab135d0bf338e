"""Every option of ``configure()`` as data: name, environment variable, type, default, doc.

Precedence is argument > environment variable > default. Reading them never raises: a bad
argument, a bad environment value or an unknown option name logs one warning (naming the option,
the value and what is accepted) and that option falls back to the next source. The README's
configuration table is checked against ``OPTIONS`` by a test.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import reprlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Literal, TypeAlias

from ._guard import log_once
from ._option_values import (
    Choice,
    accepts,
    from_argument,
    parse_bool,
    parse_endpoint,
    parse_headers,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_str,
)
from ._sanitize import clean_str, safe_repr
from ._semconv import ENV_CAPTURE_CONTENT

Protocol: TypeAlias = Literal["http/protobuf", "grpc"]
ExporterName: TypeAlias = Literal["otlp", "console", "none"]
SystemMetricsSet: TypeAlias = Literal["default", "all", "off"]
ContentMode: TypeAlias = Literal["NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT"]

# The realtime profile: what sub-second monitoring needs (see perf-anchors: a 200 ms batch
# delay gives p99 ~0.2 s end to end; the SDK default of 5 s gives p50 2.5 s).
REALTIME_SPAN_DELAY_MS: Final = 200
REALTIME_METRIC_INTERVAL_MS: Final = 500
PRODUCTION_SPAN_DELAY_MS: Final = 5000
PRODUCTION_METRIC_INTERVAL_MS: Final = 60000


_parse_bool = parse_bool
_parse_positive_int = parse_positive_int
_parse_positive_float = parse_positive_float
_parse_port = parse_port
_parse_str = parse_str
_parse_endpoint = parse_endpoint
_parse_headers = parse_headers


def _parse_choice(*choices: str, upper: bool = False) -> Choice:
    return Choice(*choices, upper=upper)


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    env: str | None
    parse: Callable[[str], object]
    default: object
    doc: str
    secret: bool = False


def _default_service_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    stem = Path(argv0).stem if argv0 else ""
    return stem or "unknown_service:python"


OPTIONS: Final[tuple[Option, ...]] = (
    Option("service_name", "OTEL_SERVICE_NAME", _parse_str, None,
           "`service.name`; default: the script's file name"),
    Option("service_namespace", "AGENTMON_SERVICE_NAMESPACE", _parse_str, None, "`service.namespace`"),
    Option("service_version", "AGENTMON_SERVICE_VERSION", _parse_str, None, "`service.version`"),
    Option("swarm", "AGENTMON_SWARM", _parse_str, None, "swarm name, resource `agentmon.swarm.name`"),
    Option("agent_role", "AGENTMON_AGENT_ROLE", _parse_str, None,
           "this process's role in the swarm, resource `agentmon.agent.role`"),
    Option("endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", _parse_endpoint, None,
           "OTLP base URL; default `http://localhost:4318` (HTTP) or `http://localhost:4317` (gRPC)"),
    Option("protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", _parse_choice("http/protobuf", "grpc"), "http/protobuf",
           "`http/protobuf` or `grpc`"),
    Option("headers", "OTEL_EXPORTER_OTLP_HEADERS", _parse_headers, None,
           "export headers `k=v,k2=v2` (never logged)", secret=True),
    Option("export_timeout", "OTEL_EXPORTER_OTLP_TIMEOUT", _parse_positive_float, 10.0,
           "deadline of one export including retries, in **seconds** (as the Python SDK reads it)"),
    Option("traces_exporter", "OTEL_TRACES_EXPORTER", _parse_choice("otlp", "console", "none"), "otlp",
           "`otlp`, `console` or `none`"),
    Option("metrics_exporter", "OTEL_METRICS_EXPORTER", _parse_choice("otlp", "console", "none"), "otlp",
           "`otlp`, `console` or `none`"),
    Option("logs_exporter", "OTEL_LOGS_EXPORTER", _parse_choice("otlp", "console", "none"), "otlp",
           "`otlp`, `console` or `none`"),
    Option("realtime", "AGENTMON_REALTIME", _parse_bool, True,
           "realtime profile: 200 ms span batches, 500 ms metric interval; `false` for production defaults"),
    Option("span_schedule_delay_ms", "OTEL_BSP_SCHEDULE_DELAY", _parse_positive_int, None,
           "span batch delay in ms; default from the profile (200 / 5000)"),
    Option("span_max_queue_size", "OTEL_BSP_MAX_QUEUE_SIZE", _parse_positive_int, 2048,
           "spans held for export before new ones are dropped (and counted)"),
    Option("span_max_export_batch_size", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", _parse_positive_int, 512,
           "spans per export request"),
    Option("metric_export_interval_ms", "OTEL_METRIC_EXPORT_INTERVAL", _parse_positive_int, None,
           "metric export interval in ms; default from the profile (500 / 60000)"),
    Option("metric_export_timeout_ms", "OTEL_METRIC_EXPORT_TIMEOUT", _parse_positive_int, 10000,
           "deadline of one metric export in ms"),
    Option("shutdown_timeout", "AGENTMON_SHUTDOWN_TIMEOUT", _parse_positive_float, 3.0,
           "seconds `shutdown()` and interpreter exit may take at most, all signals together"),
    Option("system_metrics", "AGENTMON_SYSTEM_METRICS", _parse_choice("default", "all", "off"), "default",
           "`default` (curated CPU, memory, network, threads, fds), `all`, or `off`"),
    Option("capture_content", ENV_CAPTURE_CONTENT,
           _parse_choice("NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT", upper=True), "NO_CONTENT",
           "message content capture; off by default"),
    Option("attribute_value_length_limit", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", _parse_positive_int, 8192,
           "longest attribute string kept (longer ones are truncated)"),
    Option("metric_cardinality_limit", "AGENTMON_METRIC_CARDINALITY_LIMIT", _parse_positive_int, 2000,
           "series per metric before the SDK folds the rest into `otel.metric.overflow=true`"),
    Option("health", "AGENTMON_HEALTH", _parse_bool, True,
           "run the health and alert loop (heartbeats, stuck tasks, error rate, alerts)"),
    Option("health_interval", "AGENTMON_HEALTH_INTERVAL", _parse_positive_float, None,
           "seconds between health/alert evaluations; default from the profile (0.1 / 1.0)"),
    Option("heartbeat_timeout", "AGENTMON_HEARTBEAT_TIMEOUT", _parse_positive_float, 10.0,
           "an agent that promised heartbeats (called `heartbeat()`) is down after this many seconds "
           "without one, a span or a running task"),
    Option("stuck_after", "AGENTMON_STUCK_AFTER", _parse_positive_float, 60.0,
           "a task running longer than this many seconds is stuck"),
    Option("health_policy", None, _parse_str, None,
           "a `HealthPolicy` with every health threshold (overrides the two options above)"),
    Option("alert_rules", "AGENTMON_ALERT_RULES", _parse_str, None,
           "alert rules: a YAML rule file's path, or a list of `AlertRule`"),
    Option("alert_webhook", "AGENTMON_ALERT_WEBHOOK", _parse_endpoint, None,
           "URL that receives alerts as Alertmanager webhook JSON"),
    Option("notifiers", None, _parse_str, None, "extra alert notifiers (`CallbackNotifier(fn)`, ...)"),
    Option("health_port", "AGENTMON_HEALTH_PORT", _parse_port, None,
           "serve `/healthz` and `/readyz` on this port (0: any free port); off by default"),
    Option("health_host", "AGENTMON_HEALTH_HOST", _parse_str, "127.0.0.1", "address the health endpoint binds"),
    Option("dashboard", "AGENTMON_DASHBOARD", _parse_bool, False,
           "serve the live dashboard (an in-process `agentmon serve`) on 127.0.0.1:4318, or any free port "
           "when that is taken, and export to it unless `endpoint` is set; `Monitor.dashboard_url`"),
    Option("disabled", "OTEL_SDK_DISABLED", _parse_bool, False, "`true` turns everything into no-ops"),
    Option("set_global", None, _parse_bool, True,
           "install our providers as the global ones when the application has none; `False` builds "
           "private providers and touches no global state"),
    Option("resource_attributes", None, _parse_str, None,
           "extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES` is also honoured)"),
)

OPTION_NAMES: Final = frozenset(o.name for o in OPTIONS)


@dataclasses.dataclass(frozen=True)
class Settings:
    service_name: str
    service_namespace: str | None
    service_version: str | None
    swarm: str | None
    agent_role: str | None
    endpoint: str | None
    protocol: Protocol
    headers: Mapping[str, str] | None
    export_timeout: float
    traces_exporter: ExporterName
    metrics_exporter: ExporterName
    logs_exporter: ExporterName
    realtime: bool
    span_schedule_delay_ms: int
    span_max_queue_size: int
    span_max_export_batch_size: int
    metric_export_interval_ms: int
    metric_export_timeout_ms: int
    shutdown_timeout: float
    system_metrics: SystemMetricsSet
    capture_content: ContentMode
    attribute_value_length_limit: int
    metric_cardinality_limit: int
    health: bool
    health_interval: float
    heartbeat_timeout: float
    stuck_after: float
    health_policy: object
    alert_rules: object
    alert_webhook: str | None
    notifiers: object
    health_port: int | None
    dashboard: bool
    health_host: str
    disabled: bool
    set_global: bool
    resource_attributes: Mapping[str, object] | None
    #: options the caller passed as arguments (the exporters read their own env vars otherwise,
    #: which keeps per-signal variables such as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT working).
    explicit: frozenset[str] = frozenset()


def _shown(opt: Option, value: object) -> str:
    if opt.secret:
        return "<redacted>"
    try:
        return clean_str(reprlib.repr(value), 200)
    except Exception:  # noqa: BLE001 - a value whose __repr__ raises
        return f"<{safe_repr(type(value).__qualname__)}>"


def _warn_unknown(unknown: set[str]) -> None:
    import difflib

    for name in sorted(unknown):
        close = difflib.get_close_matches(name, OPTION_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; see the README's configuration table"
        log_once(logging.WARNING, f"arg:unknown:{name}", "configure(): unknown option %r ignored%s",
                 clean_str(name, 100), hint)


def _read(opt: Option, args: Mapping[str, object], env: Mapping[str, str]) -> tuple[object, bool]:
    """(value, came from the argument) for ``opt``: argument > environment > default; never raises."""
    bad_arg: str | None = None
    arg = args.get(opt.name)
    if arg is not None:
        try:
            return from_argument(opt.name, opt.parse, arg), True
        except Exception:  # noqa: BLE001 - a bad argument is a warning, never an exception
            bad_arg = _shown(opt, arg)
    value: object = None
    raw = env.get(opt.env, "") if opt.env is not None else ""
    if raw.strip():
        try:
            value = opt.parse(raw)
        except Exception:  # noqa: BLE001 - a bad environment value is a warning, never an exception
            log_once(logging.WARNING, f"env:{opt.env}", "ignoring %s=%s: expected %s; using %s", opt.env,
                     "<redacted>" if opt.secret else repr(clean_str(raw, 200)), accepts(opt.name, opt.parse),
                     _fallback(opt, None))
    if bad_arg is not None:
        log_once(logging.WARNING, f"arg:{opt.name}", "configure(%s=%s) ignored: expected %s; using %s", opt.name,
                 bad_arg, accepts(opt.name, opt.parse), _fallback(opt, value))
    return value, False


def _fallback(opt: Option, env_value: object) -> str:
    if env_value is not None:
        return f"{opt.env} from the environment"
    if opt.default is None or opt.name.endswith("_ms"):
        return "the default"
    return f"the default {opt.default!r}"


def resolve(args: Mapping[str, object], environ: Mapping[str, str] | None = None) -> Settings:
    """Apply argument > environment > default for every option. Never raises: an unknown option, a
    bad argument or a bad environment value is one warning each, and that option falls back."""
    env = os.environ if environ is None else environ
    unknown = {str(k) for k in args} - OPTION_NAMES
    if unknown:
        _warn_unknown(unknown)
    values: dict[str, object] = {}
    explicit: set[str] = set()
    for opt in OPTIONS:
        value, from_arg = _read(opt, args, env)
        if from_arg:
            explicit.add(opt.name)
        values[opt.name] = value if value is not None else opt.default
    realtime = bool(values["realtime"])
    if values["span_schedule_delay_ms"] is None:
        values["span_schedule_delay_ms"] = REALTIME_SPAN_DELAY_MS if realtime else PRODUCTION_SPAN_DELAY_MS
    if values["metric_export_interval_ms"] is None:
        values["metric_export_interval_ms"] = (
            REALTIME_METRIC_INTERVAL_MS if realtime else PRODUCTION_METRIC_INTERVAL_MS
        )
    if values["health_interval"] is None:
        values["health_interval"] = 0.1 if realtime else 1.0
    if values["service_name"] is None:
        values["service_name"] = _default_service_name()
    return Settings(**values, explicit=frozenset(explicit))  # type: ignore[arg-type]


def options_markdown() -> str:
    """The README's configuration table, generated from ``OPTIONS`` (a test keeps them equal)."""
    rows = ["| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for opt in OPTIONS:
        env = f"`{opt.env}`" if opt.env else "—"
        default = "profile" if opt.default is None and opt.name.endswith("_ms") else opt.default
        shown = "—" if default is None else f"`{default}`"
        rows.append(f"| `{opt.name}` | {env} | {shown} | {opt.doc} |")
    return "\n".join(rows)
