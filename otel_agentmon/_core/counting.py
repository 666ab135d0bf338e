"""Thread-safe counters that cost one C call on the hot path."""

from __future__ import annotations

import itertools


def count_value(counter: itertools.count[int]) -> int:
    """How many times ``next()`` was called on ``counter``.

    itertools.count is the cheapest thread-safe counter in CPython (one C call, GIL-atomic); its
    repr is "count(N)" where N is the next value.
    """
    return int(repr(counter)[6:-1])
