"""Polling with a bounded deadline, for tests that wait on background threads."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 3.0) -> bool:
    """True as soon as ``predicate()`` is truthy; its last value's truth after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
