"""RFC 9162 §2.1 Merkle tree: roots, PATH, PROOF/SUBPROOF and their verification.

Two independent oracles:

* a naive reference implementation of the RFC definitions over the full leaf list
  (``ref_mth``, ``ref_path``, ``ref_proof`` below), compared for every tree size up to
  300;
* the published RFC 6962 test vectors of the certificate-transparency reference tree
  (8 leaves: "", 00, 10, 2021, 3031, 40414243, 5051525354555657,
  606162636465666768696a6b6c6d6e6f) as kept in transparency-dev/merkle:
  ``testonly/constants.go`` (``NodeHashes``, ``RootHashes``),
  ``testonly/reference_test.go`` (``TestRefInclusionProof``,
  ``TestRefConsistencyProof``) and ``proof/verify_test.go`` (``inclusionProofs`` with
  1-based leaf numbers, ``consistencyProofs``, ``roots``).
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frostgate.ledger import (
    EMPTY_ROOT,
    MemoryTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    nodes_to_store_for_batch,
    nodes_to_store_on_append,
    root,
    verify_consistency,
    verify_inclusion,
)

# ----------------------------------------------------------------- naive reference

MAX_SIZE = 300
LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(MAX_SIZE)]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def ref_mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) by the recursive definition of RFC 9162 §2.1.1."""
    n = hi - lo
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return LEAVES[lo]
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(lo, lo + k) + ref_mth(lo + k, hi)).digest()


def ref_path(m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) of RFC 9162 §2.1.3.1."""
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, lo, lo + k), ref_mth(lo + k, hi)]
    return [*ref_path(m - k, lo + k, hi), ref_mth(lo, lo + k)]


def ref_subproof(m: int, lo: int, hi: int, b: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) of RFC 9162 §2.1.4.1."""
    n = hi - lo
    if m == n:
        return [] if b else [ref_mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, lo, lo + k, b), ref_mth(lo + k, hi)]
    return [*ref_subproof(m - k, lo + k, hi, False), ref_mth(lo, lo + k)]


def ref_proof(m: int, n: int) -> list[bytes]:
    return ref_subproof(m, 0, n, True)


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return MemoryTree(LEAVES)


# --------------------------------------------------------------- against reference


def test_roots_for_every_size(tree: MemoryTree) -> None:
    assert tree.root(0) == EMPTY_ROOT
    for n in range(MAX_SIZE + 1):
        assert tree.root(n) == ref_mth(0, n), n
        assert root(n, tree) == tree.root(n)


def test_inclusion_proofs_match_reference_and_verify(tree: MemoryTree) -> None:
    # Every leaf of every tree size up to 300 (45,150 proofs).
    for n in range(1, MAX_SIZE + 1):
        r = tree.root(n)
        for i in range(n):
            proof = tree.inclusion_proof(i, n)
            assert proof == ref_path(i, 0, n), (i, n)
            verify_inclusion(LEAVES[i], i, n, proof, r)


def test_consistency_proofs_match_reference_and_verify(tree: MemoryTree) -> None:
    # Every pair of tree sizes 0 <= m <= n <= 300 (45,451 proofs).
    for n in range(MAX_SIZE + 1):
        for m in range(n + 1):
            proof = tree.consistency_proof(m, n)
            expected = [] if m == 0 else ref_proof(m, n)
            assert proof == expected, (m, n)
            verify_consistency(m, n, proof, tree.root(m), tree.root(n))


# ------------------------------------------------------------------- tampered proofs


def _flip(h: bytes, pos: int = 0) -> bytes:
    return h[:pos] + bytes([h[pos] ^ 0x08]) + h[pos + 1 :]


def _expect_fail(fn: Any, *args: Any) -> str:
    with pytest.raises(ProofError) as info:
        fn(*args)
    return str(info.value)


def test_tampered_inclusion_proofs_fail(tree: MemoryTree) -> None:
    other = leaf_hash(b"not in the log")
    for n in range(1, 65):
        r = tree.root(n)
        for i in range(n):
            leaf, proof = LEAVES[i], tree.inclusion_proof(i, n)
            for j in range(len(proof)):
                for pos in (0, 31):
                    bad = [*proof[:j], _flip(proof[j], pos), *proof[j + 1 :]]
                    _expect_fail(verify_inclusion, leaf, i, n, bad, r)
            if proof:
                _expect_fail(verify_inclusion, leaf, i, n, proof[:-1], r)
                _expect_fail(verify_inclusion, leaf, i, n, proof[1:], r)
            _expect_fail(verify_inclusion, leaf, i, n, [*proof, r], r)
            _expect_fail(verify_inclusion, leaf, i, n, [r, *proof], r)
            _expect_fail(verify_inclusion, other, i, n, proof, r)
            _expect_fail(verify_inclusion, leaf, i, n, proof, _flip(r))
            _expect_fail(verify_inclusion, leaf, i, n, proof, EMPTY_ROOT)
            # Wrong index: the sibling position and an out-of-range one.
            if i ^ 1 < n:
                _expect_fail(verify_inclusion, leaf, i ^ 1, n, proof, r)
            _expect_fail(verify_inclusion, leaf, n, n, proof, r)
            # Wrong size, each with the true root of that size.
            for n2 in {n - 1, n + 1, 2 * n, n // 2} - {n}:
                if i < n2 <= MAX_SIZE:
                    _expect_fail(verify_inclusion, leaf, i, n2, proof, tree.root(n2))


def test_tampered_consistency_proofs_fail(tree: MemoryTree) -> None:
    for n in range(2, 65):
        for m in range(1, n):
            proof = tree.consistency_proof(m, n)
            r1, r2 = tree.root(m), tree.root(n)
            assert proof
            for j in range(len(proof)):
                bad = [*proof[:j], _flip(proof[j]), *proof[j + 1 :]]
                _expect_fail(verify_consistency, m, n, bad, r1, r2)
            _expect_fail(verify_consistency, m, n, proof[:-1], r1, r2)
            _expect_fail(verify_consistency, m, n, proof[1:], r1, r2)
            _expect_fail(verify_consistency, m, n, [*proof, r2], r1, r2)
            _expect_fail(verify_consistency, m, n, [r1, *proof], r1, r2)
            _expect_fail(verify_consistency, m, n, [proof[0], *proof], r1, r2)
            _expect_fail(verify_consistency, m, n, [], r1, r2)
            _expect_fail(verify_consistency, m, n, proof, r2, r1)
            _expect_fail(verify_consistency, m, n, proof, _flip(r1), r2)
            _expect_fail(verify_consistency, m, n, proof, r1, _flip(r2))
            for m2, n2 in ((m - 1, n), (m + 1, n), (m ^ 2, n), (m, n + 1), (m, n - 1), (m, 2 * n)):
                if (m2, n2) != (m, n) and 0 < m2 < n2 <= MAX_SIZE:
                    _expect_fail(verify_consistency, m2, n2, proof, tree.root(m2), tree.root(n2))
            _expect_fail(verify_consistency, n, m, proof, r2, r1)


def test_verification_edge_cases_have_reasons() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)  # one-leaf tree: root is the leaf hash
    assert "not below tree size" in _expect_fail(verify_inclusion, h, 1, 1, [], h)
    assert "not below tree size" in _expect_fail(verify_inclusion, h, 0, 0, [], EMPTY_ROOT)
    assert "not below tree size" in _expect_fail(verify_inclusion, h, 5, 3, [h, h], h)
    assert "expected 0" in _expect_fail(verify_inclusion, h, 0, 1, [h], h)
    assert "expected 3" in _expect_fail(verify_inclusion, h, 0, 5, [h], h)
    assert "32" in _expect_fail(verify_inclusion, b"short", 0, 1, [], h)
    assert "32" in _expect_fail(verify_inclusion, h, 0, 1, [], b"")
    assert "element 1" in _expect_fail(verify_inclusion, h, 0, 4, [h, b"x" * 31], h)
    assert "non-negative" in _expect_fail(verify_inclusion, h, -1, 4, [h, h], h)
    assert "non-negative" in _expect_fail(verify_inclusion, h, True, 4, [h, h], h)
    assert "sequence" in _expect_fail(verify_inclusion, h, 0, 2, h, h)
    assert "does not lead" in _expect_fail(verify_inclusion, h, 0, 2, [h], h)

    r = EMPTY_ROOT
    verify_consistency(0, 0, [], r, r)
    verify_consistency(0, 5, [], r, h)  # every tree extends the empty tree
    verify_consistency(3, 3, [], h, h)
    assert "exceeds" in _expect_fail(verify_consistency, 2, 1, [], h, h)
    assert "different root" in _expect_fail(verify_consistency, 3, 3, [], h, r)
    assert "expected 0" in _expect_fail(verify_consistency, 3, 3, [h], h, h)
    assert "expected 0" in _expect_fail(verify_consistency, 0, 3, [h], r, h)
    assert "empty-tree" in _expect_fail(verify_consistency, 0, 3, [], h, h)
    assert "expected" in _expect_fail(verify_consistency, 1, 2, [], h, h)
    assert "32" in _expect_fail(verify_consistency, 1, 2, [h], b"don't care", h)


def test_proof_generation_rejects_bad_arguments(tree: MemoryTree) -> None:
    with pytest.raises(ValueError, match="not below"):
        inclusion_proof(5, 5, tree)
    with pytest.raises(ValueError, match="non-negative"):
        inclusion_proof(-1, 5, tree)
    with pytest.raises(ValueError, match="exceeds"):
        consistency_proof(6, 5, tree)
    with pytest.raises(ValueError, match="exceeds the log size"):
        tree.root(MAX_SIZE + 1)
    with pytest.raises(LookupError):
        root(MAX_SIZE + 1, tree)  # a generic reader only knows what it stores
    with pytest.raises(LookupError):
        tree.node(0, -1)  # no Python negative-index wrap-around
    assert consistency_proof(0, 7, tree) == []
    assert consistency_proof(7, 7, tree) == []


# ---------------------------------------------------------------- storage model


class DictReader:
    """A node table keyed by (level, index), insert-only, counting reads."""

    def __init__(self) -> None:
        self.table: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.table[(level, index)]

    def insert(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        for level, index, h in nodes:
            assert (level, index) not in self.table, "storage must never update"
            self.table[(level, index)] = h


def test_append_only_inserts_complete_subtrees() -> None:
    reader = DictReader()
    for i, leaf in enumerate(LEAVES[:130]):
        before = reader.reads
        nodes = nodes_to_store_on_append(i, leaf, reader)
        assert nodes[0] == (0, i, leaf)
        trailing_ones = len(bin(i)) - len(bin(i).rstrip("1"))
        assert len(nodes) == 1 + trailing_ones
        assert reader.reads - before == trailing_ones
        for level, index, h in nodes:
            assert (index + 1) << level == i + 1 or level == 0  # completed by leaf i
            assert h == ref_mth(index << level, (index + 1) << level)
        reader.insert(nodes)
    assert len(reader.table) == 2 * 130 - bin(130).count("1")
    for n in range(131):
        assert root(n, reader) == ref_mth(0, n)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8))
def test_batches_equal_sequential_appends(batch_sizes: list[int]) -> None:
    sequential, batched = DictReader(), DictReader()
    size = 0
    for count in batch_sizes:
        count = min(count, MAX_SIZE - size)
        leaves = LEAVES[size : size + count]
        for offset, leaf in enumerate(leaves):
            sequential.insert(nodes_to_store_on_append(size + offset, leaf, sequential))
        before = batched.reads
        batched.insert(nodes_to_store_for_batch(size, leaves, batched))
        assert batched.reads - before <= bin(size).count("1")  # only the old frontier
        size += count
    assert batched.table == sequential.table
    assert root(size, batched) == ref_mth(0, size)


def test_append_rejects_bad_leaf_hash() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        MemoryTree().append(b"short")
    with pytest.raises(ValueError, match="non-negative"):
        nodes_to_store_on_append(-1, LEAVES[0], MemoryTree())


# ----------------------------------------------------------------- node read cost


class FakeNodes:
    """Deterministic stand-in hashes for a log of `size` leaves; refuses absent nodes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        assert level >= 0
        assert index >= 0
        assert (index + 1) << level <= self.size, f"read of incomplete node ({level}, {index})"
        self.reads += 1
        return hashlib.sha256(f"{level}/{index}".encode()).digest()


def test_node_reads_for_a_million_leaves() -> None:
    n = 1_000_000
    rng = random.Random(1)
    reader = FakeNodes(n)
    root(n, reader)
    assert reader.reads == bin(n).count("1")

    # 524287 = 2**19 - 1 is the costliest leaf of this tree and old size for it (found
    # by exhaustive search over all 10**6 leaves / old sizes with the same arithmetic).
    worst_inclusion = 0
    for i in [0, 1, n // 2, n - 2, n - 1, 2**19, 2**19 - 1, *rng.sample(range(n), 3000)]:
        reader.reads = 0
        proof = inclusion_proof(i, n, reader)
        assert len(proof) <= 20
        worst_inclusion = max(worst_inclusion, reader.reads)
    worst_consistency = 0
    for m in [1, 2, n // 2, n - 1, 2**19, 2**19 - 1, *rng.sample(range(1, n), 3000)]:
        reader.reads = 0
        consistency_proof(m, n, reader)
        worst_consistency = max(worst_consistency, reader.reads)
    # ceil(log2(1e6)) = 20 proof elements; at most one of them is not a stored node.
    assert worst_inclusion == 25
    assert worst_consistency == 26


# ---------------------------------------------------- RFC 6962 reference test vectors

CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# testonly/constants.go RootHashes() (index = tree size).
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# testonly/constants.go NodeHashes(): [level][index].
CT_NODES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
# (leaf index, tree size, proof): reference_test.go TestRefInclusionProof, plus
# verify_test.go inclusionProofs converted from 1-based leaf numbers.
CT_INCLUSION = [
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
# (size1, size2, proof): reference_test.go TestRefConsistencyProof and
# verify_test.go consistencyProofs.
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
# verify_test.go inclusionProofs entries {6, 8} and {2, 5} (1-based leaf numbers).
CT_INCLUSION += [
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
]


@pytest.fixture(scope="module")
def ct_tree() -> MemoryTree:
    return MemoryTree(leaf_hash(x) for x in CT_LEAVES)


def test_ct_vectors_roots_and_nodes(ct_tree: MemoryTree) -> None:
    assert [ct_tree.root(n).hex() for n in range(9)] == CT_ROOTS
    for level, row in enumerate(CT_NODES):
        assert [ct_tree.node(level, i).hex() for i in range(len(row))] == row
    assert node_hash(ct_tree.node(2, 0), ct_tree.node(2, 1)) == ct_tree.root(8)


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_ct_vectors_inclusion(ct_tree: MemoryTree, index: int, size: int, proof: list[str]) -> None:
    assert [p.hex() for p in ct_tree.inclusion_proof(index, size)] == proof
    verify_inclusion(
        leaf_hash(CT_LEAVES[index]),
        index,
        size,
        [bytes.fromhex(p) for p in proof],
        ct_tree.root(size),
    )


@pytest.mark.parametrize(("size1", "size2", "proof"), CT_CONSISTENCY)
def test_ct_vectors_consistency(
    ct_tree: MemoryTree, size1: int, size2: int, proof: list[str]
) -> None:
    assert [p.hex() for p in ct_tree.consistency_proof(size1, size2)] == proof
    verify_consistency(
        size1, size2, [bytes.fromhex(p) for p in proof], ct_tree.root(size1), ct_tree.root(size2)
    )
