"""Verifying one ledger stream from what the API serves (no I/O here).

:class:`StreamCheck` is fed the parsed JSON of ``/v1/ledger/{stream}/checkpoints``
pages and ``/v1/ledger/{stream}/entries`` pages, in order, and checks what the offline
verifier checks for a stored stream (:mod:`frostgate.decisions.ledger_audit`), trusting
nothing but the log's verifier key:

* every checkpoint note's Ed25519 signature and origin, sizes strictly increasing, the
  served ``size`` and ``root_hash`` equal to what the note says;
* every entry's position (contiguous indexes from 0; an entry's own ``index`` and
  ``stream`` fields, when present, agree), its leaf hash recomputed from the RFC 8785
  bytes of the entry and compared with the served ``leaf_hash``, and the hash chain
  recomputed from genesis and compared with every served ``chain_hash``;
* the tree rebuilt from the recomputed leaves: every checkpoint's root must be the root
  of the first ``size`` leaves, so the newest checkpoint matches the entries and each
  checkpoint is consistent with the one before it (both are roots of prefixes of one
  leaf sequence — the RFC 9162 consistency proof between them is also built from that
  tree and verified, as the database verifier does); a checkpoint larger than the
  entries served means the tail is missing.

Entries are re-hashed a page at a time (:mod:`frostgate.ledger.rehash`), which is what
lets a verifier pass 300,000 entries/s on one core. The first failure raises
:class:`StreamFailure` with the index of the first bad entry where there is one.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from frostgate.ledger import GENESIS, ProofError, consistency_proof, verify_consistency
from frostgate.ledger.note import Checkpoint, NoteError, Verifier, open_checkpoint
from frostgate.ledger.rehash import (
    LevelTree,
    RehashError,
    chain_links,
    encode_parsed,
    first_mismatch,
    leaf_hashes,
)

__all__ = ["StreamCheck", "StreamFailure", "StreamSummary"]

_ITEM_KEYS: Final = frozenset({"index", "entry", "leaf_hash", "chain_hash"})
_get_index = operator.itemgetter("index")
_get_entry = operator.itemgetter("entry")
_get_leaf = operator.itemgetter("leaf_hash")
_get_chain = operator.itemgetter("chain_hash")
_own_index = operator.methodcaller("get", "index")
_own_stream = operator.methodcaller("get", "stream")
_own_event_id = operator.methodcaller("get", "event_id")


class StreamFailure(Exception):
    """The stream does not verify; ``index`` is the first bad entry, if one is to blame."""

    def __init__(self, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """What a verified stream holds."""

    name: str
    entries: int
    checkpoints: int
    tree_size: int
    tree: LevelTree


class StreamCheck:
    """Feed checkpoint pages, then entry pages, then call :meth:`finish`."""

    def __init__(
        self, name: str, origin: str, verifier: Verifier, *, event_id: str | None = None
    ) -> None:
        """``event_id``: an event to look for; :attr:`event_index` is where it was served
        (what a proof of it must be a proof of)."""
        self.name = name
        self.origin = origin
        self._verifier = verifier
        self.checkpoints: list[Checkpoint] = []
        self._leaves: list[bytes] = []
        self._wanted = event_id
        self.event_index: int | None = None
        self._prev = GENESIS

    @property
    def entries(self) -> int:
        return len(self._leaves)

    @property
    def newest_size(self) -> int:
        return self.checkpoints[-1].size if self.checkpoints else 0

    def add_checkpoints(self, items: object) -> None:
        """One page of ``{"size", "root_hash", "note", ...}`` objects, in size order."""
        if not isinstance(items, list):
            raise StreamFailure("checkpoints response: 'checkpoints' is not a list")
        for item in items:
            if not isinstance(item, dict):
                raise StreamFailure("checkpoints response: an item is not an object")
            size, note, root_hex = item.get("size"), item.get("note"), item.get("root_hash")
            if type(size) is not int or not isinstance(note, str):
                raise StreamFailure("checkpoints response: an item lacks its size or note")
            try:
                checkpoint = open_checkpoint(note, self._verifier, origin=self.origin)
            except NoteError as exc:
                raise StreamFailure(f"checkpoint {size}: {exc}") from None
            if checkpoint.size != size or root_hex != checkpoint.root.hex():
                raise StreamFailure(
                    f"checkpoint {size}: the served size or root differs from its signed note"
                )
            if self.checkpoints and size <= self.checkpoints[-1].size:
                raise StreamFailure(f"checkpoint {size}: sizes are not strictly increasing")
            self.checkpoints.append(checkpoint)

    def add_entries(self, items: object) -> None:
        """One page of ``{"index", "entry", "leaf_hash", "chain_hash"}`` objects."""
        start = len(self._leaves)
        if not isinstance(items, list):
            raise StreamFailure("entries response: 'entries' is not a list", start)
        if not items:
            return
        if set(map(type, items)) != {dict} or not all(
            map(operator.eq, map(dict.keys, items), itertools.repeat(_ITEM_KEYS))
        ):
            raise StreamFailure(
                "entries response: every item must have exactly index, entry, leaf_hash "
                "and chain_hash",
                start,
            )
        expected = list(range(start, start + len(items)))
        indexes = list(map(_get_index, items))
        if indexes != expected:
            bad = next(i for i, (a, b) in enumerate(zip(indexes, expected, strict=True)) if a != b)
            raise StreamFailure(
                f"entry {start + bad} missing: the server sent index {indexes[bad]!r} in its place",
                start + bad,
            )
        entries = list(map(_get_entry, items))
        if not all(type(entry) is dict for entry in entries):
            bad = next(i for i, e in enumerate(entries) if type(e) is not dict)
            raise StreamFailure(f"entry {start + bad} is not a JSON object", start + bad)
        self._check_own_fields(entries, expected, start)
        try:
            encoded = encode_parsed(entries)
        except RehashError as exc:
            raise StreamFailure(f"entry {start + exc.offset} {exc}", start + exc.offset) from None
        leaves = leaf_hashes(encoded)
        bad_leaf = first_mismatch(leaves, list(map(_get_leaf, items)))
        links = chain_links(self._prev, leaves)
        bad_link = first_mismatch(links, list(map(_get_chain, items)))
        if bad_leaf is not None and (bad_link is None or bad_leaf <= bad_link):
            raise StreamFailure(
                f"entry {start + bad_leaf} does not match its leaf_hash "
                "(SHA-256(0x00 ‖ RFC 8785(entry)))",
                start + bad_leaf,
            )
        if bad_link is not None:
            raise StreamFailure(
                f"hash chain broken at entry {start + bad_link}: its chain_hash is not "
                "SHA-256(previous chain_hash ‖ leaf_hash) (the entry or an earlier one "
                "was altered)",
                start + bad_link,
            )
        self._leaves += leaves
        self._prev = links[-1]
        if self._wanted is not None and self.event_index is None:
            found = [i for i, e in enumerate(map(_own_event_id, entries)) if e == self._wanted]
            if found:
                self.event_index = start + found[0]

    def _check_own_fields(
        self, entries: Sequence[dict[str, Any]], expected: list[int], start: int
    ) -> None:
        own = list(map(_own_index, entries))
        if own != expected:
            for offset, value in enumerate(own):
                if value is not None and value != expected[offset]:
                    raise StreamFailure(
                        f"entry {start + offset} says it is entry {value!r}", start + offset
                    )
        streams = set(map(_own_stream, entries))
        streams.discard(None)
        streams.discard(self.name)
        if streams:
            offset = next(i for i, e in enumerate(entries) if e.get("stream") in streams)
            raise StreamFailure(
                f"entry {start + offset} belongs to stream {entries[offset]['stream']!r}, "
                f"not {self.name!r}",
                start + offset,
            )

    def finish(self) -> StreamSummary:
        """Check every checkpoint against the tree of the re-hashed entries."""
        count = len(self._leaves)
        if self.newest_size > count:
            raise StreamFailure(
                f"the newest checkpoint covers {self.newest_size} entries but the server "
                f"served {count}: entries are missing from the end",
                count,
            )
        tree = LevelTree(self._leaves)
        previous: Checkpoint | None = None
        for checkpoint in self.checkpoints:
            if tree.root(checkpoint.size) != checkpoint.root:
                raise StreamFailure(
                    f"checkpoint {checkpoint.size}: the root of the re-hashed entries differs "
                    "from the signed root",
                    None,
                )
            if previous is not None and previous.size > 0:
                try:
                    proof = consistency_proof(previous.size, checkpoint.size, tree)
                    verify_consistency(
                        previous.size, checkpoint.size, proof, previous.root, checkpoint.root
                    )
                except ProofError as exc:
                    raise StreamFailure(
                        f"checkpoints {previous.size} and {checkpoint.size} are not "
                        f"consistent: {exc}"
                    ) from None
            previous = checkpoint
        return StreamSummary(self.name, count, len(self.checkpoints), self.newest_size, tree)
