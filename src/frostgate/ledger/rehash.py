"""Re-hashing many ledger entries at once: the verifiers' hot path.

A verifier re-derives, for every entry it is given, the leaf hash
``SHA-256(0x00 ‖ JCS(entry))``, the chain link ``SHA-256(prev ‖ leaf)`` and finally the
Merkle tree. Done one entry at a time through :func:`frostgate.ledger.canonical.encode`
this costs ≈ 5.5 µs per entry (≈ 180,000 entries/s): most of it is the Python-level
walk that proves each value lies in the domain where orjson's sorted output *is* RFC
8785, and the interpreter overhead around three SHA-256 calls.

This module does the same work a page (a list) at a time, with the per-entry steps
pushed into C (``map`` over orjson and hashlib), and proves the domain on the encoded
*text* instead of walking the values:

* the input values must come from :func:`orjson.loads` (the remote verifier's pages,
  a packet's lines). Such values hold only ``dict``, ``list``, ``str``, ``int``,
  ``float``, ``bool`` and ``None``, with ``str`` member names, and never NaN or an
  infinity. Of these, orjson's sorted encoding differs from JCS only for floats and
  for member names outside ASCII (UTF-8 versus UTF-16 sort order); integers beyond
  ±(2**53 - 1) are refused by ``OPT_STRICT_INTEGER``;
* ASCII encoded text means ASCII member names;
* every float orjson writes contains a ``.`` followed by digits and then ``,``, ``}``,
  ``]`` or ``e`` (``0.5``, ``1.0``, ``1.5e+300``), or an exponent sign ``e+`` / ``e-``
  (``1e+21``, ``1e-7``). Text with neither holds no float. Both patterns can also
  occur inside strings (``"v1.2,3"``, ``"one-time"``): such a page is not trusted to
  the fast path, and each of its entries goes through :func:`encode`, which decides
  exactly. A false alarm costs time, never correctness.

So each returned encoding is exactly ``encode(value)``, which the property tests in
``tests/ledger/test_rehash.py`` check against the reference implementation.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import re
from collections.abc import Sequence
from typing import Any, Final, cast

import orjson

from frostgate.ledger.canonical import CanonicalizationError, encode
from frostgate.ledger.hashing import HASH_SIZE
from frostgate.ledger.merkle import root

__all__ = [
    "LevelTree",
    "RehashError",
    "chain_links",
    "encode_parsed",
    "first_mismatch",
    "leaf_hashes",
]

_OPT: Final = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_dumps_sorted = functools.partial(orjson.dumps, option=_OPT)
# Searches with a literal first byte run at memchr speed; "e+" is found through "+",
# which canonical text holds only inside strings and in exponents.
_FLOAT_DOT: Final = re.compile(rb"\.[0-9]+[,}\]e]")
_FLOAT_NEGATIVE_EXP: Final = re.compile(rb"e-")
_sha256 = hashlib.sha256
_digest = operator.methodcaller("digest")
_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


class RehashError(ValueError):
    """An entry cannot be encoded as RFC 8785 JSON; ``offset`` is its position in the batch."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def _one_by_one(values: Sequence[Any], base: int = 0) -> list[bytes]:
    out: list[bytes] = []
    for offset, value in enumerate(values, base):
        try:
            out.append(encode(value))
        except (CanonicalizationError, TypeError, ValueError) as exc:
            raise RehashError(f"cannot be encoded as RFC 8785 JSON: {exc}", offset) from None
    return out


def _plain(text: bytes) -> bool:
    """True if orjson text holds no float and only ASCII (so it is the JCS text)."""
    return (
        text.isascii()
        and text.find(b"+") < 0
        and _FLOAT_DOT.search(text) is None
        and _FLOAT_NEGATIVE_EXP.search(text) is None
    )


def encode_parsed(values: Sequence[Any]) -> list[bytes]:
    """``[encode(v) for v in values]`` for values parsed by :func:`orjson.loads`, fast.

    Raises :class:`RehashError` naming the first value JCS cannot represent.
    """
    try:
        encoded = list(map(_dumps_sorted, values))
    except orjson.JSONEncodeError:
        return _one_by_one(values)  # an integer beyond ±(2**53 - 1): let encode() judge
    if _plain(b"".join(encoded)):
        return encoded
    # Somewhere in the batch is a float, a non-ASCII text or a false alarm: decide
    # entry by entry, and let encode() settle the ones the text cannot clear.
    for offset, text in enumerate(encoded):
        if not _plain(text):
            encoded[offset] = _one_by_one(values[offset : offset + 1], offset)[0]
    return encoded


def leaf_hashes(encoded: Sequence[bytes]) -> list[bytes]:
    """``SHA-256(0x00 ‖ e)`` for each encoded entry (RFC 9162 §2.1.1 leaf hashes)."""
    return list(map(_digest, map(_sha256, map(_LEAF_PREFIX.__add__, encoded))))


def _link(prev: bytes, leaf: bytes) -> bytes:
    return _sha256(prev + leaf).digest()


def chain_links(prev: bytes, leaves: Sequence[bytes]) -> list[bytes]:
    """The chain values after each leaf, continuing from ``prev`` (``chain_hashes``)."""
    if len(prev) != HASH_SIZE:
        raise ValueError(f"previous chain hash must be {HASH_SIZE} bytes")
    links = list(itertools.accumulate(leaves, _link, initial=prev))
    del links[0]
    return links


def _joined(claims: Sequence[object]) -> str | None:
    """The claims joined, if each is a 64-character string (a hex SHA-256 candidate)."""
    try:
        if set(map(len, claims)) - {2 * HASH_SIZE}:  # type: ignore[arg-type]
            return None
        return "".join(cast("Sequence[str]", claims))
    except TypeError:  # an item without a length, or not a string
        return None


def first_mismatch(ours: Sequence[bytes], theirs: Sequence[object]) -> int | None:
    """The first offset where ``theirs[i]`` is not the lowercase hex of ``ours[i]``.

    One comparison of the joined text settles the common case (every claim is 64
    characters and all match); only a mismatch is located entry by entry. ``None``
    when all match.
    """
    if len(ours) == len(theirs) and _joined(theirs) == b"".join(ours).hex():
        return None
    for offset, (mine, claimed) in enumerate(zip(ours, theirs, strict=False)):
        if claimed != mine.hex():
            return offset
    return min(len(ours), len(theirs)) if len(ours) != len(theirs) else None


class LevelTree:
    """Every complete subtree hash of a list of leaves, built a level at a time.

    The same nodes :class:`~frostgate.ledger.merkle.MemoryTree` stores, but each level
    is hashed in one pass of C-level ``map`` calls instead of one Python call per
    append, so a verifier can rebuild the tree of a million leaves in well under a
    second. It is a :class:`~frostgate.ledger.merkle.NodeReader`, so the RFC 9162
    functions (``root``, ``inclusion_proof``, ``consistency_proof``) work on it.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Sequence[bytes]) -> None:
        levels = [list(leaves)]
        current = levels[0]
        while len(current) > 1:
            even = len(current) & ~1
            lefts = map(_NODE_PREFIX.__add__, current[0:even:2])
            pairs = map(operator.add, lefts, current[1:even:2])
            current = list(map(_digest, map(_sha256, pairs)))
            levels.append(current)
        self._levels = levels

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def node(self, level: int, index: int) -> bytes:
        """Hash of a complete subtree; ``LookupError`` if there is no such subtree."""
        if level < 0 or index < 0 or level >= len(self._levels):
            raise LookupError(f"no complete subtree at level {level}, index {index}")
        row = self._levels[level]
        if index >= len(row):
            raise LookupError(f"no complete subtree at level {level}, index {index}")
        return row[index]

    def leaf(self, index: int) -> bytes:
        return self.node(0, index)

    def root(self, size: int) -> bytes:
        """RFC 9162 root of the first ``size`` leaves."""
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is beyond the {self.size} leaves")
        return root(size, self)
