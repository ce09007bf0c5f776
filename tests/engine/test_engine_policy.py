"""Policy loading: fingerprint, caching, and refusal of malformed documents."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import yaml

from frostgate.engine import Policy, PolicyError, load_policy, policy_from_document
from tests.engine.engine_policies import default_document

DEFAULT_YAML = resources.files("frostgate.engine").joinpath("policies/default.yaml").read_text()


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_policy_loads_with_version_and_hash() -> None:
    policy = load_policy()
    assert policy.version == "2026.4"
    assert len(policy.hash) == 64
    assert policy.hash == policy.hash.lower()
    int(policy.hash, 16)


def test_default_policy_is_read_once() -> None:
    assert load_policy() is load_policy()
    assert load_policy(None) is load_policy()


def test_hash_is_sha256_of_rfc8785_of_the_yaml_document() -> None:
    document = yaml.safe_load(DEFAULT_YAML)
    expected = hashlib.sha256(rfc8785.dumps(document)).hexdigest()
    policy = load_policy()
    assert policy.hash == expected
    assert policy.canonical_bytes == rfc8785.dumps(document)
    assert policy.document == document


def test_same_file_elsewhere_has_same_hash(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, DEFAULT_YAML)).hash == load_policy().hash


def test_hash_changes_when_the_yaml_changes(tmp_path: Path) -> None:
    changed = DEFAULT_YAML.replace("confidence: 0.92", "confidence: 0.93")
    assert changed != DEFAULT_YAML
    policy = load_policy(write(tmp_path, changed))
    assert policy.hash != load_policy().hash
    assert policy.hash == hashlib.sha256(rfc8785.dumps(yaml.safe_load(changed))).hexdigest()
    assert policy != load_policy()


def test_comments_and_layout_do_not_change_the_hash(tmp_path: Path) -> None:
    reformatted = "# a new comment\n" + DEFAULT_YAML.replace("\n\n", "\n\n# note\n")
    assert load_policy(write(tmp_path, reformatted)).hash == load_policy().hash


def test_explicit_path_is_reread(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_YAML)
    first = load_policy(path)
    path.write_text(DEFAULT_YAML.replace('version: "2026.4"', 'version: "2026.5"'))
    second = load_policy(path)
    assert (first.version, second.version) == ("2026.4", "2026.5")
    assert first.hash != second.hash


def test_document_is_a_copy() -> None:
    policy = load_policy()
    doc = policy.document
    doc["rules"].clear()
    doc["version"] = "evil"
    assert policy.document["rules"]
    assert policy.version == "2026.4"


def test_policy_equality_and_hash_follow_the_fingerprint() -> None:
    a = policy_from_document(default_document())
    assert a == load_policy()
    assert hash(a) == hash(load_policy())
    assert a != "not a policy"
    assert "2026.4" in repr(a)


def test_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "nope.yaml")


def test_malformed_yaml_names_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "version: '1'\nrules: [\n  - id: x\n", name="broken.yaml")
    with pytest.raises(PolicyError, match=r"broken\.yaml:3: not valid YAML") as info:
        load_policy(path)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["", "- a list\n", "just a string\n", "42\n"])
def test_non_mapping_document_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(PolicyError, match="mapping at the top level"):
        load_policy(write(tmp_path, text))


def test_yaml_only_types_are_refused_naming_the_path(tmp_path: Path) -> None:
    text = DEFAULT_YAML.replace("description: Baseline", "released: 2025-01-01\ndescription: B")
    with pytest.raises(PolicyError, match=r"policy\.released: date values are not allowed"):
        load_policy(write(tmp_path, text))


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    text = "version: !!python/object/apply:os.system ['true']\n"
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(write(tmp_path, text))


def _rule(doc: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in doc["rules"] if r["id"] == rule_id)


def _cond(doc: dict[str, Any], index: int) -> dict[str, Any]:
    cond: dict[str, Any] = _rule(doc, "brute_force")["when"]["all"][index]
    return cond


Mutation = Callable[[dict[str, Any]], None]

BAD_POLICIES: list[tuple[str, Mutation, str]] = [
    ("unknown top key", lambda d: d.update(extra=1), r"unknown top-level key\(s\) \['extra'\]"),
    ("no version", lambda d: d.pop("version"), "missing required key 'version'"),
    ("numeric version", lambda d: d.update(version=1.5), "version: must be a non-empty string"),
    ("no rules", lambda d: d.update(rules=[]), "rules: must be a non-empty list"),
    (
        "threshold order",
        lambda d: d["thresholds"].update(high=40),
        "thresholds: must increase strictly",
    ),
    (
        "threshold above max",
        lambda d: d["thresholds"].update(critical=101),
        r"thresholds\.critical: must be an integer in 1\.\.100",
    ),
    ("threshold missing", lambda d: d["thresholds"].pop("low"), "missing required key 'low'"),
    (
        "unknown threshold",
        lambda d: d["thresholds"].update(severe=90),
        r"unknown key\(s\) \['severe'\]",
    ),
    (
        "bool skew",
        lambda d: d.update(clock_skew_seconds=True),
        "clock_skew_seconds: must be an integer",
    ),
    (
        "anomaly out of range",
        lambda d: _rule(d, "brute_force").update(anomaly_score=1.5),
        r"rule 'brute_force'\.anomaly_score: must be a number in 0\.\.1",
    ),
    (
        "unknown rule key",
        lambda d: _rule(d, "brute_force").update(severity="high"),
        r"rule 'brute_force': unknown key\(s\) \['severity'\]",
    ),
    (
        "unknown field",
        lambda d: _cond(d, 1).update(field="failed"),
        r"rule 'brute_force'\.when\.all\[1\]\.field: unknown field 'failed'",
    ),
    (
        "unknown op",
        lambda d: _cond(d, 1).update(op="greater"),
        r"rule 'brute_force'\.when\.all\[1\]\.op: unknown op 'greater'",
    ),
    (
        "string bound",
        lambda d: _cond(d, 1).update(value="5"),
        r"rule 'brute_force'\.when\.all\[1\]\.value: gte takes a number",
    ),
    (
        "bool compared with int",
        lambda d: _cond(d, 1).update(op="eq", value=True),
        r"field 'failures' compares with an integer",
    ),
    (
        "gte on text",
        lambda d: _cond(d, 2).update(op="gte", value=1),
        r"gte needs a numeric field, not 'src_ip'",
    ),
    (
        "missing value",
        lambda d: _cond(d, 1).pop("value"),
        r"when\.all\[1\]: op 'gte' needs a value",
    ),
    (
        "upper-case event type",
        lambda d: _rule(d, "suspicious_llm_usage")["when"].update(value="Suspicious_LLM_Usage"),
        "'event_type' is lower-cased by normalization; use 'suspicious_llm_usage'",
    ),
    (
        "non-canonical ip",
        lambda d: _cond(d, 2).update(op="eq", value="2001:DB8::1"),
        "write the IP in canonical form '2001:db8::1'",
    ),
    (
        "two forms in one node",
        lambda d: _rule(d, "brute_force")["when"].update(any=[]),
        "needs exactly one of all, any, not, field",
    ),
    (
        "empty any",
        lambda d: _rule(d, "brute_force").update(when={"any": []}),
        r"when\.any: an empty any never holds",
    ),
    (
        "condition not a mapping",
        lambda d: _rule(d, "brute_force").update(when=["x"]),
        r"rule 'brute_force'\.when: a condition must be a mapping",
    ),
    (
        "duplicate id",
        lambda d: d["rules"].insert(1, copy.deepcopy(d["rules"][0])),
        "rule 'brute_force': duplicate rule id",
    ),
    (
        "bad id",
        lambda d: _rule(d, "brute_force").update(id="Brute Force"),
        r"rules\[0\]\.id: must match",
    ),
    (
        "rule not a mapping",
        lambda d: d["rules"].insert(0, "brute_force"),
        r"rules\[0\]: must be a mapping",
    ),
    (
        "unless_fired forward reference",
        lambda d: _rule(d, "brute_force").update(unless_fired=["suspicious_llm_usage"]),
        "'suspicious_llm_usage' is not an earlier rule",
    ),
    (
        "fallback not last",
        lambda d: d["rules"].append({"id": "late", "points": 1}),
        "rule 'late': comes after fallback rule 'default_allow'",
    ),
    (
        "unknown action",
        lambda d: _rule(d, "brute_force")["mitigation"].update(action="nuke"),
        r"mitigation\.action: 'nuke' has no entry in mitigations",
    ),
    (
        "target may be missing",
        lambda d: _rule(d, "brute_force")["when"]["all"].pop(2),
        "the rule can fire without 'src_ip'",
    ),
    (
        "target not text",
        lambda d: _rule(d, "brute_force")["mitigation"].update(target_field="failures"),
        "'failures' is not a text event field",
    ),
    (
        "template field",
        lambda d: _rule(d, "brute_force")["mitigation"].update(reason="from {payload}"),
        r"placeholder \{payload\} is not one of",
    ),
    (
        "template format spec",
        lambda d: _rule(d, "brute_force")["mitigation"].update(reason="{failures:>10}"),
        r"placeholder \{failures\} is not one of",
    ),
    (
        "template braces",
        lambda d: _rule(d, "brute_force")["mitigation"].update(reason="oops {"),
        "bad template",
    ),
    (
        "confidence",
        lambda d: _rule(d, "brute_force")["mitigation"].update(confidence=2),
        r"mitigation\.confidence: must be a number in 0\.\.1",
    ),
    (
        "ttl",
        lambda d: d["mitigations"]["block_ip"].update(ttl_seconds=0),
        r"mitigations\.block_ip\.ttl_seconds: must be an integer",
    ),
    (
        "persona case",
        lambda d: d["doctrine"]["personas"].update(Sentinel={"max_disruptive": 1}),
        "doctrine.personas.Sentinel: persona names are lower-case",
    ),
    (
        "classification case",
        lambda d: d["doctrine"]["personas"]["guardian"].update(classifications=["secret"]),
        "classifications: use upper case",
    ),
    (
        "doctrine key",
        lambda d: d["doctrine"].update(extra=True),
        r"doctrine: unknown key\(s\) \['extra'\]",
    ),
    (
        "auth types case",
        lambda d: d["auth_event_types"].append("Login"),
        "auth_event_types: .*must be lower-case",
    ),
    (
        "huge integer",
        lambda d: _rule(d, "brute_force").update(points=2**60),
        "cannot be canonicalized as JSON",
    ),
    (
        "exists on derived",
        lambda d: _cond(d, 0)["any"][0].update(op="exists"),
        "'auth_like' is always present",
    ),
    (
        "eq on list field",
        lambda d: _cond(d, 0)["any"][0].update(field="ecs_category", value="authentication"),
        "'ecs_category' is a list; use contains",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [pytest.param(m, msg, id=name) for name, m, msg in BAD_POLICIES],
)
def test_invalid_policy_is_refused_with_a_clear_message(mutate: Mutation, message: str) -> None:
    doc = copy.deepcopy(default_document())
    mutate(doc)
    with pytest.raises(PolicyError, match=message):
        policy_from_document(doc)


def test_invalid_policy_file_message_names_the_file(tmp_path: Path) -> None:
    text = DEFAULT_YAML.replace("op: gte, value: 5", "op: gte, value: five")
    line = 1 + DEFAULT_YAML[: DEFAULT_YAML.index("value: 5}")].count("\n")
    expected = rf"^{tmp_path}/bad\.yaml:{line}: rule 'brute_force'\.when\.all\[1\]\.value: "
    with pytest.raises(PolicyError, match=expected):
        load_policy(write(tmp_path, text, name="bad.yaml"))


def test_policy_constructor_accepts_a_valid_document() -> None:
    policy = Policy(default_document())
    assert policy.hash == load_policy().hash
