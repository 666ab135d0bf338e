"""Polling with a bounded deadline, for tests that wait on background threads."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> bool:
    """True as soon as ``predicate()`` is truthy; its last value's truth after ``timeout`` s.

    The timeout bounds a wait for something that must happen, not how fast it happens: it is
    generous because a loaded 2-core CI box can stall a background thread for seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
