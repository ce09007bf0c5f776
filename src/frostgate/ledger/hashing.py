"""Leaf, node and chain hashes: RFC 6962 §2.1 / RFC 9162 §2.1.1 with SHA-256.

RFC 9162 §2.1.1 (Merkle Tree Hash), with HASH = SHA-256 and ``||`` concatenation:

* the hash of an empty list is ``MTH({}) = HASH()`` — :data:`EMPTY_ROOT`;
* a leaf is ``MTH({d(0)}) = HASH(0x00 || d(0))`` — :func:`leaf_hash`;
* an interior node is ``HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` —
  :func:`node_hash`.

The distinct 0x00 / 0x01 prefixes are the domain separation that keeps a leaf from
being passed off as an interior node (second-preimage resistance, RFC 6962 §2.1).

FrostGate's ledger entry bytes are the RFC 8785 encoding of the entry
(:func:`frostgate.ledger.canonical.encode`), so :func:`entry_leaf_hash` is
``SHA-256(0x00 || JCS(entry))``.

Besides the tree, each stream keeps a linear hash chain (FrostGate design, "Ledger"):
``chain(i) = SHA-256(chain(i-1) || leaf_hash(i))`` starting from :data:`GENESIS`
(32 zero bytes). It lets a reader check the order of consecutive entries without the
tree; it is not an RFC construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Final

from frostgate.ledger.canonical import encode

__all__ = [
    "EMPTY_ROOT",
    "GENESIS",
    "HASH_SIZE",
    "chain_hash",
    "chain_hashes",
    "entry_leaf_hash",
    "leaf_hash",
    "node_hash",
]

#: Size in bytes of every hash in the ledger (SHA-256).
HASH_SIZE: Final = 32
#: Root of the empty tree, ``SHA-256("")`` (RFC 9162 §2.1.1).
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
#: Chain value before the first entry of a stream: 32 zero bytes.
GENESIS: Final = bytes(HASH_SIZE)

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"
_sha256 = hashlib.sha256


def _require_hash(value: bytes, what: str) -> None:
    if type(value) is not bytes or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")


def leaf_hash(entry_bytes: bytes) -> bytes:
    """``SHA-256(0x00 || entry_bytes)`` — the Merkle leaf hash (RFC 9162 §2.1.1)."""
    return _sha256(_LEAF_PREFIX + entry_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)`` — an interior node hash (RFC 9162 §2.1.1)."""
    _require_hash(left, "left child hash")
    _require_hash(right, "right child hash")
    return _sha256(_NODE_PREFIX + left + right).digest()


def _node_hash_unchecked(left: bytes, right: bytes) -> bytes:
    # For loops whose inputs were validated once up front.
    return _sha256(_NODE_PREFIX + left + right).digest()


def chain_hash(prev_chain: bytes, leaf: bytes) -> bytes:
    """``SHA-256(prev_chain || leaf)`` — the next link of a stream's hash chain."""
    _require_hash(prev_chain, "previous chain hash")
    _require_hash(leaf, "leaf hash")
    return _sha256(prev_chain + leaf).digest()


def chain_hashes(prev_chain: bytes, leaves: Iterable[bytes]) -> list[bytes]:
    """The chain values after each of ``leaves``, continuing from ``prev_chain``."""
    out: list[bytes] = []
    head = prev_chain
    for leaf in leaves:
        head = chain_hash(head, leaf)
        out.append(head)
    return out


def entry_leaf_hash(entry: Mapping[str, Any]) -> bytes:
    """``SHA-256(0x00 || JCS(entry))`` — the leaf hash of a ledger entry."""
    obj = entry if type(entry) is dict else dict(entry)
    return _sha256(_LEAF_PREFIX + encode(obj)).digest()
