"""Properties of the rule-file loader (issue 7, part 4): whatever a file holds, loading it
as a policy or as a rule pack gives a policy or a :class:`RuleFileError`, never another
exception (a crash would take the service's reload or ``frostgate rules check`` down with
a traceback instead of ``file:line: reason``).

Inputs: arbitrary bytes and text; YAML built from the words rule files use; and the
shipped default policy with one value somewhere replaced, removed or retyped, which
reaches deep into the schema and the compiler. Everything runs the real loader on files.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frostgate.engine import Policy, RuleFileError, load_policy
from tests.engine.engine_policies import default_document

WORDS = [
    "pack", "version", "rules", "id", "points", "when", "field", "op", "value", "all",
    "any", "not", "thresholds", "low", "high", "actions", "window", "seconds", "count",
    "group_by", "title", "logsource", "detection", "selection", "condition", "product",
    "event_type", "src_ip", "failures", "regex", "eq", "in", "gte", "contains", "cidr",
    "max_score", "fallback", "mitigation", "ttl_seconds", "doctrine", "persona",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from([*WORDS, "(a+)+$", "1 of selection*", "203.0.113.0/24", "2026-01-01"])
)
keys = st.sampled_from(WORDS) | st.text(max_size=6)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)
DEFAULT = default_document()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


PATHS = [p for p in _paths(DEFAULT) if p]


@st.composite
def damaged_default(draw: st.DrawFn) -> Any:
    """The default policy with one node replaced by a generated value, or removed."""
    doc = copy.deepcopy(DEFAULT)
    path = draw(st.sampled_from(PATHS))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(documents)
    return doc


def _outcome(policy: Path | None, packs: list[Path]) -> Policy | RuleFileError:
    try:
        return load_policy(policy, packs)
    except RuleFileError as error:  # the one documented refusal; anything else propagates
        return error


def _load_every_way(path: Path) -> None:
    for policy, packs in ((path, []), (None, [path])):
        outcome = _outcome(policy, packs)
        if isinstance(outcome, RuleFileError):
            assert outcome.problems, "a refusal names at least one problem"
            assert all(p.file == str(path) and p.line >= 1 for p in outcome.problems)


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_arbitrary_bytes_load_or_are_refused_cleanly(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(data)
    _load_every_way(path)


@SETTINGS
@given(doc=documents)
def test_arbitrary_yaml_documents_load_or_are_refused_cleanly(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    _load_every_way(path)


@SETTINGS
@given(doc=damaged_default())
def test_a_damaged_default_policy_loads_or_is_refused_cleanly(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    _load_every_way(path)


@SETTINGS
@given(rules=st.lists(documents, min_size=1, max_size=3), sigma=st.booleans())
def test_arbitrary_packs_and_sigma_rules_load_or_are_refused_cleanly(
    tmp_path: Path, rules: list[Any], sigma: bool
) -> None:
    if sigma:
        doc: dict[str, Any] = {
            "title": "t",
            "id": "5b1e3c1a-0000-4000-8000-000000000000",
            "logsource": {"product": "linux"},
            "detection": {"selection": rules[0], "condition": "selection"},
        }
    else:
        doc = {"pack": "p", "version": "1", "rules": rules}
    path = tmp_path / "pack.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    _load_every_way(path)
