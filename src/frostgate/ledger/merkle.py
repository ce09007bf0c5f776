"""Merkle tree roots and proofs: RFC 9162 §2.1 (Certificate Transparency 2.0).

The tree over ``n`` leaf hashes is the one of RFC 9162 §2.1.1 (identical to RFC 6962
§2.1): for ``n > 1`` and ``k`` the largest power of two smaller than ``n``,
``MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

Storage model
-------------
A log never stores incomplete subtrees. It stores, once and forever, the hash of every
*complete aligned subtree*: node ``(level, index)`` covers leaves
``[index * 2**level, (index + 1) * 2**level)``, level 0 being the leaf hashes. When leaf
``i`` is appended, the subtrees it completes are exactly ``(l, i >> l)`` for
``l = 0 .. t`` where ``t`` is the number of trailing one bits of ``i``
(:func:`nodes_to_store_on_append`), so storage only ever inserts.

Any subtree ``D[s:s+m]`` that RFC 9162's recursions visit starts at a multiple of the
smallest power of two ``>= m``; it is therefore the concatenation of the aligned
complete subtrees given by the binary digits of ``m`` (largest first), and its hash
is their right fold with :func:`~frostgate.ledger.hashing.node_hash`. That is how
:func:`root` (§2.1.1), :func:`inclusion_proof` (§2.1.3.1, PATH) and
:func:`consistency_proof` (§2.1.4.1, PROOF/SUBPROOF) read only ``O(log n)`` stored
nodes: each proof element is one complete node, except at most one element lying on
the right edge of the tree, which costs at most ``log2 n`` reads. For a
1,000,000-leaf log an inclusion proof reads at most 25 nodes (20 hashes) and a
consistency proof to it at most 26 (21 hashes); see
``tests/ledger/test_ledger_merkle.py::test_node_reads_for_a_million_leaves``.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows the
algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by step and raises
:class:`ProofError` with the reason on any failure.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from frostgate.ledger.hashing import EMPTY_ROOT, HASH_SIZE, _node_hash_unchecked

__all__ = [
    "MemoryTree",
    "NodeReader",
    "ProofError",
    "StoredNode",
    "consistency_proof",
    "inclusion_proof",
    "nodes_to_store_for_batch",
    "nodes_to_store_on_append",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

_hash2: Final = _node_hash_unchecked

#: One stored node: ``(level, index, hash)``.
StoredNode = tuple[int, int, bytes]


class ProofError(ValueError):
    """A proof, a tree size or a hash failed verification; the message says why."""


class NodeReader(Protocol):
    """Read access to the stored complete subtrees of one log."""

    def node(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``.

        Raises ``LookupError`` if that subtree is not stored (not yet complete).
        """
        ...


# --------------------------------------------------------------------------- helpers


def _check_size(value: int, what: str) -> None:
    if type(value) is not int or value < 0:
        raise ValueError(f"{what} must be a non-negative int, got {value!r}")


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_hash(start: int, size: int, reader: NodeReader) -> bytes:
    """``MTH(D[start:start+size])`` from the aligned complete subtrees covering it.

    ``start`` must be a multiple of the smallest power of two ``>= size`` (true of
    every subtree RFC 9162's recursions visit). Reads ``popcount(size)`` nodes.
    """
    hashes: list[bytes] = []
    pos = start
    remaining = size
    while remaining:
        level = remaining.bit_length() - 1
        width = 1 << level
        if pos & (width - 1):  # pragma: no cover - guarded by the callers' arithmetic
            raise AssertionError(f"unaligned subtree at {pos} of width {width}")
        hashes.append(reader.node(level, pos >> level))
        pos += width
        remaining -= width
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = _hash2(left, h)
    return h


# -------------------------------------------------------------------------- storage


def nodes_to_store_on_append(
    leaf_index: int, leaf_hash: bytes, reader: NodeReader
) -> list[StoredNode]:
    """The ``(level, index, hash)`` of every complete subtree finished by appending a leaf.

    ``leaf_index`` must be the current size of the log (the index the new leaf gets)
    and ``reader`` must see every node stored for the earlier leaves. The first item
    is ``(0, leaf_index, leaf_hash)``; each further item is the parent completed by
    the previous one. Reads one left sibling per trailing one bit of ``leaf_index``.
    """
    _check_size(leaf_index, "leaf index")
    if type(leaf_hash) is not bytes or len(leaf_hash) != HASH_SIZE:
        raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
    out: list[StoredNode] = [(0, leaf_index, leaf_hash)]
    h = leaf_hash
    level = 0
    index = leaf_index
    while index & 1:
        h = _hash2(reader.node(level, index - 1), h)
        level += 1
        index >>= 1
        out.append((level, index, h))
    return out


class _Overlay:
    """A NodeReader that sees a batch's not-yet-stored nodes over a base reader."""

    __slots__ = ("_base", "_pending")

    def __init__(self, base: NodeReader) -> None:
        self._base = base
        self._pending: dict[tuple[int, int], bytes] = {}

    def node(self, level: int, index: int) -> bytes:
        h = self._pending.get((level, index))
        return h if h is not None else self._base.node(level, index)

    def add(self, nodes: Iterable[StoredNode]) -> None:
        for level, index, h in nodes:
            self._pending[(level, index)] = h


def nodes_to_store_for_batch(
    start_size: int, leaf_hashes: Sequence[bytes], reader: NodeReader
) -> list[StoredNode]:
    """All nodes to insert when appending ``leaf_hashes`` to a log of ``start_size`` leaves.

    Equivalent to calling :func:`nodes_to_store_on_append` for each leaf in turn, but
    the base ``reader`` is only asked for nodes that existed before the batch (at most
    ``popcount(start_size)`` reads), so a group-commit writer needs no read-your-writes.
    """
    _check_size(start_size, "start size")
    overlay = _Overlay(reader)
    out: list[StoredNode] = []
    for offset, leaf in enumerate(leaf_hashes):
        nodes = nodes_to_store_on_append(start_size + offset, leaf, overlay)
        overlay.add(nodes)
        out.extend(nodes)
    return out


# ------------------------------------------------------------------- root and proofs


def root(size: int, reader: NodeReader) -> bytes:
    """``MTH(D[size])`` (RFC 9162 §2.1.1); :data:`EMPTY_ROOT` for ``size == 0``.

    Reads ``popcount(size)`` stored nodes.
    """
    _check_size(size, "tree size")
    if size == 0:
        return EMPTY_ROOT
    return _subtree_hash(0, size, reader)


def _inclusion_path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """``(start, width)`` of each element of PATH(index, D[size]), bottom-up."""
    ranges: list[tuple[int, int]] = []
    start, m, n = 0, index, size
    while n > 1:
        k = _split(n)
        if m < k:  # leaf is on the left; sibling is D[k:n]
            ranges.append((start + k, n - k))
            n = k
        else:  # leaf is on the right; sibling is D[0:k]
            ranges.append((start, k))
            start += k
            m -= k
            n -= k
    ranges.reverse()
    return ranges


def _consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """``(start, width)`` of each element of PROOF(size1, D[size2]), 0 < size1 < size2."""
    ranges: list[tuple[int, int]] = []
    start, m, n = 0, size1, size2
    b = True  # RFC 9162 SUBPROOF's flag: is D[0:m] still the whole old tree?
    while m != n:
        k = _split(n)
        if m <= k:  # old tree lies in the left subtree; right subtree is new
            ranges.append((start + k, n - k))
            n = k
        else:  # left subtree is in both trees; recurse into the right one
            ranges.append((start, k))
            start += k
            m -= k
            n -= k
            b = False
    if not b:
        ranges.append((start, m))
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1: the audit path, bottom-up."""
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    if index >= size:
        raise ValueError(f"leaf index {index} is not below tree size {size}")
    return [_subtree_hash(s, w, reader) for s, w in _inclusion_path_ranges(index, size)]


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """PROOF(size1, D[size2]) of RFC 9162 §2.1.4.1.

    Empty when ``size1`` is 0 or equals ``size2`` (nothing to prove).
    """
    _check_size(size1, "first tree size")
    _check_size(size2, "second tree size")
    if size1 > size2:
        raise ValueError(f"first tree size {size1} exceeds second tree size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    return [_subtree_hash(s, w, reader) for s, w in _consistency_ranges(size1, size2)]


# --------------------------------------------------------------------- verification


def _check_hash_arg(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ProofError(f"{what} must be bytes, got {type(value).__name__}")
    b = bytes(value)
    if len(b) != HASH_SIZE:
        raise ProofError(f"{what} is {len(b)} bytes, expected {HASH_SIZE}")
    return b


def _check_size_arg(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ProofError(f"{what} must be a non-negative int, got {value!r}")
    return value


def _check_proof_arg(proof: object, expected_len: int, what: str) -> list[bytes]:
    if isinstance(proof, str | bytes | bytearray | memoryview) or not isinstance(proof, Sequence):
        raise ProofError(f"{what} must be a sequence of hashes")
    if len(proof) != expected_len:
        raise ProofError(
            f"{what} has {len(proof)} hashes, expected {expected_len} for these tree sizes"
        )
    return [_check_hash_arg(p, f"{what} element {i}") for i, p in enumerate(proof)]


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 §2.1.3.2. Returns ``None`` on success, raises :class:`ProofError` otherwise.
    """
    leaf = _check_hash_arg(leaf_hash, "leaf hash")
    root_hash = _check_hash_arg(root, "root hash")
    leaf_index = _check_size_arg(index, "leaf index")
    tree_size = _check_size_arg(size, "tree size")
    # 1. If leaf_index is greater than or equal to tree_size, fail.
    if leaf_index >= tree_size:
        raise ProofError(f"leaf index {leaf_index} is not below tree size {tree_size}")
    path = _check_proof_arg(
        proof, len(_inclusion_path_ranges(leaf_index, tree_size)), "inclusion proof"
    )
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = leaf_index, tree_size - 1
    # 3. Set r to hash.
    r = leaf
    # 4. For each value p in the inclusion_path array:
    for p in path:
        # a. If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = _hash2(p, r)
            # ii. If LSB(fn) is not set, right-shift both fn and sn equally
            #     until either LSB(fn) is set or fn is 0.
            while not (fn & 1 or fn == 0):
                fn >>= 1
                sn >>= 1
        # Otherwise: i. Set r to HASH(0x01 || r || p).
        else:
            r = _hash2(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 and r must equal root_hash.
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if not hmac.compare_digest(r, root_hash):
        raise ProofError("inclusion proof does not lead to the given root hash")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that tree (``size2``, ``root2``) is an extension of tree (``size1``, ``root1``).

    RFC 9162 §2.1.4.2 for ``0 < size1 < size2``. The cases the RFC leaves out are
    decided as follows: ``size1 > size2`` fails; ``size1 == size2`` needs an empty
    proof and equal roots; ``size1 == 0`` needs an empty proof and ``root1`` equal to
    the empty-tree hash (every tree extends the empty tree). Returns ``None`` on
    success, raises :class:`ProofError` otherwise.
    """
    first = _check_size_arg(size1, "first tree size")
    second = _check_size_arg(size2, "second tree size")
    first_hash = _check_hash_arg(root1, "first root hash")
    second_hash = _check_hash_arg(root2, "second root hash")
    if first > second:
        raise ProofError(f"first tree size {first} exceeds second tree size {second}")
    if first == second:
        _check_proof_arg(proof, 0, "consistency proof")
        if not hmac.compare_digest(first_hash, second_hash):
            raise ProofError("trees of equal size have different root hashes")
        return
    if first == 0:
        _check_proof_arg(proof, 0, "consistency proof")
        if not hmac.compare_digest(first_hash, EMPTY_ROOT):
            raise ProofError("first root hash is not the empty-tree hash for tree size 0")
        return
    path = _check_proof_arg(proof, len(_consistency_ranges(first, second)), "consistency proof")
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not path:
        raise ProofError("consistency proof is empty")
    # 2. If first is an exact power of 2, prepend first_hash to the consistency_path.
    if first & (first - 1) == 0:
        path = [first_hash, *path]
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr). ii. Set sr to HASH(0x01 || c || sr).
            fr = _hash2(c, fr)
            sr = _hash2(c, sr)
            # iii. If LSB(fn) is not set, right-shift both fn and sn equally until
            #      either LSB(fn) is set or fn is 0.
            while not (fn & 1 or fn == 0):
                fn >>= 1
                sn >>= 1
        # Otherwise: i. Set sr to HASH(0x01 || sr || c).
        else:
            sr = _hash2(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. fr must equal first_hash, sr must equal second_hash, and sn must be 0.
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if not hmac.compare_digest(fr, first_hash):
        raise ProofError("consistency proof does not lead to the first root hash")
    if not hmac.compare_digest(sr, second_hash):
        raise ProofError("consistency proof does not lead to the second root hash")


# ------------------------------------------------------------------ in-memory tree


class MemoryTree:
    """An append-only in-memory log implementing :class:`NodeReader`.

    Stores every complete subtree exactly as a database node table would, so it is
    both a test double for the store and the offline verifier's tree for exported
    logs.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = []
        for leaf in leaf_hashes:
            self.append(leaf)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0]) if self._levels else 0

    def __len__(self) -> int:
        return self.size

    def node(self, level: int, index: int) -> bytes:
        """Hash of a stored complete subtree; ``LookupError`` if it is not complete."""
        if (
            level < 0
            or index < 0
            or level >= len(self._levels)
            or index >= len(self._levels[level])
        ):
            raise LookupError(f"no complete subtree at level {level}, index {index}")
        return self._levels[level][index]

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; returns its index."""
        index = self.size
        for level, idx, h in nodes_to_store_on_append(index, leaf_hash, self):
            if level == len(self._levels):
                self._levels.append([])
            row = self._levels[level]
            if idx != len(row):  # pragma: no cover - an invariant of the storage model
                raise AssertionError("node stored out of order")
            row.append(h)
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        return self.node(0, index)

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self.size
        _check_size(size, "tree size")
        if size > self.size:
            raise ValueError(f"tree size {size} exceeds the log size {self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` leaves (default: all)."""
        return root(self._size_arg(size), self)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
        return inclusion_proof(index, self._size_arg(size), self)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Consistency proof from the first ``size1`` leaves to the first ``size2``."""
        return consistency_proof(size1, self._size_arg(size2), self)
