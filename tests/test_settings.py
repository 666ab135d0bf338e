"""configure() options: argument > environment > default, bad env values, profiles, README table."""

from __future__ import annotations

import dataclasses
import logging
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_agentmon._setup import settings as _settings
from otel_agentmon._setup.settings import OPTIONS, Settings, resolve

README = Path(__file__).resolve().parent.parent / "README.md"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "otel_agentmon" and r.levelno == logging.WARNING]


# (option, env var, env value, value parsed from env, argument value, default)
PRECEDENCE: list[tuple[str, str, str, Any, Any, Any]] = [
    ("span_max_queue_size", "OTEL_BSP_MAX_QUEUE_SIZE", "4096", 4096, 100, 2048),
    ("span_max_export_batch_size", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64", 64, 32, 512),
    ("export_timeout", "OTEL_EXPORTER_OTLP_TIMEOUT", "2.5", 2.5, 7.0, 10.0),
    ("protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", " GRPC ", "grpc", "http/protobuf", "http/protobuf"),
    ("traces_exporter", "OTEL_TRACES_EXPORTER", "console", "console", "none", "otlp"),
    ("realtime", "AGENTMON_REALTIME", "false", False, True, True),
    ("capture_content", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only", "SPAN_ONLY",
     "EVENT_ONLY", "NO_CONTENT"),
    ("metric_cardinality_limit", "AGENTMON_METRIC_CARDINALITY_LIMIT", "50", 50, 10, 2000),
    ("attribute_value_length_limit", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1024", 1024, 256, 8192),
    ("shutdown_timeout", "AGENTMON_SHUTDOWN_TIMEOUT", "1.5", 1.5, 0.5, 3.0),
    ("disabled", "OTEL_SDK_DISABLED", "true", True, False, False),
    ("headers", "OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc,x-team=a%20b", {"api-key": "abc", "x-team": "a b"},
     {"k": "v"}, None),
    ("service_name", "OTEL_SERVICE_NAME", "from-env", "from-env", "from-arg", None),
]


@pytest.mark.parametrize("case", PRECEDENCE, ids=[p[0] for p in PRECEDENCE])
def test_argument_beats_environment_beats_default(case: tuple[str, str, str, Any, Any, Any]) -> None:
    option, env, raw, parsed, arg, default = case
    assert getattr(resolve({option: arg}, {env: raw}), option) == arg
    assert getattr(resolve({}, {env: raw}), option) == parsed
    if default is not None:
        assert getattr(resolve({}, {}), option) == default


def test_defaults() -> None:
    s = resolve({}, {})
    assert (s.protocol, s.traces_exporter, s.metrics_exporter, s.logs_exporter) == ("http/protobuf", "otlp", "otlp",
                                                                                    "otlp")
    assert (s.capture_content, s.system_metrics, s.disabled, s.set_global) == ("NO_CONTENT", "default", False, True)
    assert s.endpoint is None and s.headers is None
    assert s.service_name  # the script's name, or unknown_service:python
    assert s.explicit == frozenset()


def test_explicit_records_only_given_arguments() -> None:
    assert resolve({"endpoint": "http://collector:4318", "swarm": None}, {}).explicit == {"endpoint"}


@pytest.mark.parametrize(("env", "raw", "option", "default"), [
    ("OTEL_BSP_MAX_QUEUE_SIZE", "abc", "span_max_queue_size", 2048),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "-5", "span_max_queue_size", 2048),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "span_max_queue_size", 2048),
    ("OTEL_BSP_SCHEDULE_DELAY", "1.5", "span_schedule_delay_ms", 200),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1", "export_timeout", 10.0),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "nan", "export_timeout", 10.0),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "inf", "export_timeout", 10.0),
    ("AGENTMON_REALTIME", "maybe", "realtime", True),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "protocol", "http/protobuf"),
    ("OTEL_TRACES_EXPORTER", "zipkin", "traces_exporter", "otlp"),
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "everything", "capture_content", "NO_CONTENT"),
    ("AGENTMON_SYSTEM_METRICS", "some", "system_metrics", "default"),
    ("OTEL_SDK_DISABLED", "yes please", "disabled", False),
])
@pytest.mark.usefixtures("fresh_log_limiter")
def test_bad_env_value_falls_back_with_one_warning(caplog: pytest.LogCaptureFixture, env: str, raw: str,
                                                   option: str, default: Any) -> None:
    caplog.set_level(logging.DEBUG)
    settings = resolve({}, {env: raw})
    assert getattr(settings, option) == default
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert env in warnings[0].getMessage()


@pytest.mark.usefixtures("fresh_log_limiter")
def test_bad_env_value_warns_once_across_repeated_resolves(caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(5):
        assert resolve({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "abc"}).span_max_queue_size == 2048
    assert len(_warnings(caplog)) == 1


@pytest.mark.usefixtures("fresh_log_limiter")
def test_blank_env_value_is_unset_not_invalid(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "   "}).span_max_queue_size == 2048
    assert _warnings(caplog) == []


@pytest.mark.usefixtures("fresh_log_limiter")
def test_argument_wins_over_a_bad_env_value_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve({"span_max_queue_size": 10}, {"OTEL_BSP_MAX_QUEUE_SIZE": "abc"}).span_max_queue_size == 10
    assert _warnings(caplog) == []


@pytest.mark.parametrize(("raw", "parsed"), [
    ("authorization=Bearer s3cr3t-t0ken", {"authorization": "Bearer s3cr3t-t0ken"}),  # valid: never logged
    ("authorization Bearer s3cr3t-t0ken", None),    # malformed: warned about, value redacted
    ("api-key=s3cr3t-t0ken,=s3cr3t-t0ken", None),   # malformed (empty key)
])
@pytest.mark.usefixtures("fresh_log_limiter")
def test_header_values_never_reach_the_logs(caplog: pytest.LogCaptureFixture, raw: str,
                                            parsed: dict[str, str] | None) -> None:
    caplog.set_level(logging.DEBUG)
    settings = resolve({}, {"OTEL_EXPORTER_OTLP_HEADERS": raw})
    assert "s3cr3t" not in caplog.text
    for record in caplog.records:
        assert "s3cr3t" not in record.getMessage()
        assert "s3cr3t" not in repr(record.args)
    assert settings.headers == parsed
    assert len(_warnings(caplog)) == (0 if parsed else 1)


def test_realtime_profile_delays() -> None:
    realtime = resolve({}, {})
    assert (realtime.realtime, realtime.span_schedule_delay_ms, realtime.metric_export_interval_ms) == (True, 200, 500)
    production = resolve({"realtime": False}, {})
    assert (production.span_schedule_delay_ms, production.metric_export_interval_ms) == (5000, 60000)
    from_env = resolve({}, {"AGENTMON_REALTIME": "0"})
    assert (from_env.span_schedule_delay_ms, from_env.metric_export_interval_ms) == (5000, 60000)


def test_explicit_delays_win_over_the_profile() -> None:
    env = resolve({}, {"OTEL_BSP_SCHEDULE_DELAY": "1000"})
    assert (env.span_schedule_delay_ms, env.metric_export_interval_ms) == (1000, 500)
    env = resolve({"realtime": False}, {"OTEL_METRIC_EXPORT_INTERVAL": "2000"})
    assert (env.span_schedule_delay_ms, env.metric_export_interval_ms) == (5000, 2000)
    arg = resolve({"span_schedule_delay_ms": 50, "metric_export_interval_ms": 100}, {"OTEL_BSP_SCHEDULE_DELAY": "9"})
    assert (arg.span_schedule_delay_ms, arg.metric_export_interval_ms) == (50, 100)


@pytest.mark.usefixtures("fresh_log_limiter")
def test_unknown_argument_is_one_warning_with_the_closest_option(caplog: pytest.LogCaptureFixture) -> None:
    settings = resolve({"sevice_name": "x", "service_name": "svc"}, {})
    assert settings.service_name == "svc" and "sevice_name" not in settings.explicit
    assert [r.getMessage() for r in _warnings(caplog)] == [
        "configure(): unknown option 'sevice_name' ignored; did you mean 'service_name'?"]


@pytest.mark.parametrize(("option", "value", "accepted"), [
    ("endpoint", 123, "an http:// or https:// URL with a host"),
    ("protocol", 5, "one of http/protobuf, grpc"),
    ("resource_attributes", [1], "a mapping of attribute names to values"),
    ("span_max_queue_size", 2.5, "a positive integer"),
    ("export_timeout", float("nan"), "a positive, finite number"),
    ("realtime", "maybe", "True or False"),
    ("health_port", 70000, "a port number from 0 to 65535"),
    ("health_policy", {"stuck_after": 1}, "an otel_agentmon.HealthPolicy"),
    ("alert_rules", 42, "a rule file's path, or a list of otel_agentmon.AlertRule"),
    ("service_name", ["svc"], "a non-empty string"),
    ("capture_content", True, "one of NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT"),
])
@pytest.mark.usefixtures("fresh_log_limiter")
def test_a_bad_argument_is_one_warning_naming_option_value_and_what_is_accepted(
        caplog: pytest.LogCaptureFixture, option: str, value: Any, accepted: str) -> None:
    settings = resolve({option: value, "swarm": "kept"}, {})
    default = resolve({}, {})
    assert getattr(settings, option) == getattr(default, option) and settings.swarm == "kept"
    assert option not in settings.explicit
    [warning] = [r.getMessage() for r in _warnings(caplog)]
    assert warning.startswith(f"configure({option}=") and f"expected {accepted}" in warning
    assert repr(value)[:20] in warning


@pytest.mark.parametrize(("option", "value", "parsed"), [
    ("span_max_queue_size", 4096.0, 4096), ("export_timeout", 2, 2.0), ("realtime", 0, False),
    ("service_version", 1.2, "1.2"), ("headers", {"k": 1}, {"k": "1"}), ("alert_rules", Path("r.yaml"), Path("r.yaml")),
])
def test_arguments_of_a_neighbouring_type_are_coerced(option: str, value: Any, parsed: Any) -> None:
    assert getattr(resolve({option: value}, {}), option) == parsed


OPTION_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                          st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers()),
                          st.builds(object))


@settings(max_examples=80, deadline=None, database=None)
@given(args=st.dictionaries(st.sampled_from([o.name for o in OPTIONS] + ["bogus"]), OPTION_VALUES),
       env=st.dictionaries(st.sampled_from([o.env for o in OPTIONS if o.env]), st.text(max_size=20)))
def test_resolve_never_raises_whatever_it_is_given(args: dict[str, Any], env: dict[str, str]) -> None:
    assert isinstance(resolve(args, env), Settings)


def _conforms(value: object, hint: object) -> bool:
    """Whether ``value`` is of the type ``hint`` (the kinds ``Settings`` uses)."""
    origin = typing.get_origin(hint)
    if hint is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is not None:  # Mapping[str, str], frozenset[str]
        return isinstance(value, origin)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typing.cast(type, hint))


@settings(max_examples=80, deadline=None, database=None)
@given(args=st.dictionaries(st.sampled_from([o.name for o in OPTIONS]), OPTION_VALUES),
       env=st.dictionaries(st.sampled_from([o.env for o in OPTIONS if o.env]), st.text(max_size=20)))
def test_every_resolved_value_has_its_settings_field_type(args: dict[str, Any], env: dict[str, str]) -> None:
    """The parsers, not the type checker, guarantee each value's type (resolve() builds ``Settings``
    from a dict): whatever it is given, every field holds what its annotation says."""
    resolved = resolve(args, env)
    for name, hint in typing.get_type_hints(Settings).items():
        assert _conforms(getattr(resolved, name), hint), (name, getattr(resolved, name), hint)


def test_every_settings_field_is_an_option() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - {"explicit"}
    assert fields == {o.name for o in OPTIONS}
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)
    envs = [o.env for o in OPTIONS if o.env is not None]
    assert len(set(envs)) == len(envs)
    assert all(o.doc for o in OPTIONS)


def test_readme_configuration_table_lists_every_option() -> None:
    """The README's configuration table must name every option and its environment variable."""
    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if line.lstrip().startswith("|")]
    missing = []
    for opt in OPTIONS:
        name = re.compile(rf"`{re.escape(opt.name)}`|\b{re.escape(opt.name)}\b")
        if not any(name.search(row) and (opt.env is None or opt.env in row) for row in rows):
            missing.append(opt.name if opt.env is None else f"{opt.name} ({opt.env})")
    assert missing == [], f"README.md configuration table lacks: {missing}"


def test_settings_module_constants_match_profile_docs() -> None:
    assert (_settings.REALTIME_SPAN_DELAY_MS, _settings.REALTIME_METRIC_INTERVAL_MS) == (200, 500)
    assert (_settings.PRODUCTION_SPAN_DELAY_MS, _settings.PRODUCTION_METRIC_INTERVAL_MS) == (5000, 60000)
