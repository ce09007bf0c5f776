"""``frostgate simulate``: the simulation validator and the policy-change review.

* ``frostgate simulate [--corpus FILE]``: replay the golden corpus (the packaged one by
  default), print a readable diff for every case whose decision differs from its golden
  outcome, and check determinism across runs and processes. Exit 1 on any difference.
* ``frostgate simulate --policy FILE [--tenant T --limit N]``: decide the corpus (or the
  tenant's newest stored events, from ``FG_DB_URL``) again under a candidate policy and
  report how many decisions would change, by threat level and by rule. Exit 0: it is a
  report for a reviewer, not a verdict.

Exit 2 on a usage error or an unreadable corpus or policy. ``--json`` prints one JSON
document on stdout and nothing else there. There is deliberately no flag to skip the
determinism check: a gate that can be weakened by invocation is no gate (audit F8).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from frostgate.config import get_settings
from frostgate.engine import Policy, PolicyError, load_policy
from frostgate.jobs.policy_impact import (
    Impact,
    assess,
    corpus_replays,
    impact_json,
    stored_replays,
)
from frostgate.jobs.simulate import (
    CorpusError,
    DeterminismReport,
    GoldenReport,
    check_determinism,
    check_golden,
    coverage,
    default_corpus_path,
)
from frostgate.store import open_database

__all__ = ["simulate"]

_SHOWN_CHANGES = 20


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _usage(err: Console, message: str) -> typer.Exit:
    err.print(f"error: {message}", style="bold red", markup=False, highlight=False)
    return typer.Exit(code=2)


def _golden_json(
    report: GoldenReport, determinism: DeterminismReport | None, problem: str, seconds: float
) -> dict[str, Any]:
    return {
        "ok": not report.failed and determinism is not None and determinism.ok,
        "corpus": str(report.corpus),
        "cases": len(report.results),
        "passed": len(report.results) - len(report.failed),
        "failed": [
            {
                "id": r.case.id,
                "line": r.case.line,
                "why": r.case.why,
                "differences": [
                    {"path": d.path, "expected": d.expected, "actual": d.actual}
                    for d in r.differences
                ],
            }
            for r in report.failed
        ],
        "determinism": {
            "ok": determinism is not None and determinism.ok,
            "runs": [name for name, _ in determinism.runs] if determinism else [],
            "mismatched": list(determinism.mismatched) if determinism else [],
            "corpus_digest": determinism.corpus_digest if determinism else None,
            "problem": problem or None,
        },
        "coverage": coverage(report),
        "seconds": round(seconds, 3),
    }


def _print_golden(
    out: Console,
    report: GoldenReport,
    determinism: DeterminismReport | None,
    problem: str,
    seconds: float,
) -> None:
    for r in report.failed:
        table = Table("path", "expected (golden)", "actual", title_justify="left")
        table.title = f"✗ {r.case.id} (line {r.case.line}, policy {r.case.policy}): {r.case.why}"
        for d in r.differences:
            table.add_row(d.path or "(root)", d.expected, d.actual)
        out.print(table)
    cover = Table("policy", "rule or refusal", "cases", title="coverage")
    for policy, counts in coverage(report).items():
        for name, count in sorted(counts.items()):
            cover.add_row(policy, name, str(count))
    out.print(cover)
    summary = Table("check", "result", "detail", title="frostgate simulate")
    failed = len(report.failed)
    summary.add_row(
        "golden corpus",
        "[red]FAIL[/red]" if failed else "[green]ok[/green]",
        f"{len(report.results) - failed}/{len(report.results)} cases match ({report.corpus})",
    )
    if determinism is None:
        summary.add_row("determinism", "[red]FAIL[/red]", problem)
    else:
        detail = (
            f"{len(determinism.runs)} runs agree, corpus digest {determinism.corpus_digest[:16]}"
        )
        if not determinism.ok:
            detail = f"{len(determinism.mismatched)} case(s) differ between runs: " + ", ".join(
                determinism.mismatched[:10]
            )
        summary.add_row(
            "determinism", "[green]ok[/green]" if determinism.ok else "[red]FAIL[/red]", detail
        )
    summary.add_row("time", "", f"{seconds:.2f} s")
    out.print(summary)


def _run_golden(corpus: Path, json_output: bool, out: Console, err: Console) -> None:
    started = time.perf_counter()
    try:
        report = check_golden(corpus)
    except (CorpusError, PolicyError) as exc:
        raise _usage(err, str(exc)) from None
    determinism: DeterminismReport | None = None
    problem = ""
    try:
        determinism = check_determinism(corpus)
    except (RuntimeError, OSError, ValueError) as exc:  # a replay process failed
        problem = str(exc)
    seconds = time.perf_counter() - started
    if json_output:
        _print_json(_golden_json(report, determinism, problem, seconds))
    else:
        _print_golden(out, report, determinism, problem, seconds)
    if report.failed or determinism is None or not determinism.ok:
        raise typer.Exit(code=1)


def _print_impact(out: Console, impact: Impact) -> None:
    summary = Table("", "", title="policy change review", show_header=False)
    summary.add_row("replayed", f"{impact.replayed} decisions from {impact.source}")
    summary.add_row("candidate", f"{impact.policy_version} ({impact.policy_hash[:16]})")
    summary.add_row("changed", f"[bold]{len(impact.changes)}[/bold] of {impact.replayed}")
    summary.add_row("not comparable", f"{impact.skipped} (fixture-policy cases, refused events)")
    out.print(summary)
    levels = Table("threat level", "before", "after", "delta", title="by threat level")
    for level, before in impact.levels_before.items():
        after = impact.levels_after[level]
        levels.add_row(level, str(before), str(after), f"{after - before:+d}")
    out.print(levels)
    if impact.transitions:
        moves = Table("from", "to", "decisions", title="changed decisions by level")
        for (b, a), n in impact.transitions.items():
            moves.add_row(b, a, str(n))
        out.print(moves)
    rules = Table("rule", "fired before", "fired after", "gained", "lost", title="by rule")
    for name, r in impact.rules.items():
        rules.add_row(name, str(r.fired_before), str(r.fired_after), str(r.gained), str(r.lost))
    out.print(rules)
    if impact.changes:
        shown = impact.changes[:_SHOWN_CHANGES]
        title = f"changed decisions (first {len(shown)} of {len(impact.changes)}; --json: all)"
        changes = Table("case / event", "level", "what changed", title=title)
        for c in shown:
            what = ", ".join(c.fields)
            if c.rules_gained or c.rules_lost:
                what += f"; rules +{list(c.rules_gained)} -{list(c.rules_lost)}"
            changes.add_row(c.key, f"{c.before_level} → {c.after_level}", what)
        out.print(changes)


def simulate(
    corpus: Path = typer.Option(None, "--corpus", help="Golden JSONL (default: packaged corpus)"),
    policy: Path = typer.Option(
        None, "--policy", help="Candidate policy YAML: report what it would change"
    ),
    tenant: str = typer.Option(
        None, "--tenant", help="With --policy: replay this tenant's stored events (FG_DB_URL)"
    ),
    limit: int = typer.Option(
        1000, "--limit", min=1, max=1_000_000, help="With --tenant: newest N stored events"
    ),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable report on stdout"),
) -> None:
    """Replay the golden corpus (diff + determinism), or review a candidate policy."""
    out = Console()
    err = Console(stderr=True)
    if tenant is not None and policy is None:
        raise _usage(err, "--tenant needs --policy (stored events are replayed under a candidate)")
    if tenant is not None and corpus is not None:
        raise _usage(err, "give --corpus or --tenant, not both")
    path = corpus if corpus is not None else default_corpus_path()
    if policy is None:
        _run_golden(path, json_output, out, err)
        return
    try:
        candidate = load_policy(policy)
        if tenant is not None:
            db = open_database(get_settings().database_url)
            try:
                replays, skipped = stored_replays(db, tenant, candidate, limit=limit)
            finally:
                db.dispose()
            source = f"tenant {tenant} (newest {limit} stored)"
        else:
            replays, skipped = corpus_replays(path, candidate)
            source = str(path)
    except (PolicyError, CorpusError) as exc:
        raise _usage(err, str(exc)) from None
    except OSError as exc:
        raise _usage(err, f"cannot read {exc.filename}: {exc.strerror}") from None
    impact = assess(replays, source=source, candidate=candidate, skipped=skipped)
    warnings = _warnings(candidate)
    if json_output:
        _print_json({**impact_json(impact), "warnings": warnings})
        return
    _print_impact(out, impact)
    for warning in warnings:
        err.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)


def _warnings(candidate: Policy) -> list[str]:
    """Review hints: a changed document under an unchanged version is ambiguous in every
    decision that names only the version (the hash still tells them apart)."""
    current = load_policy()
    if candidate.version == current.version and candidate.hash != current.hash:
        return [
            f"the candidate differs from the packaged policy but keeps version "
            f"{current.version!r}: bump 'version' with every semantic change"
        ]
    return []
