"""StreamCheck on hand-made API answers: every way a served stream can be wrong is named.

The pages are built with the ledger primitives exactly as the API serves them, then
altered one way each; the served-instance tests (``test_remote_verify.py``) cover the
same checks end to end.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from frostgate.decisions.stream_check import StreamCheck, StreamFailure
from frostgate.ledger import (
    GENESIS,
    MemoryTree,
    chain_hash,
    entry_leaf_hash,
    format_checkpoint,
    generate_signing_key,
    sign_note,
)
from frostgate.ledger.note import Signer, Verifier

NAME = "decisions/acme"
ORIGIN = f"frostgate.test/{NAME}"


def make(
    n: int, sizes: tuple[int, ...]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Signer]:
    skey, _ = generate_signing_key("frostgate.test")
    signer = Signer.from_skey(skey)
    tree, prev, items = MemoryTree(), GENESIS, []
    for i in range(n):
        entry = {"v": 1, "stream": NAME, "index": i, "score": i % 9, "ip": f"203.0.113.{i}"}
        leaf = entry_leaf_hash(entry)
        prev = chain_hash(prev, leaf)
        tree.append(leaf)
        items.append(
            {"index": i, "entry": entry, "leaf_hash": leaf.hex(), "chain_hash": prev.hex()}
        )
    checkpoints = [
        {
            "size": s,
            "root_hash": tree.root(s).hex(),
            "note": sign_note(format_checkpoint(ORIGIN, s, tree.root(s)), signer),
        }
        for s in sizes
    ]
    return items, checkpoints, signer


ITEMS, CHECKPOINTS, SIGNER = make(40, (10, 25, 30))
VERIFIER = SIGNER.verifier()


def run(
    items: list[dict[str, Any]] = ITEMS,
    checkpoints: list[dict[str, Any]] = CHECKPOINTS,
    verifier: Verifier = VERIFIER,
    page: int = 16,
) -> StreamCheck:
    check = StreamCheck(NAME, ORIGIN, verifier)
    check.add_checkpoints(checkpoints)
    for start in range(0, len(items), page):
        check.add_entries(items[start : start + page])
    check.finish()
    return check


def failure(**kwargs: Any) -> StreamFailure:
    with pytest.raises(StreamFailure) as err:
        run(**kwargs)
    assert "Traceback" not in err.value.reason
    return err.value


def altered(index: int, **changes: Any) -> list[dict[str, Any]]:
    items = copy.deepcopy(ITEMS)
    for key, value in changes.items():
        if key.startswith("entry_"):
            items[index]["entry"][key[6:]] = value
        else:
            items[index][key] = value
    return items


def test_a_good_stream_in_any_page_size() -> None:
    for page in (1, 7, 16, 1000):
        check = run(page=page)
        assert check.entries == 40
        assert check.newest_size == 30


def test_a_changed_entry_breaks_the_chain_at_its_index() -> None:
    # The server recomputes leaf_hash from what it stores; the chain was committed.
    items = altered(13, entry_score=99)
    items[13]["leaf_hash"] = entry_leaf_hash(items[13]["entry"]).hex()
    err = failure(items=items)
    assert err.index == 13
    assert "chain" in err.reason


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"leaf_hash": "00" * 32}, "leaf_hash"),
        ({"leaf_hash": ("00" * 32).upper()}, "leaf_hash"),
        ({"chain_hash": "ab" * 32}, "chain"),
        ({"entry_index": 99}, "says it is entry 99"),
        ({"entry_stream": "decisions/globex"}, "belongs to stream"),
        ({"entry_score": 1.5}, "leaf_hash"),
        ({"entry_score": 2**60}, "RFC 8785"),
    ],
)
def test_each_alteration_is_named_with_its_index(changes: dict[str, Any], words: str) -> None:
    err = failure(items=altered(21, **changes))
    assert err.index == 21
    assert words in err.reason


def test_malformed_pages() -> None:
    items = copy.deepcopy(ITEMS)
    del items[5]["chain_hash"]
    assert failure(items=items).index == 0  # the page starting at 0 is refused whole
    assert "exactly index" in failure(items=[*ITEMS[:3], "x", *ITEMS[4:]]).reason  # type: ignore[list-item]
    gap = failure(items=ITEMS[:8] + ITEMS[9:])
    assert gap.index == 8
    not_object = altered(2)
    not_object[2]["entry"] = [1, 2]
    assert failure(items=not_object).index == 2
    with pytest.raises(StreamFailure):
        StreamCheck(NAME, ORIGIN, SIGNER.verifier()).add_entries({"entries": []})


def test_a_missing_tail_is_named_against_the_checkpoint() -> None:
    err = failure(items=ITEMS[:27])
    assert err.index == 27
    assert "missing" in err.reason


def test_checkpoint_problems() -> None:
    _, other_key = generate_signing_key("frostgate.test")
    assert "not signed by any known key" in failure(verifier=Verifier.from_vkey(other_key)).reason
    swapped = [CHECKPOINTS[1], CHECKPOINTS[0], CHECKPOINTS[2]]
    assert "strictly increasing" in failure(checkpoints=swapped).reason
    wrong_root = copy.deepcopy(CHECKPOINTS)
    wrong_root[1]["root_hash"] = "00" * 32
    assert "differs from its signed note" in failure(checkpoints=wrong_root).reason
    wrong_size = copy.deepcopy(CHECKPOINTS)
    wrong_size[1]["size"] = 26
    assert "differs from its signed note" in failure(checkpoints=wrong_size).reason
    other_origin = [
        {
            **cp,
            "note": sign_note(format_checkpoint("frostgate.test/x", cp["size"], bytes(32)), SIGNER),
        }
        for cp in CHECKPOINTS
    ]
    assert "origin" in failure(checkpoints=other_origin).reason
    assert "lacks its size" in failure(checkpoints=[{"size": "1", "note": 5}]).reason


def test_a_validly_signed_checkpoint_over_another_history_fails() -> None:
    """The right key signed a root the served entries do not have (a forked log)."""
    forked = copy.deepcopy(CHECKPOINTS)
    fake_root = bytes(range(32))
    forked[2] = {
        "size": 30,
        "root_hash": fake_root.hex(),
        "note": sign_note(format_checkpoint(ORIGIN, 30, fake_root), SIGNER),
    }
    err = failure(checkpoints=forked)
    assert "checkpoint 30" in err.reason
    assert "root of the re-hashed entries differs" in err.reason
