"""Where ``agentmon report`` reads from: a recording file or a running ``agentmon serve``; and
the period options (``--since 1h``, ``--start``/``--end``)."""

from __future__ import annotations

import datetime
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from .._records.recording import Recording, parse_lines, read_recording
from .otlp_file import OTLP_KEYS, ZSTD_MAGIC, add_payload, is_otlp_json, looks_framed, read_otlp

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
#: What ``agentmon serve`` answers a whole-store export on (JSON Lines, the recording format).
SERVE_EXPORT_PATH = "/api/export"
FETCH_TIMEOUT_S = 30.0


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w`` or plain seconds -> seconds. ``ValueError`` otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h, 2d)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def parse_time(text: str) -> float:
    """Unix seconds, or ISO 8601 (``2026-11-27T13:00:00Z``; no zone means UTC) -> Unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a time: {text!r} (use Unix seconds or ISO 8601)") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def period(since: str | None, start: str | None, end: str | None, now: float | None = None
           ) -> tuple[float | None, float | None]:
    """(start, end) Unix seconds from the options; ``None`` where not given."""
    now = time.time() if now is None else now
    if since is not None and start is not None:
        raise ValueError("use --since or --start, not both")
    t_end = parse_time(end) if end is not None else None
    if since is not None:
        return (t_end if t_end is not None else now) - parse_duration(since), t_end
    t_start = parse_time(start) if start is not None else None
    if t_start is not None and t_end is not None and t_end <= t_start:
        raise ValueError("--end must be after --start")
    return t_start, t_end


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def serve_base(url: str) -> str:
    """The base URL of ``agentmon serve`` given as ``--from`` (with or without ``/api/export``)."""
    return url.rstrip("/").removesuffix(SERVE_EXPORT_PATH).rstrip("/")


def sniff(path: Path) -> str:
    """``recording``, ``otlp-json`` (JSON lines of export requests) or ``otlp-framed`` (length-
    prefixed proto or zstd frames, or a zstd stream): by content, never by name."""
    with path.open("rb") as fh:
        head = fh.read(64 * 1024)
        total = os.fstat(fh.fileno()).st_size
    if head.startswith(ZSTD_MAGIC) or looks_framed(head, total):
        return "otlp-framed"
    first = next((line for line in head.splitlines() if line.strip()), b"")
    try:
        return "otlp-json" if is_otlp_json(json.loads(first)) else "recording"
    except ValueError:  # a first line cut by the 64 KiB peek: an OTLP request (recording lines are short)
        cut = len(first) >= len(head) - 1 and any(k.encode() in first[:200] for k in OTLP_KEYS)
        return "otlp-json" if cut else "recording"


def read_file(path: Path) -> Recording:
    """A recording, or what the Collector's file exporter wrote (OTLP JSON lines, or length-prefixed
    proto/zstd frames): told apart by content. Raises ``OSError`` when ``path`` cannot be read."""
    kind = sniff(path)
    if kind == "otlp-framed":
        return read_otlp(path.read_bytes())
    if kind == "recording":
        return read_recording(path)  # with its rotated <path>.1 first
    rec = Recording()
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                add_payload(line, rec)
    return rec


def describe(source: str) -> str:
    """What the report says it was built from."""
    if is_url(source):
        return f"agentmon serve at {source}"
    try:
        kind = sniff(Path(source))
    except OSError:
        kind = "recording"
    return f"recording {source}" if kind == "recording" else f"OTLP file {source} (Collector file exporter)"


def load(source: str) -> Recording:
    """A recording (or a Collector file exporter's file) from a path, or the export of
    ``agentmon serve`` at ``source`` (its base URL).

    Raises ``OSError`` (file or connection) or ``ValueError`` (not a recording)."""
    if not is_url(source):
        return read_file(Path(source))
    url = source.rstrip("/")
    if not url.endswith(SERVE_EXPORT_PATH):
        url += SERVE_EXPORT_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as resp:
            return parse_lines(resp)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise OSError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"{url}: {exc.reason}") from None
