"""What serve keeps of a span beyond its ``SpanRecord``, for the trace explorer's detail pane.

The record keeps the standard fields and the first 32 scalar attributes (strings cut at 256
characters). A ``SpanDetail`` keeps the rest a user opens a span for, within fixed bounds:

- attributes the record does not hold, and the full text of those it cut: at most
  ``MAX_ATTRS`` in all, strings up to ``MAX_TEXT`` characters (``MAX_STACK`` for
  ``exception.stacktrace``); arrays and maps as compact JSON text under the same cut;
- the span kind, status code and message, instrumentation scope;
- at most ``MAX_EVENTS`` events (exception events first), each with at most
  ``MAX_EVENT_ATTRS`` attributes; at most ``MAX_LINKS`` links;
- the resource: a reference to its process's attributes, shared by all its spans.

Its estimated size is charged to the store's byte budget with the span's, and it is evicted with
the span (by age or size, oldest first): nothing here outlives its span.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from .._names import semconv as sc
from .._records.records import SpanRecord

MAX_ATTRS: Final = 128
MAX_TEXT: Final = 4096
MAX_STACK: Final = 16384
MAX_EVENTS: Final = 32
MAX_EVENT_ATTRS: Final = 32
MAX_LINKS: Final = 16
_STACK_KEY: Final = "exception.stacktrace"
_KINDS: Final = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS: Final = ("UNSET", "OK", "ERROR")
_ENTRY: Final = 120  # bytes per kept key/value pair beyond their text (dict slot, objects)
_EMPTY: Final[Mapping[str, Any]] = {}

Value = str | int | float | bool


class SpanDetail:
    __slots__ = ("attrs", "dropped", "events", "kind", "links", "resource", "scope", "size", "status",
                 "status_message")

    def __init__(self, kind: int, status: int, status_message: str, scope: str, attrs: dict[str, Value],
                 events: tuple[tuple[str, int, dict[str, Value]], ...],
                 links: tuple[tuple[str, str, dict[str, Value]], ...], dropped: int) -> None:
        self.kind, self.status, self.status_message, self.scope = kind, status, status_message, scope
        self.attrs, self.events, self.links, self.dropped = attrs, events, links, dropped
        self.resource: Mapping[str, Any] = _EMPTY  # set by the store: its process's (shared) attributes
        self.size = 160 + len(status_message) + _pairs_size(attrs) + sum(
            96 + len(name) + _pairs_size(a) for name, _, a in events) + sum(160 + _pairs_size(a) for *_, a in links)


def _pairs_size(attrs: Mapping[str, Value]) -> int:
    return sum(_ENTRY + len(k) + (len(v) if isinstance(v, str) else 0) for k, v in attrs.items())


def _text(value: Any, limit: int) -> Value | None:
    """A value as kept: scalars as they are (strings cut), anything else as compact JSON text."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:limit]
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), default=str)[:limit]
    except (TypeError, ValueError):
        return str(value)[:limit]


def _kept(attrs: Mapping[str, Any], limit: int) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for key, value in itertools.islice(attrs.items(), limit):
        kept = _text(value, MAX_STACK if key == _STACK_KEY else MAX_TEXT)
        if kept is not None:
            out[key] = kept
    return out


def detail_of(span: Any, attrs: Mapping[str, Any], record: SpanRecord, scope: str,
              decode: Callable[[Any], dict[str, Any]]) -> SpanDetail:
    """The detail of an OTLP ``Span`` message whose decoded attributes are ``attrs`` (``decode``:
    how OTLP key-values decode)."""
    extra: dict[str, Value] = {}
    shown = record.attributes
    for key, value in attrs.items():
        if len(extra) + len(shown) >= MAX_ATTRS:
            break
        if key in shown and not (isinstance(value, str) and len(value) > len(str(shown[key]))):
            continue  # the record holds it whole
        kept = _text(value, MAX_STACK if key == _STACK_KEY else MAX_TEXT)
        if kept is not None:
            extra[key] = kept
    raw_events = list(span.events)
    if len(raw_events) > MAX_EVENTS:  # exception events first: they say why a span failed
        raw_events.sort(key=lambda e: e.name != sc.EXCEPTION_EVENT)
        raw_events = sorted(raw_events[:MAX_EVENTS], key=lambda e: e.time_unix_nano)
    events = tuple((e.name[:MAX_TEXT], int(e.time_unix_nano), _kept(decode(e.attributes), MAX_EVENT_ATTRS))
                   for e in raw_events)
    links = tuple((bytes(link.trace_id).hex(), bytes(link.span_id).hex(),
                   _kept(decode(link.attributes), MAX_EVENT_ATTRS))
                  for link in itertools.islice(span.links, MAX_LINKS))
    dropped = (max(0, len(attrs) - len(shown) - len(extra)) + max(0, len(span.events) - len(events))
               + max(0, len(span.links) - len(links)) + span.dropped_attributes_count
               + span.dropped_events_count + span.dropped_links_count)
    return SpanDetail(int(span.kind), int(span.status.code), span.status.message[:MAX_TEXT], scope, extra,
                      events, links, dropped)


def exception_of(events: tuple[tuple[str, int, dict[str, Value]], ...]) -> dict[str, Any] | None:
    """The first exception event's type, message and stack trace."""
    for name, t, attrs in events:
        if name == sc.EXCEPTION_EVENT:
            return {"type": attrs.get(sc.EXCEPTION_TYPE), "message": attrs.get("exception.message"),
                    "stacktrace": attrs.get(_STACK_KEY), "t": t / 1e9}
    return None


def detail_json(record: SpanRecord, detail: SpanDetail | None) -> dict[str, Any]:
    """The detail fields of one span in ``/api/trace``."""
    if detail is None:
        return {"attributes": dict(record.attributes), "events": [], "links": [], "span_kind": None,
                "status": {"code": "ERROR" if record.error else "UNSET", "message": ""}, "scope": None,
                "exception": None, "dropped": 0}
    return {
        "attributes": {**record.attributes, **detail.attrs},
        "events": [{"name": n, "t": t / 1e9, "attributes": a} for n, t, a in detail.events],
        "links": [{"trace_id": tid, "span_id": sid, "attributes": a} for tid, sid, a in detail.links],
        "span_kind": _KINDS[detail.kind] if 0 <= detail.kind < len(_KINDS) else str(detail.kind),
        "status": {"code": _STATUS[detail.status] if 0 <= detail.status < 3 else str(detail.status),
                   "message": detail.status_message},
        "scope": detail.scope or None, "exception": exception_of(detail.events), "dropped": detail.dropped,
    }
