"""An unmodified program: it knows nothing of OpenTelemetry or otel_agentmon.

Run it plainly (``python app.py``) or with telemetry, unchanged (see ``run.sh``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from research_team import Researcher

TOPICS = ["batteries", "solar", "wind", "tides"]


def main() -> None:
    team = [Researcher(f"researcher-{i}", seed=i) for i in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda r: r.run(TOPICS), team))
    print(f"{sum(len(r) for r in results)} summaries from {len(team)} researchers")


if __name__ == "__main__":
    main()
