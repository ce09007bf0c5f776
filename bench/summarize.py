#!/usr/bin/env python3
"""Medians over several ``bench/run.py`` result files, as a Markdown table.

Usage: ``.venv/bin/python bench/summarize.py [--clean-only] [--include-profiled]
[--include-experiments] FILES`` (e.g. ``bench-results/2026*.json``). Runs made with
``--profile`` (py-spy overhead) or an experiment flag (``--gc-off``, ``--switch-interval``)
are skipped unless included.

Each figure is the median over the given runs; "x bare" is the median of the per-run
ratios (each ratio taken against the bare endpoint measured in the same run).
``--clean-only`` drops every measurement during which other processes used more CPU than
the run's ``--quiet-cores`` (flagged ``disturbed`` in the result file); a ratio is kept
only when both it and its same-run bare measurement are clean.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cpu_per_event(s: dict[str, Any]) -> float | None:
    if s["measured"].get("server_cpu_us_per_event") is not None:
        return float(s["measured"]["server_cpu_us_per_event"])
    # Older result files: server cores x measured seconds / events answered 2xx.
    run = s["wrk"]["measured"]
    cores = run["cpu"].get("server_cores")
    events = run["ok"] * s["events_per_request"]
    return cores * run["cpu"]["wall_s"] * 1e6 / events if cores is not None and events else None


def _disturbed(run: dict[str, Any], s: dict[str, Any]) -> bool:
    if "disturbed" in s["measured"]:
        return bool(s["measured"]["disturbed"])
    other = s["wrk"]["measured"]["cpu"].get("other_cores")
    return other is not None and other > run["config"].get("quiet_cores", 0.15)


def main(argv: list[str]) -> int:
    clean_only = "--clean-only" in argv
    include_profiled = "--include-profiled" in argv
    include_experiments = "--include-experiments" in argv
    given = [a for a in argv if not a.startswith("--")]
    if not given:
        print(__doc__, file=sys.stderr)
        return 2
    runs, paths = [], []
    for p in given:
        run = json.loads(Path(p).read_text())
        if run["config"].get("profile") and not include_profiled:
            print(f"skipping {Path(p).name}: a --profile run (py-spy overhead)", file=sys.stderr)
            continue
        experiment = run["config"].get("gc_off") or run["config"].get("switch_interval_s")
        if experiment and not include_experiments:
            print(
                f"skipping {Path(p).name}: an experiment (--gc-off/--switch-interval)",
                file=sys.stderr,
            )
            continue
        runs.append(run)
        paths.append(p)
    order: list[str] = []
    rows: dict[str, list[dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    dropped: dict[str, int] = {}
    for run in runs:
        bare_disturbed = {
            s["mode"]: _disturbed(run, s) for s in run["scenarios"] if s["server"] == "bare"
        }
        for s in run["scenarios"]:
            if clean_only and _disturbed(run, s):
                dropped[s["label"]] = dropped.get(s["label"], 0) + 1
                continue
            if clean_only and bare_disturbed.get(s["mode"]) and s["server"] != "bare":
                s = {**s, "measured": {**s["measured"], "ratio_to_bare": None}}
            if s["key"] not in rows:
                order.append(s["key"])
                rows[s["key"]] = []
                labels[s["key"]] = s["label"]
            rows[s["key"]].append(s)

    print(f"Runs: {len(runs)} ({', '.join(Path(p).name for p in paths)})\n")
    print(
        "| endpoint | requests/s | events/s | p50 ms | p99 ms | errors | server CPU µs/event "
        "| x bare | db rows ≥ 2xx | target | result |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|---|---|")
    for key in order:
        items = rows[key]
        n = len(items)
        m = [s["measured"] for s in items]
        persisted = [s["persisted"].get("ok") for s in items if s["persisted"]]
        verdicts = [x.get("pass") for x in m]
        if all(v is None for v in verdicts):
            result = "-"
        else:
            result = f"{sum(1 for v in verdicts if v)}/{len(verdicts)} runs pass"
            failed: dict[str, int] = {}
            for x in m:
                for check, ok in (x.get("checks") or {}).items():
                    if not ok:
                        failed[check] = failed.get(check, 0) + 1
            if failed:
                result += (
                    " (missed: " + ", ".join(f"{k} {n}/{len(m)}" for k, n in failed.items()) + ")"
                )
        print(
            "| "
            + " | ".join(
                [
                    f"{labels[key]} (n={n})",
                    _rate(_median([x["requests_per_s"] for x in m])),
                    _fmt(_median([x["events_per_s"] for x in m]), ",.0f"),
                    _fmt(_median([x["p50_ms"] for x in m]), ".2f"),
                    _fmt(_median([x["p99_ms"] for x in m]), ".2f"),
                    _fmt(_median([x["errors"] for x in m]), ",.0f"),
                    _fmt(_median([_cpu_per_event(s) for s in items]), ",.0f"),
                    _fmt(_median([x.get("ratio_to_bare") for x in m]), ".3f"),
                    "-"
                    if not persisted
                    else f"{sum(1 for p in persisted if p)}/{len(persisted)} runs",
                    m[0].get("target", "-"),
                    result,
                ]
            )
            + " |"
        )
    print()
    if clean_only:
        dropped_text = ", ".join(f"{k}: {v}" for k, v in dropped.items()) or "none"
        print(f"Disturbed measurements dropped: {dropped_text}\n")
    print("Per run (requests/s; p99 ms; CPU cores used by server / wrk / other processes):\n")
    for run, path in zip(runs, paths, strict=True):
        parts = []
        for s in run["scenarios"]:
            c = s["wrk"]["measured"]["cpu"]
            m = s["measured"]
            flag = " (disturbed)" if _disturbed(run, s) else ""
            parts.append(
                f"{s['label']}: {_rate(m['requests_per_s'])}; {m['p99_ms']:.2f}; "
                f"{c['server_cores']}/{c['wrk_cores']}/{c['other_cores']}{flag}"
            )
        print(f"- `{Path(path).name}` — " + " · ".join(parts))
        for s in run["scenarios"]:
            g = s.get("gc") or {}
            if "gen2" in g:
                print(
                    f"  - GC in {s['label']}: {g['total_ms']:,.0f} ms ({g['share_of_wall']:.1%} of "
                    f"the measured run); gen2 {g['gen2']['count']}x, median "
                    f"{g['gen2']['median_ms']} ms, max {g['gen2']['max_ms']} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
