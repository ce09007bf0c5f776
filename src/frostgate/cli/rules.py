"""``frostgate rules``: validate rule files and see what they fire on, before deploying.

* ``frostgate rules check FILE...``: every policy, rule pack or Sigma file is loaded the
  way the service would load it (packs and Sigma rules merged into ``--policy``, default
  ``FG_POLICY_PATH`` or the packaged policy), then all packs together as
  ``FG_RULE_PACKS`` would merge them. One ``file:line: reason`` line per problem on
  stdout; exit 0 when every file is valid, 1 otherwise.
* ``frostgate rules test FILE --events events.jsonl``: decide each JSON line under the
  policy FILE makes (itself, or ``--policy`` with FILE merged in), in order, with a fresh
  in-memory window store so stateful rules count across the file, and show which rules
  fire (a table, or ``--json``). Each event is decided at its own ``timestamp`` (else at
  the time of the run). Exit 1 if FILE is invalid, 2 if the events cannot be read.

Also :func:`policy_problems`: what ``frostgate serve`` and ``frostgate config check`` say
when the configured policy or a configured pack is refused (the service does not start
with a half-loaded policy).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from frostgate.config import Settings, get_settings
from frostgate.decisions.windows import MemoryWindowStore
from frostgate.engine import (
    Decision,
    Policy,
    PolicyError,
    RuleFileError,
    check_rule_files,
    evaluate,
    load_policy,
    normalize,
    policy_for_file,
)
from frostgate.errors import ErrorCode, FrostGateError

__all__ = ["policy_problems", "rules_app"]

rules_app = typer.Typer(
    no_args_is_help=True, help="Validate rule files (policies, rule packs, Sigma) and try them."
)

_TENANT = "rules-test"


def policy_problems(settings: Settings) -> list[str]:
    """Why the configured policy plus ``FG_RULE_PACKS`` cannot be loaded (empty: it can)."""
    try:
        load_policy(settings.policy_path, settings.rule_pack_paths)
    except OSError as exc:
        return [f"policy: cannot read {exc.filename}: {exc.strerror or type(exc).__name__}"]
    except RuleFileError as exc:
        return [f"policy: {problem}" for problem in exc.problems]
    except PolicyError as exc:
        return [f"policy: {exc}"]
    return []


def _base(policy: Path | None) -> Path | None:
    return policy if policy is not None else get_settings().policy_path


def _write_json(data: object) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


@rules_app.command("check")
def check_files(
    files: list[Path] = typer.Argument(..., help="Policy, rule-pack or Sigma YAML files"),
    policy: Path = typer.Option(
        None, "--policy", help="Policy to merge packs into (default FG_POLICY_PATH or built-in)"
    ),
    json_output: bool = typer.Option(False, "--json", help="One JSON document on stdout"),
) -> None:
    """Validate rule files: one 'file:line: reason' per problem; exit 1 if any."""
    try:
        results, combined = check_rule_files(files, _base(policy))
    except RuleFileError as exc:  # the base policy itself is refused
        problems = [str(p) for p in exc.problems]
        if json_output:
            _write_json({"ok": False, "files": [], "problems": problems})
        else:
            sys.stdout.write("".join(f"{p}\n" for p in problems))
        raise typer.Exit(code=1) from None
    except OSError as exc:
        Console(stderr=True).print(
            f"error: cannot read the policy: {exc}", markup=False, soft_wrap=True
        )
        raise typer.Exit(code=2) from None
    ok = all(r.ok for r in results) and not combined
    if json_output:
        _write_json(
            {
                "ok": ok,
                "files": [
                    {
                        "path": r.path,
                        "kind": r.kind,
                        "rules": list(r.rules),
                        "problems": [
                            {"file": p.file, "line": p.line, "message": p.message}
                            for p in r.problems
                        ],
                    }
                    for r in results
                ],
                "problems": [
                    {"file": p.file, "line": p.line, "message": p.message} for p in combined
                ],
            }
        )
    else:
        lines: list[str] = []
        for r in results:
            if r.ok:
                lines.append(f"{r.path}: ok ({r.kind}, {len(r.rules)} rules)")
            lines += [str(p) for p in r.problems]
        lines += [str(p) for p in combined]
        sys.stdout.write("".join(f"{line}\n" for line in lines))
    if not ok:
        raise typer.Exit(code=1)


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    summary: str
    decision: Decision | None
    error: str | None


def _read_events(path: Path) -> list[tuple[int, Any]]:
    events: list[tuple[int, Any]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                events.append((number, orjson.loads(raw)))
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
    return events


def _summary(raw: Any) -> str:
    if not isinstance(raw, dict):
        return "-"
    parts = [f"{k}={raw[k]}" for k in ("event_type", "src_ip", "user") if k in raw]
    return " ".join(parts)[:60] or "-"


async def _decide_all(policy: Policy, events: list[tuple[int, Any]], now: datetime) -> list[_Row]:
    store = MemoryWindowStore()
    rows: list[_Row] = []
    for number, raw in events:
        try:
            if not isinstance(raw, dict):
                raise FrostGateError(ErrorCode.EVENT_INVALID, "event is not an object")
            event = normalize(raw)
        except FrostGateError as exc:
            rows.append(_Row(number, _summary(raw), None, f"refused: {exc.code.name}"))
            continue
        at = event.timestamp or now
        probes = policy.window_probes(event)
        event_id = event.event_id or f"line-{number}"
        windows = (await store.observe(_TENANT, event_id, probes, at)).states if probes else None
        rows.append(
            _Row(number, _summary(raw), evaluate(event, policy, now=at, windows=windows), None)
        )
    await store.close()
    return rows


def _row_json(row: _Row, own: frozenset[str]) -> dict[str, Any]:
    d = row.decision
    rules = list(d.rules_triggered) if d else []
    return {
        "line": row.line,
        "error": row.error,
        "rules_triggered": rules,
        "file_rules": [r for r in rules if r in own],
        "score": d.score if d else None,
        "threat_level": d.threat_level if d else None,
        "mitigations": [m.as_dict() for m in d.mitigations] if d else [],
    }


@rules_app.command("test")
def try_rules(
    file: Path = typer.Argument(..., help="Policy, rule-pack or Sigma YAML file"),
    events: Path = typer.Option(..., "--events", help="JSON Lines: one event body per line"),
    policy: Path = typer.Option(
        None, "--policy", help="Policy to merge a pack into (default FG_POLICY_PATH or built-in)"
    ),
    json_output: bool = typer.Option(False, "--json", help="One JSON document on stdout"),
) -> None:
    """Decide each event of a JSONL file under FILE and show which rules fire."""
    err = Console(stderr=True)
    base = _base(policy)
    try:
        candidate, own_ids = policy_for_file(file, base)
    except RuleFileError as exc:
        sys.stdout.write("".join(f"{p}\n" for p in exc.problems))
        raise typer.Exit(code=1) from None
    except OSError as exc:
        err.print(
            f"error: cannot read {exc.filename}: {exc.strerror}", markup=False, soft_wrap=True
        )
        raise typer.Exit(code=2) from None
    try:
        loaded = _read_events(events)
    except OSError as exc:
        err.print(
            f"error: cannot read {exc.filename}: {exc.strerror}", markup=False, soft_wrap=True
        )
        raise typer.Exit(code=2) from None
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(code=2) from None

    own = frozenset(own_ids)
    rows = asyncio.run(_decide_all(candidate, loaded, datetime.now(UTC)))
    fired = dict.fromkeys(own_ids, 0)
    for row in rows:
        for rule_id in row.decision.rules_triggered if row.decision else ():
            if rule_id in fired:
                fired[rule_id] += 1

    if json_output:
        _write_json(
            {
                "file": str(file),
                "policy_hash": candidate.hash,
                "events": [_row_json(row, own) for row in rows],
                "fired": fired,
            }
        )
        return
    out = Console()
    table = Table("line", "event", "rules fired", "score", "level", "mitigations")
    for row in rows:
        if row.decision is None:
            table.add_row(str(row.line), escape(row.summary), row.error or "", "-", "-", "-")
            continue
        d = row.decision
        rules = ", ".join(f"[bold]{r}[/bold]" if r in own else r for r in d.rules_triggered)
        mitigations = escape(", ".join(f"{m.action}:{m.target or '-'}" for m in d.mitigations))
        table.add_row(
            str(row.line),
            escape(row.summary),
            rules or "-",
            str(d.score),
            d.threat_level,
            mitigations or "-",
        )
    out.print(table)
    counts = ", ".join(f"{rule_id}={n}" for rule_id, n in fired.items()) or "none"
    out.print(
        f"{len(rows)} events; rules from {file} fired: {counts}", markup=False, soft_wrap=True
    )
