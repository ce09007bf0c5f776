"""The decision engine: normalize an event, evaluate it under a policy, explain why.

Pure and deterministic: nothing here does I/O at evaluation time or reads the clock
(``now`` is an argument), so the same event under the same policy at the same instant
always yields the same decision, byte for byte once encoded. The policy is data
(``policies/default.yaml``) with a fingerprint (SHA-256 over its RFC 8785 form) that every
decision carries.

    event = normalize(body)                       # FrostGateError on bad input
    decision = evaluate(event, load_policy(), now=datetime.now(UTC))
    decision.as_dict()                            # the JSON-ready decision body

Rule files (policies, rule packs, Sigma rules) are loaded by ``load_policy(path, packs)``:
YAML, JSON Schema and compiler checks, each problem reported as ``file:line: reason``
(:class:`RuleFileError`); packs merge before the fallback rules, all or nothing.
"""

from __future__ import annotations

from ._conditions import PolicyError
from ._evaluate import evaluate
from ._model import (
    THREAT_LEVELS,
    Decision,
    Event,
    Mitigation,
    ThreatLevel,
    TieD,
    WindowProbe,
    WindowState,
)
from ._normalize import normalize
from ._policy import Policy, policy_from_document
from ._rulepack import CheckResult, check_rule_files, detect_kind, load_policy, policy_for_file
from ._source import Problem, RuleFileError

__all__ = [
    "THREAT_LEVELS",
    "CheckResult",
    "Decision",
    "Event",
    "Mitigation",
    "Policy",
    "PolicyError",
    "Problem",
    "RuleFileError",
    "ThreatLevel",
    "TieD",
    "WindowProbe",
    "WindowState",
    "check_rule_files",
    "detect_kind",
    "evaluate",
    "load_policy",
    "normalize",
    "policy_for_file",
    "policy_from_document",
]
