"""Leaf, node and chain hashes (RFC 6962 §2.1 / RFC 9162 §2.1.1).

Known answers are the level-0 and level-1 node hashes of the RFC 6962 reference
tree published in transparency-dev/merkle ``testonly/constants.go`` (``LeafInputs``,
``NodeHashes``, ``EmptyRootHash``), inherited from google/certificate-transparency.
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from frostgate.ledger import (
    EMPTY_ROOT,
    GENESIS,
    HASH_SIZE,
    chain_hash,
    chain_hashes,
    encode,
    entry_leaf_hash,
    leaf_hash,
    node_hash,
)

LEAF_INPUTS = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243")]
LEVEL0 = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
]
LEVEL1 = [
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
]


def test_known_leaf_and_node_hashes() -> None:
    assert [leaf_hash(x).hex() for x in LEAF_INPUTS] == LEVEL0
    pairs = [(LEVEL0[i], LEVEL0[i + 1]) for i in range(0, 6, 2)]
    assert [node_hash(bytes.fromhex(a), bytes.fromhex(b)).hex() for a, b in pairs] == LEVEL1
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_domain_separation_between_leaves_and_nodes() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != leaf_hash(a + b)
    assert leaf_hash(b"") != EMPTY_ROOT


def test_chain_link_definition() -> None:
    assert bytes(32) == GENESIS
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    expected = []
    head = GENESIS
    for leaf in leaves:
        head = hashlib.sha256(head + leaf).digest()
        expected.append(head)
    assert chain_hash(GENESIS, leaves[0]) == expected[0]
    assert chain_hashes(GENESIS, leaves) == expected
    assert chain_hashes(expected[1], leaves[2:]) == expected[2:]
    assert chain_hashes(GENESIS, []) == []


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), bytearray(32), "0" * 32])
def test_wrong_sized_hashes_are_rejected(bad: Any) -> None:
    good = bytes(HASH_SIZE)
    with pytest.raises(ValueError, match="32 bytes"):
        node_hash(bad, good)
    with pytest.raises(ValueError, match="32 bytes"):
        node_hash(good, bad)
    with pytest.raises(ValueError, match="32 bytes"):
        chain_hash(bad, good)
    with pytest.raises(ValueError, match="32 bytes"):
        chain_hash(good, bad)


def test_entry_leaf_hash_is_hash_of_jcs() -> None:
    entry = {"seq": 1, "b": [1, "x"], "a": None, "score": 0.5, "é": True}
    expected = hashlib.sha256(b"\x00" + rfc8785.dumps(entry)).digest()
    assert entry_leaf_hash(entry) == expected
    assert entry_leaf_hash(MappingProxyType(entry)) == expected  # any Mapping
    assert entry_leaf_hash(dict(reversed(list(entry.items())))) == expected  # order-free


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=16),
        max_size=15,
    )
)
def test_entry_leaf_hash_property(entry: dict[str, Any]) -> None:
    assert entry_leaf_hash(entry) == leaf_hash(rfc8785.dumps(entry))
    assert entry_leaf_hash(entry) == leaf_hash(encode(entry))
