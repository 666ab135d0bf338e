"""How one ``configure()`` option value is read: from its environment variable (a string) or from
an argument (any Python value), and what the option accepts, for the warning when it is bad.

Every reader raises ``ValueError`` on a bad value; ``_settings.resolve`` turns that into one
warning naming the option, the value and what is accepted, and carries on without it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Final, Literal, TypeAlias, cast, get_args

from .._core.guard import log_once


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


class Choice:
    """A parser for one of a fixed set of strings (case-insensitive)."""

    def __init__(self, *choices: str, upper: bool = False) -> None:
        self.choices = choices
        self.upper = upper
        self.accepts = "one of " + ", ".join(choices)

    def __call__(self, raw: str) -> str:
        value = raw.strip().upper() if self.upper else raw.strip().lower()
        if value not in self.choices:
            raise ValueError(f"expected {self.accepts}")
        return value


def parse_positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def parse_positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def parse_port(raw: str) -> int:
    value = int(raw.strip())
    if not 0 <= value < 65536:
        raise ValueError("must be a port number (0 picks a free one)")
    return value


def parse_str(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError(raw)
    return value


def parse_endpoint(raw: str) -> str:
    from urllib.parse import urlsplit

    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an OTLP endpoint is an http:// or https:// URL with a host")
    parts.port  # noqa: B018 - raises ValueError on a malformed port
    return value


def parse_headers(raw: str) -> dict[str, str]:
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError("malformed header")  # no value in the message: headers hold secrets
        out[unquote(key.strip())] = unquote(value.strip())
    return out


#: The LLM client libraries ``configure(llm_clients=...)`` can instrument (also their extras' names).
LLMClient: TypeAlias = Literal["openai", "anthropic", "google-genai"]
LLM_CLIENT_NAMES: Final[tuple[str, ...]] = get_args(LLMClient)
#: ``llm_clients``' resolved value: every installed client, none, or the ones named.
LLMClients: TypeAlias = Literal["auto", "none"] | tuple[LLMClient, ...]


def parse_llm_clients(raw: str) -> LLMClients:
    """``auto``, ``none`` or a comma-separated list of client names (``AGENTMON_LLM_CLIENTS``)."""
    value = raw.strip().lower()
    if value in ("auto", "none"):
        return cast(LLMClients, value)
    return _llm_client_names(value.split(","))


def _llm_client_names(names: object) -> tuple[LLMClient, ...]:
    out: list[LLMClient] = []
    for name in cast("list[object]", names):
        if not isinstance(name, str) or name.strip().lower() not in LLM_CLIENT_NAMES:
            raise ValueError("expected auto, none or names of " + ", ".join(LLM_CLIENT_NAMES))
        clean = cast(LLMClient, name.strip().lower())
        if clean not in out:
            out.append(clean)
    return tuple(out)


_ACCEPTS: Final[dict[Callable[[str], object], str]] = {
    parse_bool: "True or False",
    parse_positive_int: "a positive integer",
    parse_positive_float: "a positive, finite number",
    parse_port: "a port number from 0 to 65535 (0 picks a free one)",
    parse_str: "a non-empty string",
    parse_endpoint: "an http:// or https:// URL with a host",
    parse_headers: "a mapping of header names to values, or a string 'k=v,k2=v2'",
}

#: What the options that take Python objects accept (they have no parser of their own).
OBJECT_ACCEPTS: Final = {
    "health_policy": "an otel_agentmon.HealthPolicy",
    "alert_rules": "a rule file's path, or a list of otel_agentmon.AlertRule",
    "notifiers": "a list of notifiers (objects with a notify(event) method)",
    "resource_attributes": "a mapping of attribute names to values",
    "spool_dir": "a directory path (str or os.PathLike)",
    "llm_clients": "'auto', 'none', or a list of " + ", ".join(LLM_CLIENT_NAMES),
}


def accepts(name: str, parse: Callable[[str], object]) -> str:
    """What option ``name`` accepts, in words."""
    if name in OBJECT_ACCEPTS:
        return OBJECT_ACCEPTS[name]
    if isinstance(parse, Choice):
        return parse.accepts
    return _ACCEPTS.get(parse, "a valid value")


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def from_argument(name: str, parse: Callable[[str], object], value: object) -> object:
    """The value of option ``name`` given as an argument; raises ``ValueError`` when it is invalid."""
    if name in OBJECT_ACCEPTS:
        return _OBJECT_READERS[name](value)
    if isinstance(value, str):
        return parse(value)
    number = _number(value)
    if parse is parse_bool:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
    elif number is not None and math.isfinite(number):
        if parse is parse_str:
            return str(value)  # service_version=1.2
        if parse in (parse_positive_int, parse_port) and number.is_integer():
            return parse(str(int(number)))
        if parse is parse_positive_float:
            return parse(repr(number))
    elif parse is parse_headers and isinstance(value, Mapping):
        items = cast(Mapping[object, object], value).items()
        if all(isinstance(k, str) and k for k, _ in items):
            return {str(k): str(v) for k, v in items}
    raise ValueError("wrong type")


def _health_policy(value: object) -> object:
    from .._health.loop import HealthPolicy

    if not isinstance(value, HealthPolicy):
        raise ValueError("wrong type")
    return value


def _alert_rules(value: object) -> object:
    if isinstance(value, str):
        return parse_str(value)
    if isinstance(value, os.PathLike):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(cast(list[object], value))  # entries are checked where the rules are loaded
    raise ValueError("wrong type")


def _notifiers(value: object) -> object:
    if not isinstance(value, (list, tuple, set, frozenset)):
        value = [value]  # one notifier passed on its own
    good: list[object] = []
    for n in cast(list[object], value):
        if callable(getattr(n, "notify", None)):
            good.append(n)
        else:
            log_once(logging.WARNING, "arg:notifiers:entry",
                     "configure(notifiers=...): skipping %s, it has no notify(event) method",
                     type(n).__qualname__)
    return good


def _resource_attributes(value: object) -> object:
    if not isinstance(value, Mapping):
        raise ValueError("wrong type")
    return {str(k): v for k, v in cast(Mapping[object, object], value).items()}


def _spool_dir(value: object) -> object:
    if isinstance(value, (str, os.PathLike)):
        return parse_str(os.fspath(cast(str, value)))
    raise ValueError("wrong type")


def _llm_clients(value: object) -> object:
    if isinstance(value, str):
        return parse_llm_clients(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return _llm_client_names(sorted(cast("set[str]", value)) if isinstance(value, (set, frozenset)) else value)
    raise ValueError("wrong type")


_OBJECT_READERS: Final[dict[str, Callable[[object], object]]] = {
    "spool_dir": _spool_dir,
    "health_policy": _health_policy,
    "alert_rules": _alert_rules,
    "notifiers": _notifiers,
    "resource_attributes": _resource_attributes,
    "llm_clients": _llm_clients,
}
