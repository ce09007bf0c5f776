"""Rounds of scenarios, each round in a freshly built world, with a JSON record.

The run passes only if it ran scenarios and every invariant of every scenario of every
round held; a round whose world cannot be built fails the run (the error is recorded),
it is never counted as passed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from frostgate.jobs.chaos.processes import OwnedProcessError
from frostgate.jobs.chaos.rig import DATABASES, RigError, open_rig
from frostgate.jobs.chaos.scenarios import SCENARIOS, Scenario, ScenarioResult, run_scenario

__all__ = ["ChaosReport", "run_chaos"]


@dataclass(slots=True)
class ChaosReport:
    evidence_dir: Path
    results: list[ScenarioResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.results) and not self.errors and all(r.passed for r in self.results)

    def as_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "seconds": round(self.seconds, 2),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "errors": self.errors,
            "scenarios": [
                {
                    "round": r.round,
                    "database": r.database,
                    "name": r.name,
                    "passed": r.passed,
                    "seconds": round(r.seconds, 2),
                    "sent": r.sent,
                    "acknowledged": r.acknowledged,
                    "refused": r.refused,
                    "unanswered": r.unanswered,
                    "invariants": [
                        {"name": i.name, "held": i.held, "detail": i.detail} for i in r.invariants
                    ],
                }
                for r in self.results
            ],
        }


async def run_chaos(
    evidence_dir: Path,
    *,
    rounds: int,
    duration: float,
    concurrency: int,
    scenarios: Sequence[Scenario] = SCENARIOS,
    databases: Sequence[str] = DATABASES,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> ChaosReport:
    """Run ``rounds`` rounds (``duration`` seconds of load per scenario); each round runs
    every scenario that applies on each of ``databases``, in a world of its own. Writes
    ``result.json`` into ``evidence_dir``."""
    report = ChaosReport(evidence_dir)
    started = time.monotonic()
    for number in range(1, rounds + 1):
        for database in databases:
            if not await _round(
                report, number, database, scenarios, duration, concurrency, on_result
            ):
                break
    report.seconds = time.monotonic() - started
    text = json.dumps(report.as_dict(), indent=2) + "\n"
    (evidence_dir / "result.json").write_text(text, encoding="utf-8")
    return report


async def _round(
    report: ChaosReport,
    number: int,
    database: str,
    scenarios: Sequence[Scenario],
    duration: float,
    concurrency: int,
    on_result: Callable[[ScenarioResult], None] | None,
) -> bool:
    """One round on one database; False if its world could not be built or broke."""
    try:
        rig = await open_rig(report.evidence_dir / f"round-{number}" / database, database)
    except (RigError, OwnedProcessError, OSError) as exc:
        report.errors.append(f"round {number} ({database}): could not build the world: {exc}")
        return False
    try:
        for scenario in scenarios:
            if database not in scenario.databases:
                continue
            result = await run_scenario(
                rig, scenario, round_number=number, duration=duration, concurrency=concurrency
            )
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    except (RigError, OwnedProcessError) as exc:
        report.errors.append(f"round {number} ({database}): {exc}")
        return False
    finally:
        await rig.close()
    return True
