"""Instrument a team's own agent classes (or instances, or plain functions) without editing them.

::

    agentmon.instrument(Researcher, invoke=["run"], tasks={"handle": "research"}, tools=["search"])
    agentmon.instrument(bot, agent="@name", invoke=["__call__"])   # one instance; name from bot.name
    agentmon.uninstrument(Researcher)                              # the originals, exactly

The agent name is the class name unless ``agent`` says otherwise: a fixed string, or ``"@attr"``
to read it from each instance. Sync, async, generator and async-generator methods are all
wrapped; static and class methods keep their kind. Instrumenting again replaces the earlier
instrumentation (never two spans per call).
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal

from .._core.guard import log_once
from .ops import agent as agent_op
from .ops import task as task_op
from .ops import tool as tool_op
from .ops import workflow as workflow_op
from .sanitize import clean_name, name_arg
from .wrap import wrap

Role = Literal["agent", "task", "tool", "workflow"]
Names = Iterable[str] | Mapping[str, str]
Namer = str | Callable[[Any], str]  # a fixed agent name, or one read from each instance
_MARK: Final = "__agentmon_wrapped__"
_MAX_NAMES: Final = 1024  # distinct dynamic agent names cached per method

_lock = threading.Lock()
#: target -> {attribute: (had its own attribute, the original raw attribute)}
_originals: weakref.WeakKeyDictionary[Any, dict[str, tuple[bool, Any]]] = weakref.WeakKeyDictionary()
_by_id: dict[int, dict[str, tuple[bool, Any]]] = {}  # targets that cannot be weakly referenced


def instrument(target: Any, *, agent: str | None = None, invoke: Iterable[str] = (), tasks: Names = (),
               tools: Names = (), workflows: Names = ()) -> Any:
    """Wrap ``target``'s methods (a class, or one instance) in agent spans; returns ``target``.

    ``invoke``: methods that are agent invocations. ``tasks`` / ``tools`` / ``workflows``: method
    names, or a mapping method -> task type / tool name / workflow name (default: the method's
    name). Raises ``TypeError``/``AttributeError`` for a target or method that cannot be wrapped,
    at instrumentation time, never at call time.
    """
    plan: list[tuple[str, Role, str | None]] = [(m, "agent", None) for m in _one_or_many(invoke)]
    for role, names in (("task", tasks), ("tool", tools), ("workflow", workflows)):
        items = names.items() if isinstance(names, Mapping) else ((n, None) for n in _one_or_many(names))
        plan += [(method, role, label) for method, label in items]  # type: ignore[misc]  # role is one of the Role literals of the loop's tuple
    agent_name = _agent_namer(target, agent)
    uninstrument(target)
    saved: dict[str, tuple[bool, Any]] = {}
    try:
        for method, role, label in plan:
            saved[method] = _patch(target, method, role, label, agent_name)
    except BaseException:
        _restore(target, saved)
        raise
    with _lock:
        _remember(target, saved)
    return target


def instrument_each(target: Any, members: Iterable[tuple[str, Role, str | None]], *,
                    agent: str | None = None) -> dict[str, Exception]:
    """Like :func:`instrument`, but each ``(method, role, label)`` stands alone.

    A method that cannot be wrapped is left as it is and its error returned (method -> error);
    the others are wrapped all the same. Zero-code setups use it, so one misspelled method never
    costs the rest of its class their spans.
    """
    agent_name = _agent_namer(target, agent)
    uninstrument(target)
    saved: dict[str, tuple[bool, Any]] = {}
    failed: dict[str, Exception] = {}
    for method, role, label in members:
        if method in saved:
            continue  # named twice: one wrapper only (never wrap a wrapper)
        try:
            saved[method] = _patch(target, method, role, label, agent_name)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, per method
            failed[method] = exc
    if saved:
        with _lock:
            _remember(target, saved)
    return failed


def instrument_function(module: Any, name: str, role: Role, label: str | None = None) -> None:
    """Wrap the module-level function ``module.name`` as an agent, task, tool or workflow."""
    fn = _unwrap(getattr(module, name))  # instrumented before: wrap the original, never a wrapper
    saved = (name in vars(module), vars(module).get(name))
    setattr(module, name, _wrapped(fn, role, label or name, clean_name(label or name), bound=False))
    with _lock:
        known = _lookup(module) or {}
        known.setdefault(name, saved)
        _remember(module, known)


def uninstrument(target: Any) -> None:
    """Put back exactly what :func:`instrument` replaced on ``target`` (no-op if nothing)."""
    with _lock:
        saved = _lookup(target)
        _forget(target)
    if saved:
        _restore(target, saved)


def is_instrumented(target: Any) -> bool:
    with _lock:
        return bool(_lookup(target))


# --- internals -------------------------------------------------------------------------------------
def _one_or_many(names: Iterable[str]) -> Iterable[str]:
    return (names,) if isinstance(names, str) else names  # invoke="run" names one method, not r, u, n


def _agent_namer(target: Any, agent: str | None) -> Namer:
    cls = target if isinstance(target, type) else type(target)
    if agent is not None and not isinstance(agent, str):
        agent = name_arg(agent, "instrument", "agent")
    if agent is None:
        return clean_name(cls.__name__)
    if not agent.startswith("@"):
        return clean_name(agent)
    attr = agent[1:]
    fallback = clean_name(cls.__name__)
    if not isinstance(target, type):
        value = getattr(target, attr, None)  # one instance: its name now
        return clean_name(value) if isinstance(value, str) and value else fallback

    def from_instance(self: Any) -> str:
        try:
            value = getattr(self, attr, None)
        except Exception:  # noqa: BLE001 - a raising property must not break the user's call
            log_once(30, f"instrument:attr:{attr}", "reading the agent name from .%s raised; "
                     "using the class name", attr, exc_info=True)
            return fallback
        return clean_name(value) if isinstance(value, str) and value else fallback

    return from_instance


def _patch(target: Any, method: str, role: Role, label: str | None,
           agent_name: Namer) -> tuple[bool, Any]:
    is_class = isinstance(target, type)
    own = vars(target) if hasattr(target, "__dict__") else {}
    had_own = method in own
    original = own.get(method) if had_own else None
    raw = inspect.getattr_static(target, method)
    if is_class:
        # A base class instrumented already hands down its wrapper: wrap its original instead.
        if isinstance(raw, staticmethod):
            fn = _unwrap(raw.__func__)
            setattr(target, method, staticmethod(_wrapped(fn, role, label or method, agent_name, bound=False)))
        elif isinstance(raw, classmethod):
            fn = _unwrap(raw.__func__)
            setattr(target, method, classmethod(_wrapped(fn, role, label or method, agent_name, bound=True)))
        elif inspect.isfunction(raw):
            setattr(target, method, _wrapped(_unwrap(raw), role, label or method, agent_name, bound=True))
        else:
            raise TypeError(f"{target.__name__}.{method} is not a function, staticmethod or classmethod")
    else:
        if not hasattr(target, "__dict__"):
            raise TypeError(f"cannot instrument a {type(target).__name__} instance: it has no __dict__")
        bound_method = getattr(target, method)
        if not callable(bound_method):
            raise TypeError(f"{type(target).__name__}.{method} is not callable")
        if hasattr(getattr(bound_method, "__func__", None), _MARK):
            # Its class is instrumented already: a second wrapper would double every span.
            log_once(30, f"instrument:twice:{method}", "%s.%s is already instrumented on its class; "
                     "leaving the instance as it is", type(target).__name__, method)
            return had_own, original
        fn = _wrapped(bound_method, role, label or method, agent_name, bound=False)
        target.__dict__[method] = fn
    return had_own, original


def _op(role: Role, label: str, agent_name: str) -> Any:
    if role == "agent":
        return agent_op(agent_name)
    if role == "task":
        return task_op(label, agent=agent_name)
    return tool_op(label) if role == "tool" else workflow_op(label)


def _wrapped(fn: Callable[..., Any], role: Role, label: str, agent_name: Namer, *, bound: bool) -> Callable[..., Any]:
    """``fn`` wrapped in a span of ``role``."""
    if isinstance(agent_name, str) or role in ("tool", "workflow"):
        # A fixed name (or none needed): wrap once; ``wrap`` keeps the function's kind.
        direct = wrap(fn, _op(role, label, agent_name if isinstance(agent_name, str) else ""))
        setattr(direct, _MARK, fn)
        return direct
    namer = agent_name
    cache: dict[str, Callable[..., Any]] = {}  # one wrapper per distinct agent name, made lazily

    def for_call(args: tuple[Any, ...]) -> Callable[..., Any]:
        name = namer(args[0] if bound and args else None)
        inner = cache.get(name)
        if inner is None:
            inner = wrap(fn, _op(role, label, name))
            if len(cache) < _MAX_NAMES:
                cache[name] = inner
            else:
                log_once(30, "instrument:names", "more than 1024 agent names on one method: "
                         "spans are still made, wrappers no longer cached")
        return inner

    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(fn):
        async def acall(*args: Any, **kwargs: Any) -> Any:
            return await for_call(args)(*args, **kwargs)
        wrapper = acall
    elif inspect.isasyncgenfunction(fn):
        async def agen(*args: Any, **kwargs: Any) -> Any:
            async for item in for_call(args)(*args, **kwargs):
                yield item
        wrapper = agen
    else:
        def call(*args: Any, **kwargs: Any) -> Any:
            return for_call(args)(*args, **kwargs)
        wrapper = call
    functools.update_wrapper(wrapper, fn)
    setattr(wrapper, _MARK, fn)
    return wrapper


def _unwrap(fn: Any) -> Any:
    return getattr(fn, _MARK, fn)


def _restore(target: Any, saved: Mapping[str, tuple[bool, Any]]) -> None:
    for method, (had_own, original) in saved.items():
        if had_own:
            setattr(target, method, original)
        elif isinstance(target, type) or not hasattr(target, "__dict__"):
            try:
                delattr(target, method)
            except AttributeError:
                pass
        else:
            target.__dict__.pop(method, None)


def _lookup(target: Any) -> dict[str, tuple[bool, Any]] | None:
    try:
        return _originals.get(target)
    except TypeError:
        return _by_id.get(id(target))


def _remember(target: Any, saved: dict[str, tuple[bool, Any]]) -> None:
    try:
        _originals[target] = saved
    except TypeError:
        _by_id[id(target)] = saved


def _forget(target: Any) -> None:
    try:
        _originals.pop(target, None)
    except TypeError:
        _by_id.pop(id(target), None)
