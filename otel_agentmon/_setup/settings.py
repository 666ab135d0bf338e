"""Every option of ``configure()`` as data: name, environment variable, type, default, doc.

Precedence is argument > environment variable > default. Reading them never raises: a bad
argument, a bad environment value or an unknown option name logs one warning (naming the option,
the value and what is accepted) and that option falls back to the next source. The README's
configuration table is checked against ``OPTIONS`` by a test.

``Settings`` is the one list of options: each field's type is the option's resolved type and its
metadata the rest of the row; ``OPTIONS`` is read from the fields. ``configure()``'s typed signature
(``_configure.py``) is kept in step with it by ``tests/typing/test_configure_types.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import reprlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from .._core.guard import log_once
from .._names.semconv import ENV_CAPTURE_CONTENT, ContentMode
from .._spans.sanitize import clean_str, safe_repr
from .option_values import (
    LLM_CLIENT_NAMES,
    Choice,
    LLMClients,
    accepts,
    from_argument,
    parse_bool,
    parse_endpoint,
    parse_headers,
    parse_llm_clients,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_str,
)

Protocol: TypeAlias = Literal["http/protobuf", "grpc"]
ExporterName: TypeAlias = Literal["otlp", "console", "none"]
SystemMetricsSet: TypeAlias = Literal["default", "all", "off"]

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


_ROW: Final = "otel_agentmon.option"


def _option(env: str | None, parse: Callable[[str], object], default: object, doc: str, *,
            secret: bool = False) -> dict[str, Option]:
    """An option's row of the table, kept as its ``Settings`` field's metadata (the field names it)."""
    return {_ROW: Option("", env, parse, default, doc, secret)}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved options: one field per option, in the README's order; each field's metadata is
    the option's environment variable, parser, default and doc (``OPTIONS`` is read from here)."""

    service_name: str = dataclasses.field(metadata=_option(
        "OTEL_SERVICE_NAME", _parse_str, None,
        "`service.name`; default: the script's file name"))
    service_namespace: str | None = dataclasses.field(metadata=_option(
        "AGENTMON_SERVICE_NAMESPACE", _parse_str, None, "`service.namespace`"))
    service_version: str | None = dataclasses.field(metadata=_option(
        "AGENTMON_SERVICE_VERSION", _parse_str, None, "`service.version`"))
    swarm: str | None = dataclasses.field(metadata=_option(
        "AGENTMON_SWARM", _parse_str, None, "swarm name, resource `agentmon.swarm.name`"))
    agent_role: str | None = dataclasses.field(metadata=_option(
        "AGENTMON_AGENT_ROLE", _parse_str, None,
        "this process's role in the swarm, resource `agentmon.agent.role`"))
    endpoint: str | None = dataclasses.field(metadata=_option(
        "OTEL_EXPORTER_OTLP_ENDPOINT", _parse_endpoint, None,
        "OTLP base URL; default `http://localhost:4318` (HTTP) or `http://localhost:4317` (gRPC)"))
    protocol: Protocol = dataclasses.field(metadata=_option(
        "OTEL_EXPORTER_OTLP_PROTOCOL", _parse_choice("http/protobuf", "grpc"), "http/protobuf",
        "`http/protobuf` or `grpc`"))
    headers: Mapping[str, str] | None = dataclasses.field(metadata=_option(
        "OTEL_EXPORTER_OTLP_HEADERS", _parse_headers, None,
        "export headers `k=v,k2=v2` (never logged)", secret=True))
    export_timeout: float = dataclasses.field(metadata=_option(
        "OTEL_EXPORTER_OTLP_TIMEOUT", _parse_positive_float, 10.0,
        "deadline of one export including retries, in **seconds** (as the Python SDK reads it)"))
    traces_exporter: ExporterName = dataclasses.field(metadata=_option(
        "OTEL_TRACES_EXPORTER", _parse_choice("otlp", "console", "none"), "otlp",
        "`otlp`, `console` or `none`"))
    metrics_exporter: ExporterName = dataclasses.field(metadata=_option(
        "OTEL_METRICS_EXPORTER", _parse_choice("otlp", "console", "none"), "otlp",
        "`otlp`, `console` or `none`"))
    logs_exporter: ExporterName = dataclasses.field(metadata=_option(
        "OTEL_LOGS_EXPORTER", _parse_choice("otlp", "console", "none"), "otlp",
        "`otlp`, `console` or `none`"))
    realtime: bool = dataclasses.field(metadata=_option(
        "AGENTMON_REALTIME", _parse_bool, True,
        "realtime profile: 200 ms span batches, 500 ms metric interval; `false` for production defaults"))
    span_schedule_delay_ms: int = dataclasses.field(metadata=_option(
        "OTEL_BSP_SCHEDULE_DELAY", _parse_positive_int, None,
        "span batch delay in ms; default from the profile (200 / 5000)"))
    span_max_queue_size: int = dataclasses.field(metadata=_option(
        "OTEL_BSP_MAX_QUEUE_SIZE", _parse_positive_int, 2048,
        "spans held for export before new ones are dropped (and counted)"))
    span_max_export_batch_size: int = dataclasses.field(metadata=_option(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", _parse_positive_int, 512,
        "spans per export request"))
    metric_export_interval_ms: int = dataclasses.field(metadata=_option(
        "OTEL_METRIC_EXPORT_INTERVAL", _parse_positive_int, None,
        "metric export interval in ms; default from the profile (500 / 60000)"))
    metric_export_timeout_ms: int = dataclasses.field(metadata=_option(
        "OTEL_METRIC_EXPORT_TIMEOUT", _parse_positive_int, 10000,
        "deadline of one metric export in ms"))
    shutdown_timeout: float = dataclasses.field(metadata=_option(
        "AGENTMON_SHUTDOWN_TIMEOUT", _parse_positive_float, 3.0,
        "seconds `shutdown()` and interpreter exit may take at most, all signals together"))
    system_metrics: SystemMetricsSet = dataclasses.field(metadata=_option(
        "AGENTMON_SYSTEM_METRICS", _parse_choice("default", "all", "off"), "default",
        "`default` (curated CPU, memory, network, threads, fds), `all`, or `off`"))
    capture_content: ContentMode = dataclasses.field(metadata=_option(
        ENV_CAPTURE_CONTENT,
        _parse_choice("NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT", upper=True), "NO_CONTENT",
        "message content capture; off by default"))
    llm_clients: LLMClients = dataclasses.field(metadata=_option(
        "AGENTMON_LLM_CLIENTS", parse_llm_clients, "auto",
        "LLM client libraries to instrument when the application imports them: `auto` (every supported one: "
        + ", ".join(LLM_CLIENT_NAMES) + "), `none`, or a comma-separated list"))
    attribute_value_length_limit: int = dataclasses.field(metadata=_option(
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", _parse_positive_int, 8192,
        "longest attribute string kept (longer ones are truncated)"))
    metric_cardinality_limit: int = dataclasses.field(metadata=_option(
        "AGENTMON_METRIC_CARDINALITY_LIMIT", _parse_positive_int, 2000,
        "series per metric before the SDK folds the rest into `otel.metric.overflow=true`"))
    health: bool = dataclasses.field(metadata=_option(
        "AGENTMON_HEALTH", _parse_bool, True,
        "run the health and alert loop (heartbeats, stuck tasks, error rate, alerts)"))
    health_interval: float = dataclasses.field(metadata=_option(
        "AGENTMON_HEALTH_INTERVAL", _parse_positive_float, None,
        "seconds between health/alert evaluations; default from the profile (0.1 / 1.0)"))
    heartbeat_timeout: float = dataclasses.field(metadata=_option(
        "AGENTMON_HEARTBEAT_TIMEOUT", _parse_positive_float, 10.0,
        "an agent that promised heartbeats (called `heartbeat()`) is down after this many seconds "
        "without one, a span or a running task"))
    stuck_after: float = dataclasses.field(metadata=_option(
        "AGENTMON_STUCK_AFTER", _parse_positive_float, 60.0,
        "a task running longer than this many seconds is stuck"))
    health_policy: object = dataclasses.field(metadata=_option(
        None, _parse_str, None,
        "a `HealthPolicy` with every health threshold (overrides the two options above)"))
    alert_rules: object = dataclasses.field(metadata=_option(
        "AGENTMON_ALERT_RULES", _parse_str, None,
        "alert rules: a YAML rule file's path, or a list of `AlertRule`"))
    alert_webhook: str | None = dataclasses.field(metadata=_option(
        "AGENTMON_ALERT_WEBHOOK", _parse_endpoint, None,
        "URL that receives alerts as Alertmanager webhook JSON"))
    notifiers: object = dataclasses.field(metadata=_option(
        None, _parse_str, None, "extra alert notifiers (`CallbackNotifier(fn)`, ...)"))
    health_port: int | None = dataclasses.field(metadata=_option(
        "AGENTMON_HEALTH_PORT", _parse_port, None,
        "serve `/healthz` and `/readyz` on this port (0: any free port); off by default"))
    health_host: str = dataclasses.field(metadata=_option(
        "AGENTMON_HEALTH_HOST", _parse_str, "127.0.0.1", "address the health endpoint binds"))
    dashboard: bool = dataclasses.field(metadata=_option(
        "AGENTMON_DASHBOARD", _parse_bool, False,
        "serve the live dashboard (an in-process `agentmon serve`) on 127.0.0.1:4318, or any free port "
        "when that is taken, and export to it unless `endpoint` is set; `Monitor.dashboard_url`"))
    disabled: bool = dataclasses.field(metadata=_option(
        "OTEL_SDK_DISABLED", _parse_bool, False, "`true` turns everything into no-ops"))
    set_global: bool = dataclasses.field(metadata=_option(
        None, _parse_bool, True,
        "install our providers as the global ones when the application has none; `False` builds "
        "private providers and touches no global state"))
    resource_attributes: Mapping[str, object] | None = dataclasses.field(metadata=_option(
        None, _parse_str, None,
        "extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES` is also honoured)"))
    spool: bool = dataclasses.field(metadata=_option(
        "AGENTMON_SPOOL", _parse_bool, True,
        "keep OTLP/HTTP export requests that cannot be delivered (Collector down, 429/502/503/504, "
        "timeouts) in a disk spool and re-send them, from this process or the next one of the service"))
    spool_dir: str | None = dataclasses.field(metadata=_option(
        "AGENTMON_SPOOL_DIR", _parse_str, None,
        "spool root (one subdirectory per service, 0700); default `$XDG_STATE_HOME/otel_agentmon/spool`, "
        "else `~/.local/state/otel_agentmon/spool`"))
    spool_max_mb: int = dataclasses.field(metadata=_option(
        "AGENTMON_SPOOL_MAX_MB", _parse_positive_int, 256,
        "size bound of a service's spool in MiB; above it the oldest requests are removed (counted as expired)"))
    spool_max_age: float = dataclasses.field(metadata=_option(
        "AGENTMON_SPOOL_MAX_AGE", _parse_positive_float, 86400.0,
        "seconds a spooled request is kept before it is removed undelivered (counted as expired)"))
    spool_any_endpoint: bool = dataclasses.field(metadata=_option(
        "AGENTMON_SPOOL_ANY_ENDPOINT", _parse_bool, False,
        "re-send spooled requests to the endpoint configured now even when they were written for another"))
    #: options the caller passed as arguments (the exporters read their own env vars otherwise,
    #: which keeps per-signal variables such as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT working).
    explicit: frozenset[str] = frozenset()


OPTIONS: Final[tuple[Option, ...]] = tuple(
    dataclasses.replace(f.metadata[_ROW], name=f.name) for f in dataclasses.fields(Settings) if _ROW in f.metadata
)

OPTION_NAMES: Final = frozenset(o.name for o in OPTIONS)


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
    values: dict[str, Any] = {}  # each checked by its option's parser
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
    return Settings(**values, explicit=frozenset(explicit))


def options_markdown() -> str:
    """The README's configuration table, generated from ``OPTIONS`` (a test keeps them equal)."""
    rows = ["| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for opt in OPTIONS:
        env = f"`{opt.env}`" if opt.env else "—"
        default = "profile" if opt.default is None and opt.name.endswith("_ms") else opt.default
        shown = "—" if default is None else f"`{default}`"
        rows.append(f"| `{opt.name}` | {env} | {shown} | {opt.doc} |")
    return "\n".join(rows)
