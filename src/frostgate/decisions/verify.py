"""Re-deriving a tenant's decision chain from stored rows (``/v1/forensics/chain/verify``).

Each row's ledger entry is rebuilt from its columns, re-hashed, and checked against the
stored leaf hash, the previous row's chain hash and its own chain hash; the request and
response hashes are checked against the stored bytes, and the ``actionable`` and
``changed`` filter columns against the entry's actions and diff; the sequence must have
no gap; a whole-chain check also compares the end with the ledger head. Rows are
streamed in keyset chunks, never loaded all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from frostgate.ledger import GENESIS, chain_hash, entry_leaf_hash
from frostgate.store.entries import decision_entry, decision_flags

__all__ = ["ChainReport", "verify_chain"]


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_index: int | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_index": self.first_bad_index,
            "reason": self.reason,
        }


EntryOf = Callable[[Mapping[str, Any]], dict[str, Any]]


def _decision_row_problem(row: Mapping[str, Any], entry: Mapping[str, Any]) -> str | None:
    """What of the row lies outside its entry and does not agree with it."""
    # decision_entry() hashed the stored request and response bytes already.
    if entry["request_sha256"] != row["request_sha256"]:
        return "request bytes do not match their hash"
    if entry["response_sha256"] != row["response_sha256"]:
        return "response bytes do not match their hash"
    actionable, changed = decision_flags(entry["actions"], entry["diff"])
    if bool(row["actionable"]) != actionable:
        return "actionable flag does not match the entry's actions"
    if bool(row["changed"]) != changed:
        return "changed flag does not match the entry's diff"
    return None


def _row_problem(row: dict[str, Any], expected_prev: bytes, entry_of: EntryOf) -> str | None:
    entry = entry_of(row)
    if entry_of is decision_entry:
        problem = _decision_row_problem(row, entry)
        if problem is not None:
            return problem
    leaf = entry_leaf_hash(entry)
    if leaf.hex() != row["leaf_hash"]:
        return "leaf hash does not match the stored row"
    if row["prev_chain_hash"] != expected_prev.hex():
        return "previous chain hash does not link to the prior entry"
    if chain_hash(expected_prev, leaf).hex() != row["chain_hash"]:
        return "chain hash does not match"
    return None


def verify_chain(
    rows: Iterable[dict[str, Any]],
    *,
    start: int,
    start_prev_chain: bytes | None,
    head: tuple[int, str] | None,
    entry_of: EntryOf = decision_entry,
) -> ChainReport:
    """Verify rows ``start..`` in order.

    ``start_prev_chain`` is the chain hash before ``start`` (GENESIS for 0; for a range
    it is taken from the first row itself, which is then trusted as an anchor).
    ``head`` (size, chain_hash) is checked at the end when the range runs to the tip.
    """
    expected_index = start
    expected_prev = GENESIS if start == 0 else start_prev_chain
    checked = 0
    for row in rows:
        if row["seq"] != expected_index:
            return ChainReport(False, checked, expected_index, "entry missing from the sequence")
        if expected_prev is None:
            expected_prev = bytes.fromhex(row["prev_chain_hash"])
        problem = _row_problem(row, expected_prev, entry_of)
        if problem is not None:
            return ChainReport(False, checked, expected_index, problem)
        expected_prev = bytes.fromhex(row["chain_hash"])
        expected_index += 1
        checked += 1
    if head is not None:
        size, head_chain = head
        if size != expected_index:
            return ChainReport(
                False, checked, expected_index, "ledger head size differs from stored rows"
            )
        if expected_prev is not None and checked and head_chain != expected_prev.hex():
            return ChainReport(
                False, checked, size - 1, "ledger head does not match the last entry"
            )
    return ChainReport(True, checked, None, None)
