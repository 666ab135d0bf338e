"""Make any Python value safe to hand to the OTel SDK and its OTLP encoder.

The stock SDK raises on objects whose ``__str__`` raises, recurses without a depth limit on
nested or cyclic containers, and loses a whole batch when a span name holds a lone surrogate.
Everything user-supplied passes through here first. Nothing here raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Final

from opentelemetry.util.types import AttributeValue

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
        for i, (k, v) in enumerate(value.items()):  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
            if i >= MAX_ITEMS:
                out["..."] = "truncated"
                break
            out[clean_name(k)] = _jsonable(v, depth + 1, seen)
        seen.discard(ident)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        seen.add(ident)
        items: list[object] = []
        for i, v in enumerate(value):  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
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
        return clean_str(value)  # type: ignore[arg-type]
    if kind is bool or kind is float:
        return value  # type: ignore[return-value]
    if kind is int:
        # OTLP ints are int64; the encoder silently drops anything wider.
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)  # type: ignore[operator,return-value]
    if isinstance(value, (list, tuple)):
        return _clean_sequence(value)  # pyright: ignore[reportUnknownArgumentType]
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
        return [clean_str(v) for v in items]  # type: ignore[arg-type]
    if all(type(v) is int for v in items) and all(_INT64_MIN <= v <= _INT64_MAX for v in items):  # type: ignore[operator]
        return items  # type: ignore[return-value]
    for kind in (bool, float):
        if all(type(v) is kind for v in items):
            return items  # type: ignore[return-value]
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
