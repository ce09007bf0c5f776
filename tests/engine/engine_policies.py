"""Helpers shared by the engine tests: build policy variants from the default document."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from frostgate.engine import Policy, load_policy, policy_from_document

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def default_document() -> dict[str, Any]:
    return load_policy().document


def variant(mutate: Callable[[dict[str, Any]], None]) -> Policy:
    """The default policy with ``mutate`` applied to a copy of its document."""
    doc = copy.deepcopy(default_document())
    mutate(doc)
    return policy_from_document(doc)


def with_rules(*rules: dict[str, Any]) -> Policy:
    """The default policy's settings with exactly these rules."""

    def set_rules(doc: dict[str, Any]) -> None:
        doc["rules"] = list(rules)

    return variant(set_rules)


def points_rule(points: int, rule_id: str = "probe") -> dict[str, Any]:
    return {
        "id": rule_id,
        "points": points,
        "when": {"field": "event_type", "op": "eq", "value": rule_id},
    }
