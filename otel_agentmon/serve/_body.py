"""Reading an export request's body off the connection, charged to the request budget.

The body is read as it arrives (``Content-Length`` or chunked transfer encoding) and inflated as
it is read (gzip or deflate, bounded in steps), so neither the compressed body nor an inflation
past the size cap is ever held whole. A body that ends early (the client hung up, a compressed
stream without its end) is refused (400): nothing of it is kept.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import BinaryIO, Final

from ._budget import Reservation
from ._otlp import BadRequest, TooLarge

_READ: Final = 64 * 1024  # bytes read off the connection at a time
_STEP: Final = 256 * 1024  # inflated bytes produced at a time
_ENCODINGS: Final = frozenset({"gzip", "deflate", "x-gzip"})


def read_body(rfile: BinaryIO, length: str | None, transfer: str, encoding: str, limit: int,
              reservation: Reservation, wait: float) -> bytes | bytearray:
    """The body, inflated; at most ``limit`` bytes on the wire and inflated (``TooLarge``).
    ``reservation`` grows to hold it as it arrives (``Busy`` when the budget stays full)."""
    encoding = encoding.strip().lower()
    if encoding not in ("", "identity") and encoding not in _ENCODINGS:
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}")
    chunked = "chunked" in transfer.lower()
    if not chunked:
        try:
            size = int(length or 0)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if size < 0:
            raise BadRequest("negative Content-Length")
        if size > limit:
            raise TooLarge(f"body of {size} bytes is over the {limit}-byte limit")
        if encoding in ("", "identity"):
            reservation.grow_to(size, wait)
            body = rfile.read(size)
            if len(body) < size:
                raise BadRequest(f"body ended after {len(body)} of {size} bytes")
            return body
        source = _fixed(rfile, size)
    else:
        source = _chunks(rfile, limit)
    if encoding in ("", "identity"):
        return _collect(source, limit, reservation, wait)
    return _inflate(source, encoding, limit, reservation, wait)


def _fixed(rfile: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left:
        piece = rfile.read(min(_READ, left))
        if not piece:
            raise BadRequest(f"body ended after {size - left} of {size} bytes")
        left -= len(piece)
        yield piece


def _chunks(rfile: BinaryIO, limit: int) -> Iterator[bytes]:
    """The pieces of a chunked body (``Transfer-Encoding: chunked``)."""
    total = 0
    while True:
        line = rfile.readline(64)
        if not line.endswith(b"\n"):
            raise BadRequest("body ended inside its chunked encoding")
        try:
            size = int(line.split(b";")[0].strip() or b"-1", 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        if size < 0:
            raise BadRequest("bad chunk size")
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return
        total += size
        if total > limit:
            raise TooLarge(f"body over {limit} bytes")
        yield from _fixed(rfile, size)
        rfile.readline(64)


def _charge(size: int) -> int:
    """What a growing ``bytearray`` of ``size`` bytes may hold (it over-allocates up to 1/8)."""
    return size + size // 8 + _STEP + _READ


def _collect(source: Iterator[bytes], limit: int, reservation: Reservation, wait: float) -> bytearray:
    body = bytearray()
    for piece in source:
        if len(body) + len(piece) > limit:
            raise TooLarge(f"body over {limit} bytes")
        reservation.grow_to(_charge(len(body) + len(piece)), wait)
        body += piece
    return body


def _inflate(source: Iterator[bytes], encoding: str, limit: int, reservation: Reservation,
             wait: float) -> bytearray:
    out = bytearray()
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    started = False
    try:
        for piece in source:
            data = piece
            while data:
                if inflater.eof:  # another gzip member follows
                    inflater = zlib.decompressobj(wbits=47)
                chunk = inflater.decompress(data, _STEP)
                started = True
                data = inflater.unconsumed_tail or inflater.unused_data
                if len(out) + len(chunk) > limit:
                    raise TooLarge(f"request inflates past {limit} bytes")
                reservation.grow_to(_charge(len(out) + len(chunk)), wait)
                out += chunk
    except zlib.error as exc:
        raise BadRequest(f"bad {encoding} body: {exc}") from None
    if started and not inflater.eof:
        raise BadRequest(f"truncated {encoding} body: the compressed stream does not end")
    return out
