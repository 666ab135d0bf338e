"""Typed access to a finished span's (or log record's) attributes in tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class HasAttributes(Protocol):
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...


def span_attrs(item: HasAttributes) -> Mapping[str, Any]:
    """``item.attributes``; a test that reads them fails if there are none (as indexing None did)."""
    found = item.attributes
    assert found is not None, f"{item!r} has no attributes"
    return found
