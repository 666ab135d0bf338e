"""The public surface: ``__all__``, typing marker, plugin registration."""

from __future__ import annotations
import __future__

import asyncio
import inspect
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import otel_agentmon
from otel_agentmon import testing

PACKAGE_DIR = Path(otel_agentmon.__file__).resolve().parent


def test_all_is_sorted_and_unique() -> None:
    names = list(otel_agentmon.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_every_name_in_all_exists() -> None:
    missing = [name for name in otel_agentmon.__all__ if not hasattr(otel_agentmon, name)]
    assert missing == []


def test_every_public_attribute_is_in_all() -> None:
    public = {
        name for name, value in vars(otel_agentmon).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)       # submodules, e.g. otel_agentmon.testing
        and not isinstance(value, __future__._Feature)    # ``from __future__ import annotations``
    }
    assert public - set(otel_agentmon.__all__) == set()


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from otel_agentmon import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(otel_agentmon.__all__)


def test_public_callables_are_documented() -> None:
    undocumented = [name for name in otel_agentmon.__all__
                    if callable(getattr(otel_agentmon, name)) and not inspect.getdoc(getattr(otel_agentmon, name))]
    assert undocumented == []


def test_package_is_typed() -> None:
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_version_matches_the_installed_distribution() -> None:
    assert otel_agentmon.__version__ == metadata.version("otel_agentmon")


def test_pytest_plugin_is_registered() -> None:
    plugins = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert plugins.get("otel_agentmon") == "otel_agentmon.testing"


def test_testing_module_all_exists() -> None:
    assert sorted(testing.__all__) == list(testing.__all__)
    assert [name for name in testing.__all__ if not hasattr(testing, name)] == []



class _Outer:
    class Inner(Exception):
        pass


def test_error_type_is_the_qualified_class_name() -> None:
    assert otel_agentmon.error_type(ValueError()) == "ValueError"
    assert otel_agentmon.error_type(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert otel_agentmon.error_type(_Outer.Inner()) == f"{__name__}._Outer.Inner"
    assert otel_agentmon.error_type(asyncio.CancelledError()) == "asyncio.exceptions.CancelledError"


def test_decorators_preserve_metadata_and_function_kind() -> None:
    def plain(x: int) -> int:
        """Plain doc."""
        return x

    async def coro() -> None:
        """Coro doc."""

    def gen() -> Any:
        """Gen doc."""
        yield 1

    async def agen() -> Any:
        """Agen doc."""
        yield 1

    for fn, check in ((plain, inspect.isfunction), (coro, inspect.iscoroutinefunction),
                      (gen, inspect.isgeneratorfunction), (agen, inspect.isasyncgenfunction)):
        for factory in (otel_agentmon.agent("a"), otel_agentmon.tool("t"), otel_agentmon.task("k"),
                        otel_agentmon.workflow("w"), otel_agentmon.llm("m", provider="openai")):
            wrapped = factory(fn)
            assert wrapped.__name__ == fn.__name__
            assert wrapped.__doc__ == fn.__doc__
            assert wrapped.__wrapped__ is fn  # type: ignore[union-attr]  # functools.wraps sets __wrapped__ on every wrapper
            assert check(wrapped), (fn.__name__, factory)
