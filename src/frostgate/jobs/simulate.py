"""The simulation validator: replay a golden corpus through the engine and prove it holds.

The engine is a pure function of (event, policy, now), so its answers can be pinned: a
golden corpus (JSONL, one case a line) holds events with the decision a reviewer agreed
each must produce. Replaying it catches any change of behaviour, including ones no unit
test names (a reordered alias, a threshold off by one, a float that prints differently),
and proves determinism: the same case must encode to the same bytes on a second run and
in other processes with other hash seeds (set iteration order, caches and dict order
must never leak into a decision).

A case line::

    {"id": "...", "why": "...", "policy": "thresholds",   # optional, default policy if absent
     "now": "2025-06-01T12:00:00Z", "event": {...},
     "expected": {"decision": {...}} | {"error": {"error_code": "...", "reason": "..."}}}

``policy`` names a fixture policy ``policies/<name>.yaml`` next to the corpus file; the
fixtures reach what the default policy cannot (exact level boundaries, doctrine caps).
``expected`` is compared byte for byte in the form the service encodes (orjson), so a
type change (``1`` for ``1.0``) is a difference too.

Run as ``python -m frostgate.jobs.simulate CORPUS`` it prints each case's digest as JSON:
that is the other process the determinism check compares with.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

import orjson

from frostgate.engine import Policy, WindowState, evaluate, load_policy, normalize
from frostgate.errors import FrostGateError

__all__ = [
    "DEFAULT_POLICY",
    "Case",
    "CaseResult",
    "CorpusError",
    "Difference",
    "GoldenReport",
    "check_determinism",
    "check_golden",
    "coverage",
    "default_corpus_path",
    "digests",
    "load_corpus",
    "policy_for",
    "run_case",
]

#: The ``policy`` value of cases decided under the packaged default policy.
DEFAULT_POLICY: Final = "default"
#: Hash seeds of the extra processes the determinism check starts (two, so at least one
#: differs from this process's seed whatever it is).
CHILD_HASH_SEEDS: Final = ("1", "4242")
_CASE_KEYS: Final = frozenset({"id", "why", "policy", "now", "event", "expected", "windows"})
_ABSENT: Final = "<absent>"
_CHILD_TIMEOUT_S: Final = 120.0


class CorpusError(ValueError):
    """The corpus file is malformed (the message names the line); nothing was replayed."""


@dataclass(frozen=True, slots=True)
class Case:
    """One golden case: an event, the instant it is decided at, and the agreed outcome."""

    id: str
    why: str
    policy: str
    now: datetime
    event: Any
    expected: Mapping[str, Any]
    line: int
    # State of the stateful rules for this event (rule id -> count, armed): the explicit
    # input evaluate takes; absent, windowed rules do not fire.
    windows: Mapping[str, WindowState] | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    """One leaf that differs: a JSON path and the JSON text of each side."""

    path: str
    expected: str
    actual: str


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    actual: bytes
    differences: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass(frozen=True, slots=True)
class GoldenReport:
    corpus: Path
    results: tuple[CaseResult, ...]

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.ok)


def coverage(report: GoldenReport) -> dict[str, dict[str, int]]:
    """How many cases fired each rule (or were refused with each error code), by policy:
    the review's evidence that every rule and refusal is exercised."""
    out: dict[str, dict[str, int]] = {}
    for result in report.results:
        outcome = orjson.loads(result.actual)
        counts = out.setdefault(result.case.policy, {})
        if "error" in outcome:
            names = [f"error:{outcome['error']['error_code']}"]
        else:
            names = outcome["decision"]["rules_triggered"]
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return out


def default_corpus_path() -> Path:
    """The golden corpus shipped with the package (``frostgate simulate`` without --corpus)."""
    return Path(str(resources.files(__package__).joinpath("simulation/golden.jsonl")))


def _parse_now(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise CorpusError(f"{where}: now must be an ISO 8601 string")
    try:
        now = datetime.fromisoformat(value)
    except ValueError:
        raise CorpusError(f"{where}: now is not ISO 8601: {value!r}") from None
    if now.tzinfo is None:
        raise CorpusError(f"{where}: now needs a UTC offset (Z or +00:00)")
    return now


def _parse_case(raw: object, where: str, line: int) -> Case:
    if not isinstance(raw, dict):
        raise CorpusError(f"{where}: a case must be a JSON object")
    unknown = set(raw) - _CASE_KEYS
    if unknown:
        raise CorpusError(f"{where}: unknown key(s) {sorted(unknown)}")
    for key in ("id", "why", "now", "event", "expected"):
        if key not in raw:
            raise CorpusError(f"{where}: missing {key!r}")
    case_id, why, policy = raw["id"], raw["why"], raw.get("policy", DEFAULT_POLICY)
    if not (isinstance(case_id, str) and case_id and isinstance(why, str) and why):
        raise CorpusError(f"{where}: id and why must be non-empty strings")
    if not isinstance(policy, str) or not policy.isidentifier():
        raise CorpusError(f"{where}: policy must be a plain name, got {policy!r}")
    expected = raw["expected"]
    if not (
        isinstance(expected, dict) and len(expected) == 1 and set(expected) <= {"decision", "error"}
    ):
        raise CorpusError(f"{where}: expected must be {{'decision': ...}} or {{'error': ...}}")
    return Case(
        case_id,
        why,
        policy,
        _parse_now(raw["now"], where),
        raw["event"],
        expected,
        line,
        parse_windows(raw.get("windows"), where),
    )


def parse_windows(raw: object, where: str) -> dict[str, WindowState] | None:
    """``{"rule_id": {"count": n, "armed": bool}}`` into engine window states."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise CorpusError(f"{where}: windows must be an object")
    states: dict[str, WindowState] = {}
    for rule_id, state in raw.items():
        if (
            not isinstance(state, dict)
            or set(state) != {"count", "armed"}
            or type(state["count"]) is not int
            or not isinstance(state["armed"], bool)
        ):
            raise CorpusError(f"{where}: windows.{rule_id} must be {{count: int, armed: bool}}")
        states[rule_id] = WindowState(count=state["count"], armed=state["armed"])
    return states


def load_corpus(path: Path) -> tuple[Case, ...]:
    """Parse and validate a corpus file; raise CorpusError naming the first bad line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror}") from None
    cases: list[Case] = []
    seen: set[str] = set()
    for number, text in enumerate(data.splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            raw = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise CorpusError(f"{where}: not JSON: {exc}") from None
        case = _parse_case(raw, where, number)
        if case.id in seen:
            raise CorpusError(f"{where}: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise CorpusError(f"{path}: no cases")
    return tuple(cases)


def policy_for(name: str, corpus: Path, cache: dict[str, Policy]) -> Policy:
    """The policy a case names: the packaged default or a fixture next to the corpus."""
    policy = cache.get(name)
    if policy is None:
        path = None if name == DEFAULT_POLICY else corpus.parent / "policies" / f"{name}.yaml"
        try:
            policy = load_policy(path)
        except OSError as exc:
            raise CorpusError(
                f"fixture policy {name!r}: cannot read {path}: {exc.strerror}"
            ) from None
        cache[name] = policy
    return policy


def run_case(case: Case, policy: Policy) -> bytes:
    """The case's outcome encoded as the golden file stores it (orjson, insertion order)."""
    try:
        decision = evaluate(normalize(case.event), policy, now=case.now, windows=case.windows)
    except FrostGateError as exc:
        return orjson.dumps({"error": {"error_code": exc.code.name, "reason": str(exc)}})
    return orjson.dumps({"decision": decision.as_dict()})


def _leaves(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, orjson.dumps(value).decode()


def differences(expected: bytes, actual: bytes) -> tuple[Difference, ...]:
    """Leaf-by-leaf differences between two encoded outcomes (empty when byte-identical)."""
    if expected == actual:
        return ()
    left = dict(_leaves(orjson.loads(expected), ""))
    right = dict(_leaves(orjson.loads(actual), ""))
    paths = list(left) + [p for p in right if p not in left]
    found = [
        Difference(p, left.get(p, _ABSENT), right.get(p, _ABSENT))
        for p in paths
        if left.get(p) != right.get(p)
    ]
    # Same leaves, different bytes (key order): still a difference, at the root.
    return tuple(found) or (Difference("", "key order", "another key order"),)


def check_golden(path: Path) -> GoldenReport:
    """Replay every case and compare it with its golden outcome."""
    cases = load_corpus(path)
    policies: dict[str, Policy] = {}
    results = []
    for case in cases:
        actual = run_case(case, policy_for(case.policy, path, policies))
        expected = orjson.dumps(case.expected)
        results.append(CaseResult(case, actual, differences(expected, actual)))
    return GoldenReport(path, tuple(results))


def digests(path: Path) -> dict[str, str]:
    """SHA-256 of every case's encoded outcome, by case id (what processes compare)."""
    cases = load_corpus(path)
    policies: dict[str, Policy] = {}
    return {
        case.id: hashlib.sha256(run_case(case, policy_for(case.policy, path, policies))).hexdigest()
        for case in cases
    }


@dataclass(frozen=True, slots=True)
class DeterminismReport:
    """Per-run digests of the corpus: this process twice, then one child per hash seed."""

    runs: tuple[tuple[str, Mapping[str, str]], ...]
    mismatched: tuple[str, ...]  # case ids whose digest differs between any two runs

    @property
    def ok(self) -> bool:
        return not self.mismatched

    @property
    def corpus_digest(self) -> str:
        """One digest of the first run (id and digest per case, in order)."""
        first = self.runs[0][1]
        text = "".join(f"{case_id} {digest}\n" for case_id, digest in first.items())
        return hashlib.sha256(text.encode()).hexdigest()


def _start_child(path: Path, seed: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        [sys.executable, "-m", "frostgate.jobs.simulate", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _child_digests(proc: subprocess.Popen[bytes], seed: str) -> dict[str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=_CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"replay process (PYTHONHASHSEED={seed}) timed out") from None
    if proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"replay process (PYTHONHASHSEED={seed}) failed: {' '.join(tail)}")
    result = orjson.loads(stdout)
    if not isinstance(result, dict):
        raise RuntimeError("replay process printed something other than a digest map")
    return {str(k): str(v) for k, v in result.items()}


def check_determinism(path: Path, seeds: Sequence[str] = CHILD_HASH_SEEDS) -> DeterminismReport:
    """Replay the corpus twice here and once in a fresh process per hash seed (started
    first, so they run while this process replays); every case must encode to the same
    bytes (compared by SHA-256) in every run."""
    children = [(seed, _start_child(path, seed)) for seed in seeds]
    try:
        runs: list[tuple[str, Mapping[str, str]]] = [
            ("this process, run 1", digests(path)),
            ("this process, run 2", digests(path)),
        ]
        runs += [(f"process PYTHONHASHSEED={s}", _child_digests(p, s)) for s, p in children]
    finally:
        for _, proc in children:  # only if something above failed: never leave one running
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    first = runs[0][1]
    ids = list(first) + sorted({i for _, run in runs[1:] for i in run} - set(first))
    mismatched = tuple(i for i in ids if any(run.get(i) != first.get(i) for _, run in runs[1:]))
    return DeterminismReport(tuple(runs), mismatched)


def _child_main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m frostgate.jobs.simulate CORPUS\n")
        return 2
    sys.stdout.write(orjson.dumps(digests(Path(argv[0]))).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
