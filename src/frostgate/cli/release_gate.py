"""``frostgate release-gate`` and ``frostgate ci-checks``: run the gate, print one table.

``release-gate`` runs every declared check (:mod:`frostgate.jobs.release_gate`) and has
no option that selects, skips or softens one (audit F8); it exits 0 only when every
check passed. ``ci-checks`` runs the fixed fast subset that ``.ci/run`` adds after
``make lint`` and ``make test``; it is not a release gate and says so in its table title.
Both run from the project root (where ``pyproject.toml`` is) and keep each check's output
under ``var/release-gate/<UTC time>/`` or ``var/ci-checks/<UTC time>/``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from frostgate.jobs.release_gate import (
    LOCAL_POSTGRES,
    Check,
    CheckResult,
    GateReport,
    ci_checks,
    declared_checks,
    run_gate,
)

__all__ = ["ci_checks_command", "release_gate", "report_table"]

_err = Console(stderr=True)
_out = Console()


def report_table(report: GateReport, root: Path, title: str) -> Table:
    """One row per check: check, result, time, evidence file (in the run's evidence
    directory, named in the caption relative to ``root``)."""
    verdict = "PASSED" if report.passed else "FAILED"
    folder = report.evidence_dir
    shown = folder.relative_to(root) if folder.is_relative_to(root) else folder
    table = Table(
        title=f"{title}: {verdict} in {report.seconds:.1f} s", caption=f"evidence in {shown}/"
    )
    table.add_column("check", no_wrap=True)
    table.add_column("result")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("evidence", no_wrap=True)
    for r in report.results:
        result = "[green]PASS[/green]" if r.passed else f"[red]FAIL[/red] {r.summary}"
        evidence = (
            r.evidence.relative_to(folder) if r.evidence.is_relative_to(folder) else r.evidence
        )
        table.add_row(r.name, result, f"{r.seconds:.1f} s", str(evidence))
    return table


def _project_root() -> Path:
    root = Path.cwd()
    if not (root / "pyproject.toml").is_file() or not (root / "tests").is_dir():
        _err.print("[red]error:[/red] run this from the FrostGate project root")
        raise typer.Exit(code=2)
    return root


def _run(title: str, folder: str, checks: Callable[[Path, Path], tuple[Check, ...]]) -> None:
    root = _project_root()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    evidence_dir = root / "var" / folder / stamp
    selected = checks(root, evidence_dir)
    _err.print(f"{title}: {len(selected)} checks, evidence in {evidence_dir.relative_to(root)}")

    def progress(result: CheckResult) -> None:
        mark = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
        _err.print(f"  {mark} {result.name} ({result.seconds:.1f} s)")

    report = run_gate(selected, cwd=root, evidence_dir=evidence_dir, on_result=progress)
    _out.print(report_table(report, root, title))
    if not report.passed:
        raise typer.Exit(code=1)


def release_gate(
    postgres_url: str = typer.Option(
        LOCAL_POSTGRES, "--postgres-url", help="The PostgreSQL server the suite runs against"
    ),
) -> None:
    """Run every release check (none can be skipped) and print one table; exit 1 on any
    failure."""
    if not postgres_url.startswith(("postgresql://", "postgres://")):
        raise typer.BadParameter("use a postgresql:// URL", param_hint="--postgres-url")
    _run(
        "release gate",
        "release-gate",
        lambda root, evidence: declared_checks(root, evidence, postgres_url=postgres_url),
    )


def ci_checks_command() -> None:
    """Run CI's fast subset of the gate (route inventory, lock, bandit, egress only,
    forwarding headers); ``make lint`` and ``make test`` run the rest. Not a release gate."""
    _run("ci checks (not a release gate)", "ci-checks", ci_checks)
