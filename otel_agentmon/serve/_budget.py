"""The request budget of ``agentmon serve``: bytes that requests being read and decoded may hold.

Every export request holds a ``Reservation`` from the one ``ByteBudget`` while it is read and
decoded: first its body as it arrives (inflated), then what decoding it can take at most
(``_decode.request_cost``), given back when it is answered. A request that would take the budget
past its capacity waits up to ``wait`` seconds for others to finish, then gets 503 with
``Retry-After`` (``Busy``); one that needs more than the whole budget gets 413 (``TooLarge``).
So under any number of concurrent requests, the memory they hold stays within the capacity.
"""

from __future__ import annotations

import threading
import time

from ._otlp import TooLarge


class Busy(Exception):
    """The budget stayed full for the whole wait (answered 503 with ``Retry-After``)."""


class ByteBudget:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self.in_use = 0  # bytes held by requests now
        self.peak = 0  # the most ever held at once
        self.busy = 0  # requests turned away (503) because the budget stayed full
        self.waiting = 0  # requests waiting for room now
        self._cond = threading.Condition()

    def reservation(self) -> Reservation:
        return Reservation(self)

    def take(self, need: int, wait: float) -> None:
        with self._cond:
            if self.in_use + need > self.capacity:
                deadline = time.monotonic() + wait
                self.waiting += 1
                try:
                    while self.in_use + need > self.capacity:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            self.busy += 1
                            raise Busy(f"request budget full ({self.in_use} of {self.capacity} bytes in use)")
                        self._cond.wait(left)
                finally:
                    self.waiting -= 1
            self.in_use += need
            self.peak = max(self.peak, self.in_use)

    def give(self, amount: int) -> None:
        if amount:
            with self._cond:
                self.in_use -= amount
                self._cond.notify_all()


class Reservation:
    """What one request holds of the budget; ``release()`` (or leaving the ``with``) gives it back."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self.held = 0

    def grow_to(self, total: int, wait: float) -> None:
        """Hold ``total`` bytes in all (no-op when already holding that much)."""
        need = total - self.held
        if need <= 0:
            return
        if total > self.budget.capacity:
            raise TooLarge(f"decoding this request takes up to {total} bytes, over the request budget of "
                           f"{self.budget.capacity} bytes (--max-request-memory-mb)")
        self.budget.take(need, wait)
        self.held = total

    def release(self) -> None:
        held, self.held = self.held, 0
        self.budget.give(held)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
