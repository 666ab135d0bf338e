"""The disk spool: encoded OTLP export requests that could not be delivered yet.

One directory per service (``<spool_dir>/<service>``), private to the user (0700, files 0600),
shared by every process of that service. Each file is one export request exactly as it would have
been sent (the protobuf bytes of ``Export{Trace,Logs,Metrics}ServiceRequest``, so the resource and
scope travel with it), with a small header naming the signal and the endpoint it was meant for.

File names sort by age and say what is in them without reading them::

    <wall-clock ns, 20 digits>.<signal>.<endpoint hash>.<items>.<writer token>.otlp

* **Crash-safe writes**: a temporary file (``.tmp.*``), ``fsync``, then ``rename``; a reader only
  ever sees whole files. A file that is torn anyway (a bad disk, a copy) fails its length or CRC
  check: it is removed and counted as ``corrupt``, and the rest of the spool goes on.
* **Several processes**: a file is claimed by renaming it (``<name>.claim.<host>.<pid>``) before it
  is sent, so no request is sent by two processes; a claim whose process is gone (same host, pid
  dead) or older than an hour is renamed back and sent by someone else.
* **Bounded** by size and age over the whole directory: expired files and, above the size, the
  oldest ones are removed and counted as ``expired``.
* **No symlinks**: the directory is opened once with ``O_NOFOLLOW`` and every operation is relative
  to that descriptor; it must belong to the user. Anything wrong with it is one warning and the
  SDK behaves as without a spool (memory only).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import stat
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._core.guard import log_once

_MAGIC = b"AGSPOOL1"
_SUFFIX = ".otlp"
_CLAIM = ".claim."
_TMP = ".tmp."
STALE_CLAIM_S = 3600.0
_RESCAN_S = 1.0
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_held_lock = threading.Lock()
_held: set[str] = set()  # claims this process holds now (a claim with our pid but not here is stale)


def default_root() -> Path:
    """``$XDG_STATE_HOME/otel_agentmon/spool``, else ``~/.local/state/otel_agentmon/spool``."""
    base = os.environ.get("XDG_STATE_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "otel_agentmon" / "spool"


def service_dir(root: str | os.PathLike[str] | None, service: str) -> Path:
    name = _SAFE.sub("_", service).strip("._") or "unknown_service"
    return (Path(root).expanduser() if root else default_root()) / name[:100]


def endpoint_key(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode("utf-8", "replace")).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    created_ns: int
    signal: str
    key: str
    items: int
    size: int


@dataclasses.dataclass(frozen=True)
class Claimed:
    entry: Entry
    claim: str
    payload: bytes
    endpoint: str


def _parse(name: str, size: int) -> Entry | None:
    if not name.endswith(_SUFFIX) or name.startswith("."):
        return None
    parts = name[: -len(_SUFFIX)].split(".")
    if len(parts) != 5 or not parts[0].isdigit() or not parts[3].isdigit():
        return None
    return Entry(name, int(parts[0]), parts[1], parts[2], int(parts[3]), size)


def encode_file(signal: str, endpoint: str, items: int, payload: bytes) -> bytes:
    header = json.dumps({"signal": signal, "endpoint": endpoint, "items": items}).encode()
    crc = zlib.crc32(payload, zlib.crc32(header))
    return b"".join((_MAGIC, struct.pack(">I", len(header)), header, struct.pack(">Q", len(payload)), payload,
                     struct.pack(">I", crc)))


def decode_file(data: bytes) -> tuple[dict[str, object], bytes] | None:
    """(header, payload), or None when the file is torn or not ours."""
    try:
        if not data.startswith(_MAGIC):
            return None
        at = len(_MAGIC)
        (hlen,) = struct.unpack_from(">I", data, at)
        header = data[at + 4: at + 4 + hlen]
        at += 4 + hlen
        (plen,) = struct.unpack_from(">Q", data, at)
        payload = data[at + 8: at + 8 + plen]
        at += 8 + plen
        (crc,) = struct.unpack_from(">I", data, at)
        if at + 4 != len(data) or len(payload) != plen or zlib.crc32(payload, zlib.crc32(header)) != crc:
            return None
        meta = json.loads(header)
        return (meta, payload) if isinstance(meta, dict) else None
    except (struct.error, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, not ours to signal
    return True


class SpoolDir:
    """One service's spool directory, opened safely; shared by the signals of a process."""

    def __init__(self, path: Path, fd: int, max_bytes: int, max_age_s: float) -> None:
        self.path = path
        self._fd = fd
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        self._scanned = 0.0
        self._bytes = 0
        self.corrupt = 0
        self.expired: dict[str, int] = {}
        self.expired_own: dict[str, int] = {}  # this process's items among them, by signal
        self.own: dict[str, int] = {}  # name -> items, files this process wrote and still counts as spooled
        self.shares: list[Any] = []  # the signals using this directory (durable.SpoolShare)

    @classmethod
    def open(cls, path: Path, max_bytes: int, max_age_s: float) -> SpoolDir | None:
        """The directory, created 0700 if missing; None (and one warning) when it cannot be used."""
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            return cls._refuse(path, "is a symlink" if path.is_symlink() else "cannot be created or opened", exc)
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():
                raise PermissionError(errno.EPERM, "owned by another user")
            if stat.S_IMODE(st.st_mode) & 0o077:
                os.fchmod(fd, 0o700)
            probe = f"{_TMP}probe.{os.getpid()}.{secrets.token_hex(4)}"
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd))
            os.unlink(probe, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            return cls._refuse(path, "is not usable", exc)
        return cls(path, fd, max_bytes, max_age_s)

    @staticmethod
    def _refuse(path: Path, what: str, exc: OSError) -> None:
        log_once(logging.WARNING, "spool:unusable", "spool directory %s %s (%s); exports that fail are "
                 "dropped and counted, as without a spool", path, what, exc.strerror or exc)

    # --- writing ------------------------------------------------------------------------------
    def write(self, signal: str, endpoint: str, items: int, payload: bytes) -> str | None:
        """Store one request; its file name, or None when it could not be written."""
        name = f"{time.time_ns():020d}.{signal}.{endpoint_key(endpoint)}.{items}.{secrets.token_hex(6)}{_SUFFIX}"
        tmp = f"{_TMP}{os.getpid()}.{secrets.token_hex(6)}"
        data = encode_file(signal, endpoint, items, payload)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                         0o600, dir_fd=self._fd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError as exc:
            try:
                os.unlink(tmp, dir_fd=self._fd)
            except OSError:
                pass
            log_once(logging.WARNING, "spool:write", "cannot write to the spool %s (%s); dropping instead",
                     self.path, exc.strerror or exc)
            return None
        with self._lock:
            self.own[name] = items
            entry = Entry(name, int(name.split(".", 1)[0]), signal, endpoint_key(endpoint), items, len(data))
            self._entries.append(entry)
            self._bytes += len(data)
            over = self._bytes > self.max_bytes
        if over:
            self.enforce(force_scan=True)
        return name

    # --- bounds and listing ---------------------------------------------------------------------
    def _scan(self) -> None:
        """Re-read the directory: live entries sorted by age; stale claims and temp files recovered."""
        entries: list[Entry] = []
        total = 0
        now = time.time()
        for name in os.listdir(self._fd):
            try:
                st = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            total += st.st_size
            if _CLAIM in name:
                self._recover_claim(name, st.st_mtime, now)
            elif name.startswith(_TMP):
                if now - st.st_mtime > STALE_CLAIM_S:
                    self._unlink(name)
            else:
                entry = _parse(name, st.st_size)
                if entry is not None:
                    entries.append(entry)
        entries.sort(key=lambda e: e.name)
        self._entries, self._bytes, self._scanned = entries, total, time.monotonic()

    def _recover_claim(self, name: str, mtime: float, now: float) -> None:
        base, _, owner = name.partition(_CLAIM)
        host, _, pid_text = owner.rpartition(".")
        with _held_lock:
            mine = name in _held
        if mine:
            return
        dead = host == _HOST and pid_text.isdigit() and (int(pid_text) == os.getpid() or not _pid_alive(int(pid_text)))
        if dead or now - mtime > STALE_CLAIM_S:
            try:
                os.rename(name, base, src_dir_fd=self._fd, dst_dir_fd=self._fd)
            except OSError:
                pass  # recovered by another process first

    def enforce(self, force_scan: bool = False) -> None:
        """Remove expired files and, above the size bound, the oldest; count what they held."""
        with self._lock:
            if force_scan or time.monotonic() - self._scanned > _RESCAN_S:
                self._scan()
            cutoff = time.time_ns() - int(self.max_age_s * 1e9)
            keep: list[Entry] = []
            total = self._bytes
            for entry in self._entries:
                if (entry.created_ns < cutoff or total > self.max_bytes) and self._unlink(entry.name):
                    total -= entry.size
                    self._count_expired(entry)
                    continue
                keep.append(entry)
            self._entries, self._bytes = keep, total

    def _count_expired(self, entry: Entry) -> None:
        self.expired[entry.signal] = self.expired.get(entry.signal, 0) + entry.items
        if self.own.pop(entry.name, None) is not None:
            self.expired_own[entry.signal] = self.expired_own.get(entry.signal, 0) + entry.items
        log_once(logging.WARNING, "spool:expired", "spool %s: removed undelivered requests older than %.0f s "
                 "or beyond %d bytes (counted as expired)", self.path, self.max_age_s, self.max_bytes)

    def _unlink(self, name: str) -> bool:
        try:
            os.unlink(name, dir_fd=self._fd)
        except OSError:
            return False
        return True

    def pending(self, signal: str, key: str | None) -> Iterator[Entry]:
        with self._lock:
            entries = list(self._entries)
        return (e for e in entries if e.signal == signal and (key is None or e.key == key))

    def has_pending(self, signal: str, key: str | None) -> bool:
        self.enforce()
        return next(self.pending(signal, key), None) is not None

    # --- claiming -------------------------------------------------------------------------------
    def claim(self, signal: str, key: str | None) -> Claimed | None:
        """The oldest whole file for (signal, endpoint), renamed to our claim; None when none is left.
        Torn files met on the way are removed and counted."""
        self.enforce()
        for entry in self.pending(signal, key):
            claim = f"{entry.name}{_CLAIM}{_HOST}.{os.getpid()}"
            with _held_lock:
                _held.add(claim)
            try:
                os.rename(entry.name, claim, src_dir_fd=self._fd, dst_dir_fd=self._fd)
                os.utime(claim, dir_fd=self._fd, follow_symlinks=False)
                data = self._read(claim)
            except OSError:
                self._forget(entry, claim, delete=False)  # another process claimed it first
                continue
            decoded = decode_file(data)
            if decoded is None or decoded[0].get("signal") != signal:
                self._forget(entry, claim, delete=True)
                self.corrupt += 1
                log_once(logging.WARNING, "spool:corrupt", "spool %s: removed a torn or unreadable file "
                         "(counted as corrupt)", self.path)
                continue
            endpoint = decoded[0].get("endpoint")
            return Claimed(entry, claim, decoded[1], endpoint if isinstance(endpoint, str) else "")
        return None

    def _read(self, name: str) -> bytes:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=self._fd)
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _forget(self, entry: Entry, claim: str, *, delete: bool) -> None:
        if delete:
            self._unlink(claim)
        with _held_lock:
            _held.discard(claim)
        with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)
                if delete:
                    self._bytes -= entry.size

    def done(self, claimed: Claimed) -> int:
        """The claimed request was delivered (or refused for good): remove it. Returns the items this
        process had counted as its own spooled ones (0 for another process's file)."""
        self._forget(claimed.entry, claimed.claim, delete=True)
        with self._lock:
            return self.own.pop(claimed.entry.name, 0)

    def release(self, claimed: Claimed) -> None:
        """Not delivered: put it back for a later attempt (keeps its age and place)."""
        try:
            os.rename(claimed.claim, claimed.entry.name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError:
            pass
        with _held_lock:
            _held.discard(claimed.claim)
