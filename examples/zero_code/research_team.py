"""A team's own agent class, with no telemetry code in it.

``run.sh`` instruments it from the outside: ``run`` is an agent invocation (named after each
instance's ``name``), ``handle`` a task, and ``search`` / ``summarise`` are tools.
"""

from __future__ import annotations

import random
import time


class Researcher:
    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self._rng = random.Random(seed)

    def run(self, topics: list[str]) -> list[str]:
        return [self.handle(topic) for topic in topics]

    def handle(self, topic: str) -> str:
        hits = self.search(topic)
        return self.summarise(topic, hits)

    def search(self, topic: str) -> list[str]:
        time.sleep(self._rng.uniform(0.002, 0.01))
        return [f"{topic}-{i}" for i in range(3)]

    def summarise(self, topic: str, hits: list[str]) -> str:
        time.sleep(self._rng.uniform(0.001, 0.005))
        return f"{topic}: {len(hits)} sources"
