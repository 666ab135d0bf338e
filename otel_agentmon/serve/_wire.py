"""Walk an OTLP protobuf export request on the wire, so it is parsed a small piece at a time.

Parsing a whole request at once costs far more than its size: the parse tree alone can be 30
times the body (a field of two bytes on the wire is an object of about 60), and the decoded
Python objects as much again. So serve parses a request in *runs*: byte ranges of consecutive
items (spans, log records or metric data points) of one container, each at most ``RUN_WIRE``
bytes or a single item, together with that container's own fields (its resource, its scope).
The tags and lengths needed to find those ranges are read here, without parsing the items.

Before anything is ingested, ``measure`` walks the whole request once: malformed framing (a
length past the end, a truncated body) is refused before any item is kept, and the cost of the
largest single piece (``piece_cost``) is known, so the request can be charged what decoding it
can take. Only OTLP's own message layout is known here (field numbers from the OTLP protos).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview
#: a run of items is parsed and decoded at once: at most this many bytes on the wire (or one item)
RUN_WIRE: Final = 16 * 1024
#: what decoding a run of at most ``RUN_WIRE`` bytes can take, parse tree and decoded objects
#: (measured: 7x for spans of bare ids, 34x once decoded; 29x for the parse tree of empty
#: attributes; rounded up)
RUN_COST: Final = 64 * RUN_WIRE
#: a piece larger than a run costs twice its bytes (its strings are copied into the parse tree
#: and again into Python) and this much per field at any depth (an object in the parse tree and
#: one in Python: measured 57 + 60 bytes for an empty attribute)
FIELD_COST: Final = 128

# Which fields of which OTLP messages are messages themselves (for counting fields at any depth).
Schema: TypeAlias = dict[int, "Schema"]
_ANY: Schema = {}
_KV: Schema = {2: _ANY}
_ANY.update({5: {1: _ANY}, 6: {1: _KV}})  # array_value (values), kvlist_value (values)
RESOURCE_HEADER: Final[Schema] = {1: {1: _KV}}  # Resource{attributes}
SCOPE_HEADER: Final[Schema] = {1: {3: _KV}}  # InstrumentationScope{attributes}
SPAN: Final[Schema] = {9: _KV, 11: {3: _KV}, 13: {4: _KV}, 15: {}}  # attributes, events, links, status
LOG_RECORD: Final[Schema] = {5: _ANY, 6: _KV}  # body, attributes
NUMBER_POINT: Final[Schema] = {7: _KV, 5: {7: _KV}}  # attributes, exemplars (filtered attributes)
METRIC_HEADER: Final[Schema] = {12: _KV}  # metadata
#: Metric fields holding data: gauge, sum, histogram, exponential_histogram, summary
METRIC_DATA: Final = frozenset({5, 7, 9, 10, 11})
NUMBER_DATA: Final = frozenset({5, 7})  # gauge and sum: the numbers serve keeps


class Malformed(ValueError):
    """The body is not a well-formed protobuf message."""


def fields(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """``(field number, wire type, tag start, value start, field end)`` of each field in
    ``buf[start:end]``; a length-delimited value is ``buf[value start:field end]``."""
    pos = start
    while pos < end:
        tag = pos
        key = buf[pos]
        pos += 1
        if key & 0x80:
            key, pos = _varint(buf, pos, key, end)
        wire = key & 7
        if wire == 2:
            if pos >= end:
                raise Malformed("truncated field")
            length = buf[pos]
            pos += 1
            if length & 0x80:
                length, pos = _varint(buf, pos, length, end)
            value, pos = pos, pos + length
        elif wire == 0:
            value = pos
            while pos < end and buf[pos] & 0x80:
                pos += 1
            pos += 1
        elif wire in (1, 5):
            value = pos
            pos += 8 if wire == 1 else 4
        else:
            raise Malformed(f"unsupported wire type {wire}")
        if pos > end:
            raise Malformed("truncated field")
        if key < 8:
            raise Malformed("field number 0")
        yield key >> 3, wire, tag, value, pos


def _varint(buf: Buffer, pos: int, first: int, end: int) -> tuple[int, int]:
    result, shift = first & 0x7F, 7
    while True:
        if pos >= end or shift > 63:
            raise Malformed("bad varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def items(buf: Buffer, start: int, end: int, field: int) -> Iterator[tuple[int, int]]:
    """The value ranges of the (message) fields numbered ``field``."""
    for number, wire, _, value, stop in fields(buf, start, end):
        if number == field:
            if wire != 2:
                raise Malformed(f"field {field} is not a message")
            yield value, stop


def header(buf: Buffer, start: int, end: int, skip: frozenset[int]) -> bytearray:
    """A container's own fields (those not numbered in ``skip``), as one message body."""
    view = memoryview(buf)
    out = bytearray()
    for number, _, tag, _, stop in fields(buf, start, end):
        if number not in skip:
            out += view[tag:stop]
    return out


def runs(buf: Buffer, start: int, end: int, field: int) -> Iterator[tuple[int, int]]:
    """Byte ranges (tags included) of consecutive ``field`` items, each at most ``RUN_WIRE``
    bytes or a single item: parsed as the container message, a range holds just those items."""
    first = last = -1
    for number, wire, tag, _, stop in fields(buf, start, end):
        if number != field:
            if first >= 0:
                yield first, last
                first = -1
            continue
        if wire != 2:
            raise Malformed(f"field {field} is not a message")
        if first >= 0 and tag == last and stop - first <= RUN_WIRE:
            last = stop
            continue
        if first >= 0:
            yield first, last
        first, last = tag, stop
    if first >= 0:
        yield first, last


def piece_cost(buf: Buffer, start: int, end: int, schema: Schema) -> int:
    """An upper bound of what parsing and decoding ``buf[start:end]`` takes at once."""
    if end - start <= RUN_WIRE:
        return RUN_COST
    count = 0
    stack = [(start, end, schema)]
    while stack:
        a, b, sub = stack.pop()
        for number, wire, _, value, stop in fields(buf, a, b):
            count += 1
            inner = sub.get(number) if wire == 2 else None
            if inner is not None:
                stack.append((value, stop, inner))
    return max(RUN_COST, 2 * (end - start) + FIELD_COST * count)


def measure(signal: str, buf: Buffer) -> int:
    """Check the framing of a whole request (``Malformed``) and return the cost of its most
    expensive piece (a container's own fields, or one item); pieces are parsed one at a time."""
    if signal == "metrics":
        def entry(start: int, end: int) -> int:  # a Metric: its own fields, then its data points
            return _container(buf, start, end, METRIC_HEADER, METRIC_DATA, lambda number, a, b: (
                _container(buf, a, b, {}, _FIRST, lambda _n, c, d: _item_cost(buf, c, d, NUMBER_POINT))
                if number in NUMBER_DATA else RUN_COST))  # (other kinds are not parsed)
    else:
        schema = SPAN if signal == "traces" else LOG_RECORD

        def entry(start: int, end: int) -> int:
            return _item_cost(buf, start, end, schema)
    return _container(buf, 0, len(buf), {}, _FIRST, lambda _n, r_start, r_end: _container(
        buf, r_start, r_end, RESOURCE_HEADER, _SECOND, lambda _m, s_start, s_end: _container(
            buf, s_start, s_end, SCOPE_HEADER, _SECOND, lambda _k, a, b: entry(a, b))))


_FIRST: Final = frozenset({1})
_SECOND: Final = frozenset({2})


def _item_cost(buf: Buffer, start: int, end: int, schema: Schema) -> int:
    return RUN_COST if end - start <= RUN_WIRE else piece_cost(buf, start, end, schema)


def _container(buf: Buffer, start: int, end: int, schema: Schema, item_fields: frozenset[int],
               item_cost: Callable[[int, int, int], int]) -> int:
    """The cost of the most expensive piece of a container: its own fields (parsed together) or
    one of its items (``item_cost(field number, start, end)``)."""
    worst = RUN_COST
    size = count = 0
    for number, wire, tag, value, stop in fields(buf, start, end):
        if number in item_fields:
            if wire != 2:
                raise Malformed(f"field {number} is not a message")
            worst = max(worst, item_cost(number, value, stop))
            continue
        size += stop - tag
        inner = schema.get(number) if wire == 2 else None
        if inner is not None and stop - value > RUN_WIRE:
            count += (piece_cost(buf, value, stop, inner) - 2 * (stop - value)) // FIELD_COST
        else:
            count += 1 + (stop - value) // 2  # at most one field per two bytes
    return max(worst, RUN_COST if size <= RUN_WIRE else 2 * size + FIELD_COST * count)
