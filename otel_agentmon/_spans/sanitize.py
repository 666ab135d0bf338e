"""Make any Python value safe to hand to the OTel SDK and its OTLP encoder.

The stock SDK raises on objects whose ``__str__`` raises, recurses without a depth limit on
nested or cyclic containers, and loses a whole batch when a span name holds a lone surrogate.
Everything user-supplied passes through here first. Nothing here raises.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Mapping
from typing import Final

from opentelemetry.util.types import AttributeValue

from .._core.guard import log_once

DEFAULT_MAX_LENGTH: Final = 8192
MAX_DEPTH: Final = 64  # the spec's AttributeValueDepthLimit default
MAX_NAME_LENGTH: Final = 1024
MAX_ITEMS: Final = 1000
_TRUNCATED: Final = "...[truncated]"
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UNREPRESENTABLE: Final = "<unrepresentable>"

_max_length = DEFAULT_MAX_LENGTH


def set_max_length(limit: int) -> None:
    """Set the longest string we pass on (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``)."""
    global _max_length
    _max_length = max(16, limit)


def get_max_length() -> int:
    return _max_length


def clean_str(value: str, limit: int | None = None) -> str:
    """Return ``value`` valid as UTF-8, without NUL, at most ``limit`` characters."""
    lim = _max_length if limit is None else limit
    if len(value) > lim:
        value = value[: max(0, lim - len(_TRUNCATED))] + _TRUNCATED
    if value.isascii():
        return value.replace("\x00", "") if "\x00" in value else value
    # Lone surrogates cannot be encoded as UTF-8 and poison a whole OTLP batch.
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\x00", "") if "\x00" in value else value


def clean_name(value: object) -> str:
    """A span name or attribute key: a non-empty, encodable string."""
    if type(value) is str and value and len(value) <= MAX_NAME_LENGTH and value.isascii() and "\x00" not in value:
        return value
    text = clean_str(value if isinstance(value, str) else safe_repr(value), MAX_NAME_LENGTH)
    return text or "unnamed"


def safe_repr(value: object) -> str:
    """``str(value)``, or a placeholder when its ``__str__``/``__repr__`` raises."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        try:
            return f"<{type(value).__qualname__}>"
        except Exception:  # noqa: BLE001
            return _UNREPRESENTABLE


def _jsonable(value: object, depth: int, seen: set[int]) -> object:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return clean_str(value)
    if depth >= MAX_DEPTH:
        return "<max depth>"
    ident = id(value)
    if ident in seen:
        return "<cycle>"
    if isinstance(value, Mapping):
        seen.add(ident)
        out: dict[str, object] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["..."] = "truncated"
                break
            out[clean_name(k)] = _jsonable(v, depth + 1, seen)
        seen.discard(ident)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        seen.add(ident)
        items: list[object] = []
        for i, v in enumerate(value):
            if i >= MAX_ITEMS:
                items.append("...")
                break
            items.append(_jsonable(v, depth + 1, seen))
        seen.discard(ident)
        return items
    if isinstance(value, bytes):
        return clean_str(value.decode("utf-8", "replace"))
    return clean_str(safe_repr(value))


def to_json(value: object) -> str:
    """Serialise any value to a valid JSON string (depth-, cycle- and size-limited)."""
    try:
        text = json.dumps(_jsonable(value, 0, set()), ensure_ascii=False, separators=(",", ":"))
    except Exception:  # noqa: BLE001
        return json.dumps(_UNREPRESENTABLE)
    if len(text) <= _max_length:
        return text
    # Too long: keep the result valid JSON by returning the (truncated) text as a JSON string.
    # Escaping can lengthen it, so shrink until the encoded form fits.
    keep = _max_length
    while True:
        out = json.dumps(clean_str(text, keep), ensure_ascii=False)
        if len(out) <= _max_length or keep <= len(_TRUNCATED) + 1:
            return out if len(out) <= _max_length else json.dumps(_TRUNCATED)
        keep = max(len(_TRUNCATED) + 1, keep * _max_length // len(out) - 8)


def clean_value(value: object) -> AttributeValue:
    """An attribute value the SDK and the OTLP encoder accept without raising."""
    kind = type(value)
    if kind is str:
        return clean_str(value)  # type: ignore[arg-type]  # type(value) is str, which mypy cannot follow through kind
    if kind is bool or kind is float:
        return value  # type: ignore[return-value]  # type(value) is bool or float, which mypy cannot follow through kind
    if kind is int:
        # OTLP ints are int64; the encoder silently drops anything wider.
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)  # type: ignore[operator,return-value]  # type(value) is int, which mypy cannot follow through kind
    if isinstance(value, (list, tuple)):
        return _clean_sequence(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int(value)
        return number if _INT64_MIN <= number <= _INT64_MAX else str(number)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return clean_str(str.__str__(value))
    if isinstance(value, bytes):
        return clean_str(value.decode("utf-8", "replace"))
    if value is None:
        return "None"
    if isinstance(value, (Mapping, set, frozenset)):
        return to_json(value)
    return clean_str(safe_repr(value))


def _clean_sequence(value: list[object] | tuple[object, ...]) -> AttributeValue:
    items = list(value[:MAX_ITEMS])
    if all(type(v) is str for v in items):
        return [clean_str(v) for v in items]  # type: ignore[arg-type]  # every item's type is str (all() does not narrow)
    if all(type(v) is int for v in items) and all(_INT64_MIN <= v <= _INT64_MAX for v in items):  # type: ignore[operator]  # every item's type is int (all() does not narrow)
        return items  # type: ignore[return-value]  # every item's type is int (all() does not narrow)
    for kind in (bool, float):
        if all(type(v) is kind for v in items):
            return items  # type: ignore[return-value]  # every item's type is bool or float (all() does not narrow)
    return to_json(value)


def clean_attributes(attributes: Mapping[str, object] | None) -> dict[str, AttributeValue]:
    """Clean a mapping of user attributes; never raises."""
    if not attributes:
        return {}
    out: dict[str, AttributeValue] = {}
    try:
        for i, (key, value) in enumerate(attributes.items()):
            if i >= 128:  # OTEL_ATTRIBUTE_COUNT_LIMIT default
                break
            out[clean_name(key)] = clean_value(value)
    except Exception:  # noqa: BLE001 - a hostile mapping; keep what we have
        pass
    return out


# --- arguments of the public API -----------------------------------------------------------------
# A wrong type is coerced where the meaning is clear (an id given as a number or a UUID becomes its
# string, as the conventions want) and dropped otherwise, with one rate-limited warning naming the
# argument. Nothing here raises into the caller.

_NOT_TEXT: Final = (bool, Mapping, list, tuple, set, frozenset)


def _brief(value: object) -> str:
    """A short, safe description of a bad argument (scalars shown, anything else by type)."""
    if value is None or isinstance(value, (bool, int, float)):
        return safe_repr(value) if not isinstance(value, float) else repr(float(value))
    if isinstance(value, str):
        return repr(clean_str(str.__str__(value), 40))
    return f"<{safe_repr(type(value).__qualname__)}>"


def warn_arg(call: str, arg: str, value: object, expected: str, outcome: str = "ignored") -> None:
    """One rate-limited warning about a bad argument of a public function."""
    log_once(logging.WARNING, f"arg:{call}:{arg}", "%s(%s=%s) %s: expected %s", call, arg, _brief(value),
             outcome, expected)


def _as_text(value: object) -> str | None:
    """``value`` as text when that is what it means (a string, number, UUID or other object with its
    own ``__str__``); None for containers, bools and objects that only have the default repr."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, _NOT_TEXT):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, numbers.Number) or type(value).__str__ is not object.__str__:
        try:
            return str(value)
        except Exception:  # noqa: BLE001 - a __str__ that raises: no usable text
            return None
    return None


def text_arg(value: object, call: str, arg: str) -> str | None:
    """An optional string argument (an id, a description), or None when absent or unusable."""
    if value is None:
        return None
    if type(value) is str:
        return clean_str(value)
    text = _as_text(value)
    if text is None:
        warn_arg(call, arg, value, "a string (ids may also be numbers or UUIDs)")
        return None
    return clean_str(text)


def name_arg(value: object, call: str, arg: str) -> str:
    """A required name (span names, agent and tool names): always a usable string."""
    if type(value) is str:
        return clean_name(value)
    text = _as_text(value)
    if text is None or not text:
        name = clean_name(value)
        warn_arg(call, arg, value, "a non-empty string", f"used as {name!r}")
        return name
    return clean_name(text)


def optional_name_arg(value: object, call: str, arg: str) -> str | None:
    """An optional low-cardinality name (a model, a finish reason)."""
    if value is None:
        return None
    if type(value) is str:
        return clean_name(value)
    text = _as_text(value)
    if not text:
        warn_arg(call, arg, value, "a non-empty string")
        return None
    return clean_name(text)


def count_arg(value: object, call: str, arg: str) -> int | None:
    """A non-negative integer count (token usage); integral floats are accepted, anything else
    (NaN, infinities, negative or fractional numbers, bools, strings) is dropped with a warning."""
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        real = float(value)
        if math.isfinite(real) and real.is_integer():
            number = int(real)
    if number is None or not 0 <= number <= _INT64_MAX:
        warn_arg(call, arg, value, "a non-negative integer")
        return None
    return number


def attributes_arg(value: object, call: str) -> dict[str, AttributeValue]:
    """The ``attributes`` argument: a mapping of names to values; anything else is dropped."""
    if value is None:
        return {}
    try:
        mapping = callable(getattr(value, "items", None))
    except Exception:  # noqa: BLE001 - a hostile object
        mapping = False
    if not mapping:
        warn_arg(call, "attributes", value, "a mapping of attribute names to values")
        return {}
    return clean_attributes(value)  # type: ignore[arg-type]  # checked to be a mapping just above


def seconds_arg(value: object, call: str, arg: str, default: float) -> float:
    """A duration in seconds: None means ``default``, negative means 0; NaN, infinities and
    non-numbers are replaced by ``default`` with a warning."""
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return max(0.0, float(value))
    warn_arg(call, arg, value, "a finite number of seconds", f"replaced by {default:g}")
    return default
