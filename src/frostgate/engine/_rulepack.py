"""Rule files: policies, rule packs and Sigma rules, loaded, validated and merged.

Three kinds of YAML file, told apart by their top-level keys:

* a **policy** (``policies/default.yaml``, ``FG_POLICY_PATH``): scores, thresholds,
  mitigation defaults, doctrine and rules;
* a **rule pack** (``pack: name``, ``version``, ``rules: [...]``): more rules in the
  policy's own rule language, merged into a policy;
* a **Sigma rule** (``detection:``): converted by :mod:`._sigma` into one rule.

Every file goes through the same gates, in order, each reporting ``file:line: reason``:
YAML (one document, no repeated keys, bounded size), JSON compatibility (what the
fingerprint can encode), the JSON Schema (every shape problem at once), then the
compiler's semantic checks. Packs and Sigma rules are merged *before* the policy's
fallback rules (a fallback fires only when nothing before it did, so it stays last), in
the order given; a rule id already defined is refused, never shadowed. The merged document
records the packs it took (``packs: [{name, version}]``) and is fingerprinted as a whole,
so every decision names the exact rule set that produced it.

Loading is all or nothing: :func:`load_policy` returns a complete compiled policy or raises
:class:`RuleFileError` listing the problems; nothing is half-applied, so a service given a
bad pack refuses to start (or keeps its running policy) with the reason.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

from ._conditions import PolicyError
from ._policy import Policy, check_json
from ._schema import schema_errors, schema_problems
from ._source import Path_, Problem, RuleFileError, YamlDoc, load_yaml, parse_where

__all__ = [
    "CheckResult",
    "RuleFileKind",
    "check_rule_files",
    "detect_kind",
    "load_policy",
    "policy_for_file",
]

RuleFileKind = Literal["policy", "rulepack", "sigma"]
_DEFAULT_NAME: Final = "default.yaml"
_SIGMA_KEYS: Final = frozenset({"detection", "correlation", "logsource"})


def detect_kind(data: object) -> RuleFileKind:
    """What a parsed rule file is, from its top-level keys."""
    if isinstance(data, Mapping):
        if "pack" in data:
            return "rulepack"
        if _SIGMA_KEYS & set(data):
            return "sigma"
    return "policy"


def _read(path: Path) -> YamlDoc:
    """Parse ``path`` (OSError if it cannot be read)."""
    return load_yaml(path.read_bytes(), str(path))


def _mapping_doc(doc: YamlDoc) -> Mapping[str, Any]:
    if not isinstance(doc.data, Mapping):
        raise RuleFileError([doc.problem((), "the document must be a mapping at the top level")])
    return doc.data


def _json_doc(doc: YamlDoc, root: str) -> Mapping[str, Any]:
    """The file's mapping, refusing what JSON (and so the fingerprint) cannot hold.

    Not for Sigma files: their ``date:`` is a YAML date, and only the converted rule (plain
    JSON data) enters the policy document.
    """
    data = _mapping_doc(doc)
    try:
        check_json(data, root)
    except PolicyError as exc:
        raise RuleFileError([doc.locate(exc)]) from None
    return data


def _policy_from_doc(doc: YamlDoc) -> Policy:
    data = _mapping_doc(doc)
    kind = detect_kind(data)
    if kind != "policy":
        raise RuleFileError(
            [doc.problem((), f"this is a {kind} file, not a policy; merge it into one as a pack")]
        )
    _json_doc(doc, "policy")
    problems = schema_problems(doc, "policy")
    if problems:
        raise RuleFileError(problems)
    try:
        return Policy(data)
    except PolicyError as exc:
        raise RuleFileError([doc.locate(exc)]) from None


@cache
def _default() -> tuple[Policy, YamlDoc]:
    data = resources.files(__package__).joinpath("policies/default.yaml").read_bytes()
    doc = load_yaml(data, _DEFAULT_NAME)
    return _policy_from_doc(doc), doc


# --------------------------------------------------------------------------- merging


@dataclass(frozen=True, slots=True)
class RuleSource:
    """The rules one file contributes, and how to point back into that file."""

    doc: YamlDoc
    kind: RuleFileKind
    name: str
    version: str
    rules: tuple[Mapping[str, Any], ...]
    # (index in rules, path inside that rule) -> path inside the file
    rule_path: Callable[[int, Path_], Path_]

    def problem(self, index: int, inner: Path_, message: str) -> Problem:
        return self.doc.problem(self.rule_path(index, inner), message)


def _pack_source(doc: YamlDoc) -> RuleSource:
    data = _json_doc(doc, "pack")
    problems = schema_problems(doc, "rulepack")
    if problems:
        raise RuleFileError(problems)
    return RuleSource(
        doc=doc,
        kind="rulepack",
        name=data["pack"],
        version=data["version"],
        rules=tuple(data["rules"]),
        rule_path=lambda i, inner: ("rules", i, *inner),
    )


def rule_source(doc: YamlDoc, base: Policy) -> RuleSource:
    """A rule pack or Sigma file as rules to merge into ``base`` (RuleFileError if bad)."""
    kind = detect_kind(doc.data)
    if kind == "rulepack":
        return _pack_source(doc)
    if kind == "sigma":
        from ._sigma import sigma_rule  # pySigma is imported only when a Sigma file is used

        rule, rule_path = sigma_rule(doc, base.document)
        return RuleSource(
            doc=doc,
            kind="sigma",
            name=rule["id"],
            version="sigma",
            rules=(rule,),
            rule_path=lambda _i, inner: rule_path(inner),
        )
    raise RuleFileError(
        [doc.problem((), "this is a policy, not a rule pack (a pack has 'pack:' and 'rules:')")]
    )


# Where each rule of a merged document came from: the base policy (index in its file) or
# a source (and index in it).
_Owner = tuple[YamlDoc, int] | tuple[RuleSource, int]


def merge(base: Policy, base_doc: YamlDoc, sources: Sequence[RuleSource]) -> Policy:
    """``base`` with the rules of ``sources`` inserted before its fallback rules."""
    document = base.document
    base_rules: list[Mapping[str, Any]] = document["rules"]
    cut = next((i for i, r in enumerate(base_rules) if r.get("fallback") is True), len(base_rules))
    defined: dict[str, str] = {r["id"]: base_doc.origin for r in base_rules}
    added: list[Mapping[str, Any]] = []
    owners: list[_Owner] = [(base_doc, i) for i in range(cut)]
    problems: list[Problem] = []
    for source in sources:
        for i, rule in enumerate(source.rules):
            rule_id = rule["id"]
            if rule_id in defined:
                problems.append(
                    source.problem(
                        i, ("id",), f"rule id {rule_id!r} is already defined in {defined[rule_id]}"
                    )
                )
                continue
            if rule.get("fallback") is True:
                problems.append(
                    source.problem(
                        i,
                        ("fallback",),
                        f"rule {rule_id!r}: a pack cannot add a fallback rule "
                        "(the policy's fallback stays last)",
                    )
                )
                continue
            defined[rule_id] = source.doc.origin
            added.append(copy.deepcopy(dict(rule)))
            owners.append((source, i))
    if problems:
        raise RuleFileError(problems)
    owners += [(base_doc, i) for i in range(cut, len(base_rules))]
    document["rules"] = [*base_rules[:cut], *added, *base_rules[cut:]]
    document["packs"] = [
        *document.get("packs", []),
        *({"name": s.name, "version": s.version} for s in sources),
    ]

    def locate(path: Path_, message: str) -> Problem:
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            owner, index = owners[path[1]]
            if isinstance(owner, RuleSource):
                return owner.problem(index, path[2:], message)
            return owner.problem(("rules", index, *path[2:]), message)
        return base_doc.problem(path, message)

    try:
        policy = Policy(document)
    except PolicyError as exc:
        message = str(exc)
        raise RuleFileError([locate(parse_where(message, document), message)]) from None
    errors = schema_errors(document, "policy")
    if errors:
        raise RuleFileError(sorted(locate(path, message) for path, message in errors))
    return policy


# --------------------------------------------------------------------------- public


def load_policy(path: Path | str | None = None, packs: Sequence[Path | str] = ()) -> Policy:
    """Load a policy YAML file (``None``: the packaged default) and merge ``packs`` into it.

    ``packs`` are rule-pack or Sigma files, merged in order before the policy's fallback
    rules. The default alone is read once per process and cached (it ships with the code);
    explicit paths are read every call, so a reload picks up edits. Raises OSError when a
    file cannot be read and :class:`RuleFileError` (a PolicyError, a ValueError) listing
    ``file:line: reason`` for every problem found; nothing is returned half-loaded.
    """
    if path is None:
        base, base_doc = _default()
    else:
        base_doc = _read(Path(path))
        base = _policy_from_doc(base_doc)
    if not packs:
        return base
    sources: list[RuleSource] = []
    problems: list[Problem] = []
    for pack in packs:
        try:
            sources.append(rule_source(_read(Path(pack)), base))
        except RuleFileError as exc:
            problems += exc.problems
    if problems:
        raise RuleFileError(problems)
    return merge(base, base_doc, sources)


def policy_for_file(
    path: Path | str, base: Path | str | None = None
) -> tuple[Policy, tuple[str, ...]]:
    """The policy a rule file means (itself if it is a policy, else ``base``, default the
    packaged policy, with it merged in) and the ids of the rules the file contributes."""
    doc = _read(Path(path))
    if detect_kind(doc.data) == "policy":
        policy = _policy_from_doc(doc)
        return policy, tuple(r["id"] for r in policy.document["rules"])
    base_ids = {r["id"] for r in load_policy(base).document["rules"]}
    policy = load_policy(base, packs=[path])
    return policy, tuple(r["id"] for r in policy.document["rules"] if r["id"] not in base_ids)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What ``frostgate rules check`` found in one file."""

    path: str
    kind: RuleFileKind | None  # None when the file could not be read or parsed
    rules: tuple[str, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_one(
    path: Path, base: Policy, base_doc: YamlDoc
) -> tuple[CheckResult, RuleSource | None]:
    origin = str(path)
    try:
        doc = _read(path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return CheckResult(origin, None, (), (Problem(origin, 1, f"cannot read: {reason}"),)), None
    kind: RuleFileKind | None = None
    try:
        _mapping_doc(doc)
        kind = detect_kind(doc.data)
        if kind == "policy":
            policy = _policy_from_doc(doc)
            ids = tuple(r["id"] for r in policy.document["rules"])
            return CheckResult(origin, kind, ids, ()), None
        source = rule_source(doc, base)
        merge(base, base_doc, [source])
    except RuleFileError as exc:
        return CheckResult(origin, kind, (), exc.problems), None
    ids = tuple(r["id"] for r in source.rules)
    return CheckResult(origin, kind, ids, ()), source


def check_rule_files(
    paths: Sequence[Path | str], base: Path | str | None = None
) -> tuple[list[CheckResult], list[Problem]]:
    """Validate each file (packs and Sigma rules against ``base``, default: the packaged
    policy), then the packs together as ``FG_RULE_PACKS`` would merge them.

    Returns one result per file and the problems of the combination (duplicate ids across
    files), which is checked only when every file passed on its own.
    """
    if base is None:
        base_policy, base_doc = _default()
    else:
        base_doc = _read(Path(base))
        base_policy = _policy_from_doc(base_doc)
    results: list[CheckResult] = []
    sources: list[RuleSource] = []
    for path in paths:
        result, source = _check_one(Path(path), base_policy, base_doc)
        results.append(result)
        if source is not None:
            sources.append(source)
    combined: list[Problem] = []
    if len(sources) > 1 and all(r.ok for r in results):
        try:
            merge(base_policy, base_doc, sources)
        except RuleFileError as exc:
            combined = list(exc.problems)
    return results, combined
