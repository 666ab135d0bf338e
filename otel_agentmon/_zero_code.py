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
script run as ``__main__`` cannot be reached before it runs. A bad entry logs one warning and
is skipped; it never stops the program.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import Final, get_args

import wrapt

from ._classes import Role, instrument, instrument_function
from ._guard import log_once

ENV_INSTRUMENT: Final = "OTEL_AGENTMON_INSTRUMENT"
_ROLES: Final = frozenset(get_args(Role))


@dataclasses.dataclass
class _ClassPlan:
    agent: str | None = None
    invoke: list[str] = dataclasses.field(default_factory=list[str])
    tasks: dict[str, str] = dataclasses.field(default_factory=dict[str, str])
    tools: dict[str, str] = dataclasses.field(default_factory=dict[str, str])
    workflows: dict[str, str] = dataclasses.field(default_factory=dict[str, str])


@dataclasses.dataclass
class Plan:
    """What to instrument in one module."""

    classes: dict[str, _ClassPlan] = dataclasses.field(default_factory=dict[str, _ClassPlan])
    functions: list[tuple[str, Role, str | None]] = dataclasses.field(
        default_factory=list[tuple[str, Role, str | None]])


def parse(text: str) -> dict[str, Plan]:
    """Module name -> plan; raises ``ValueError`` naming the first bad entry."""
    plans: dict[str, Plan] = {}
    for raw in text.replace("\n", ";").split(";"):
        entry = raw.strip()
        if not entry:
            continue
        target, sep, spec = entry.partition("=")
        module, colon, qualname = target.strip().partition(":")
        role, _, label = spec.strip().partition(":")
        if not sep or not colon or not module or not qualname or role not in _ROLES:
            raise ValueError(f"bad {ENV_INSTRUMENT} entry {entry!r}: expected "
                             "module:Class.method=agent|task|tool|workflow[:name]")
        plan = plans.setdefault(module.strip(), Plan())
        parts = qualname.strip().split(".")
        if len(parts) == 1:
            plan.functions.append((parts[0], role, label or None))  # type: ignore[arg-type]
            continue
        if len(parts) != 2:
            raise ValueError(f"bad {ENV_INSTRUMENT} entry {entry!r}: nested classes are not supported")
        cls_plan = plan.classes.setdefault(parts[0], _ClassPlan())
        method = parts[1]
        if role == "agent":
            cls_plan.invoke.append(method)
            if label:
                cls_plan.agent = label
        else:
            {"task": cls_plan.tasks, "tool": cls_plan.tools, "workflow": cls_plan.workflows}[role][method] = \
                label or method
    return plans


def apply(module: ModuleType, plan: Plan) -> None:
    """Instrument what ``plan`` names in an imported ``module`` (errors are logged, not raised)."""
    for cls_name, c in plan.classes.items():
        try:
            instrument(getattr(module, cls_name), agent=c.agent, invoke=c.invoke, tasks=c.tasks,
                       tools=c.tools, workflows=c.workflows)
        except Exception as exc:  # noqa: BLE001
            log_once(logging.WARNING, f"zero-code:{module.__name__}:{cls_name}",
                     "cannot instrument %s.%s: %s", module.__name__, cls_name, exc)
    for name, role, label in plan.functions:
        try:
            instrument_function(module, name, role, label)
        except Exception as exc:  # noqa: BLE001
            log_once(logging.WARNING, f"zero-code:{module.__name__}:{name}",
                     "cannot instrument %s.%s: %s", module.__name__, name, exc)


def install_from_env(environ: dict[str, str] | None = None) -> int:
    """Register post-import hooks for ``OTEL_AGENTMON_INSTRUMENT``; returns how many modules."""
    text = (environ if environ is not None else os.environ).get(ENV_INSTRUMENT, "")
    if not text.strip():
        return 0
    try:
        plans = parse(text)
    except ValueError as exc:
        log_once(logging.WARNING, "zero-code:parse", "%s; nothing instrumented from it", exc)
        return 0
    for module_name, plan in plans.items():
        wrapt.register_post_import_hook(_hook(plan), module_name)
    return len(plans)


def _hook(plan: Plan) -> Callable[[ModuleType], None]:
    def on_import(module: ModuleType) -> None:
        apply(module, plan)
    return on_import
