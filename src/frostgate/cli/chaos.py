"""``frostgate chaos``: run the chaos scenarios and print every invariant in one table.

Every scenario runs in every round; there is no option that selects, skips or softens
one (audit F8). Exit 0 only when every invariant of every scenario of every round held.
Evidence (the service's log per round, PostgreSQL's and Redis's logs, ``result.json``)
goes under ``--evidence-dir`` (default ``var/chaos/<UTC time>/``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from frostgate.jobs.chaos import ChaosReport, ScenarioResult, run_chaos

__all__ = ["chaos", "report_table"]


def report_table(report: ChaosReport) -> Table:
    """One row per invariant of each scenario: round, scenario, load, invariant, verdict."""
    verdict = "PASSED" if report.passed else "FAILED"
    table = Table(
        title=f"frostgate chaos: {verdict} in {report.seconds:.1f} s",
        caption=f"evidence in {report.evidence_dir}/",
    )
    for column in (
        "round",
        "database",
        "scenario",
        "time",
        "events (2xx / sent)",
        "invariant",
        "result",
    ):
        table.add_column(column)
    for r in report.results:
        for number, inv in enumerate(r.invariants):
            first = number == 0
            table.add_row(
                str(r.round) if first else "",
                r.database if first else "",
                r.name if first else "",
                f"{r.seconds:.1f} s" if first else "",
                f"{r.acknowledged} / {r.sent}" if first else "",
                inv.name,
                "[green]held[/green] " + inv.detail
                if inv.held
                else "[red]BROKEN[/red] " + inv.detail,
            )
        table.add_section()
    return table


def chaos(
    rounds: int = typer.Option(1, "--rounds", min=1, max=20, help="Rounds of every scenario"),
    duration: float = typer.Option(
        8.0, "--duration", min=2.0, max=600.0, help="Seconds of load per scenario"
    ),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=64, help="Concurrent sensors"),
    evidence_dir: Path = typer.Option(
        None, "--evidence-dir", help="Where logs and result.json go (default var/chaos/<time>)"
    ),
) -> None:
    """Inject real faults under load into servers this run owns; check the invariants."""
    err = Console(stderr=True)
    folder = evidence_dir or Path("var/chaos") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def progress(result: ScenarioResult) -> None:
        mark = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
        err.print(
            f"  {mark} round {result.round} {result.database} {result.name}"
            f" ({result.seconds:.1f} s)"
        )

    err.print(f"chaos: {rounds} round(s), evidence in {folder}")
    report = asyncio.run(
        run_chaos(
            folder, rounds=rounds, duration=duration, concurrency=concurrency, on_result=progress
        )
    )
    Console().print(report_table(report))
    for error in report.errors:
        err.print(f"[red]error:[/red] {error}", highlight=False)
    if not report.passed:
        raise typer.Exit(code=1)
