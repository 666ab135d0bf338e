"""Instrument classes and functions named in an environment variable, for zero-code setups.

``OTEL_AGENTMON_INSTRUMENT`` lists targets separated by ``;`` (or newlines)::

    myswarm.agents:Researcher.run=agent            # agent named after the class
    myswarm.agents:Researcher.run=agent:@name      # ... or after each instance's .name
    myswarm.agents:Researcher.handle=task:research # a task of type "research"
    myswarm.agents:Researcher.search=tool          # a tool named "search"
    myswarm.tools:fetch_page=tool:fetch            # a module-level function
    myswarm.main:run_swarm=workflow:nightly

Each module is patched when it is imported (or at once, if it already is), so the variable can
name modules the program has not loaded yet. Modules must be importable: a class defined in the
script run as ``__main__`` cannot be reached before it runs.

Every entry stands alone: a malformed entry, a missing class or a misspelled method logs one
warning naming that entry and is skipped; the other entries, even of the same class, are
instrumented all the same, and the program is never stopped. A module that is never imported
during the run is reported by one warning at exit, saying whether Python can find it at all
(a misspelling) or whether the program just did not import it. It is not checked at start-up:
the script's own directory is not yet on ``sys.path`` then, so a correct name could look missing.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Final, get_args

import wrapt

from .._core.guard import log_once
from .classes import Role, instrument_each, instrument_function

ENV_INSTRUMENT: Final = "OTEL_AGENTMON_INSTRUMENT"
_ROLES: Final = frozenset(get_args(Role))
_FORMAT: Final = "expected module:Class.method=agent|task|tool|workflow[:name] or module:function=...[:name]"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One entry of ``OTEL_AGENTMON_INSTRUMENT``."""

    text: str          # as written, for warnings
    module: str
    owner: str | None  # the class, or None for a module-level function
    name: str          # the method or function
    role: Role
    label: str | None  # agent: the agent's name (``@attr`` reads it per instance); else the span's name

    @property
    def target(self) -> str:
        return f"{self.module}:{self.owner}.{self.name}" if self.owner else f"{self.module}:{self.name}"


def parse_entry(text: str) -> Entry:
    """One entry; raises ``ValueError`` saying what is wrong with it."""
    target, sep, spec = text.partition("=")
    module, colon, qualname = (p.strip() for p in target.partition(":"))
    role, _, label = (p.strip() for p in spec.partition(":"))
    if not sep or not colon:
        raise ValueError(_FORMAT)
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"{module!r} is not a module name; {_FORMAT}")
    parts = qualname.split(".")
    if not all(part.isidentifier() for part in parts):
        raise ValueError(f"{qualname!r} is not a function or Class.method name; {_FORMAT}")
    if len(parts) > 2:
        raise ValueError("nested classes are not supported; name the class its module defines")
    if role not in _ROLES:
        raise ValueError(f"unknown role {role!r}; {_FORMAT}")
    owner, name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return Entry(text, module, owner, name, role, label or None)  # type: ignore[arg-type]  # checked above


def parse(text: str) -> tuple[dict[str, list[Entry]], list[str]]:
    """Module name -> its entries, and one problem message per entry that was skipped."""
    plans: dict[str, list[Entry]] = {}
    problems: list[str] = []
    seen: dict[str, Entry] = {}
    for raw in text.replace("\n", ";").split(";"):
        entry = raw.strip()
        if not entry:
            continue
        try:
            parsed = parse_entry(entry)
        except ValueError as exc:
            problems.append(f"{ENV_INSTRUMENT} entry {entry!r} skipped: {exc}")
            continue
        first = seen.setdefault(parsed.target, parsed)
        if first is not parsed:
            problems.append(f"{ENV_INSTRUMENT} entry {entry!r} skipped: {parsed.target} is already "
                            f"named by {first.text!r}")
            continue
        plans.setdefault(parsed.module, []).append(parsed)
    return plans, problems


def _warn(entry: Entry, problem: str) -> None:
    log_once(logging.WARNING, f"zero-code:{entry.text}", "%s entry %r not instrumented: %s",
             ENV_INSTRUMENT, entry.text, problem)


def _describe(exc: Exception, where: str, name: str) -> str:
    return f"{where} has no attribute {name!r}" if isinstance(exc, AttributeError) else str(exc)


def apply(module: ModuleType, entries: list[Entry]) -> None:
    """Instrument what ``entries`` name in an imported ``module``; each failure is one warning."""
    classes: dict[str, list[Entry]] = {}
    for e in entries:
        if e.owner is not None:
            classes.setdefault(e.owner, []).append(e)
            continue
        try:
            instrument_function(module, e.name, e.role, e.label)
        except Exception as exc:  # noqa: BLE001 - a bad entry never stops the program
            _warn(e, _describe(exc, f"module {module.__name__}", e.name))
    for cls_name, members in classes.items():
        try:
            cls = getattr(module, cls_name, None)
        except Exception:  # noqa: BLE001 - a module __getattr__ may raise anything
            cls = None
        if not isinstance(cls, type):
            problem = (f"module {module.__name__} has no class {cls_name!r}" if cls is None else
                       f"{module.__name__}.{cls_name} is a {type(cls).__name__}, not a class")
            for e in members:
                _warn(e, problem)
            continue
        agent = next((e.label for e in members if e.role == "agent" and e.label), None)
        try:
            failed = instrument_each(cls, [(e.name, e.role, None if e.role == "agent" else e.label)
                                           for e in members], agent=agent)
        except Exception as exc:  # noqa: BLE001
            failed = {e.name: exc for e in members}
        for e in members:
            if e.name in failed:
                _warn(e, _describe(failed[e.name], f"class {module.__name__}.{cls_name}", e.name))


class _Registry:
    """The modules named so far, and which of them the program has imported."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.named: dict[str, list[Entry]] = {}
        self.imported: set[str] = set()

    def hook(self, module_name: str, entries: list[Entry]) -> Callable[[ModuleType], None]:
        def on_import(module: ModuleType) -> None:
            with self.lock:
                self.imported.add(module_name)
            apply(module, entries)
        return on_import

    def unimported(self) -> dict[str, list[Entry]]:
        with self.lock:
            return {m: list(es) for m, es in self.named.items() if m not in self.imported}


_registry = _Registry()
_at_exit_registered = False


def install_from_env(environ: Mapping[str, str] | None = None) -> int:
    """Register post-import hooks for ``OTEL_AGENTMON_INSTRUMENT``; returns how many modules."""
    global _at_exit_registered
    text = (environ if environ is not None else os.environ).get(ENV_INSTRUMENT, "")
    if not text.strip():
        return 0
    plans, problems = parse(text)
    for problem in problems:
        log_once(logging.WARNING, f"zero-code:parse:{problem}", "%s", problem)
    registry = _registry
    for module_name, entries in plans.items():
        with registry.lock:
            registry.named.setdefault(module_name, []).extend(entries)
        wrapt.register_post_import_hook(registry.hook(module_name, entries), module_name)
    if plans and not _at_exit_registered:
        _at_exit_registered = True
        atexit.register(report_unimported)
    return len(plans)


def report_unimported() -> list[str]:
    """Warn once per named module the program never imported (run at exit); the messages."""
    messages = []
    for module_name, entries in _registry.unimported().items():
        message = (f"{ENV_INSTRUMENT} names module {module_name!r} ({'; '.join(e.text for e in entries)}), "
                   f"but {_why_unimported(module_name)}; nothing of it was instrumented")
        messages.append(message)
        log_once(logging.WARNING, f"zero-code:unimported:{module_name}", "%s", message)
    return messages


def _why_unimported(name: str) -> str:
    try:
        main = sys.modules.get("__main__")
        main_spec = getattr(main, "__spec__", None)
        script = sys.argv[0] if sys.argv else ""  # __main__.__file__ is gone once the script ended
        if getattr(main_spec, "name", None) == name or (
                main_spec is None and script and "." not in name and Path(script).stem == name):
            return ("it is the script run as __main__, which is never imported under its own name; "
                    "move the classes into a module the script imports")
        parent = name.rpartition(".")[0]
        # find_spec imports a dotted name's parent package: only ask when that costs nothing.
        probe = name if not parent or parent in sys.modules else name.partition(".")[0]
        if importlib.util.find_spec(probe) is None:
            return f"no module {probe!r} can be found (is it spelled right, and on sys.path?)"
    except Exception:  # noqa: BLE001 - e.g. "x is not a package": it cannot be found either
        return f"no module {name!r} can be found (is it spelled right, and on sys.path?)"
    return "the program never imported it during this run"
