"""Offline audit packets: a signed, self-contained zip of one ledger range and its proofs.

A packet lets anyone holding only the log's verifier key (``<name>+<key id>+<key>``)
check, offline, that a range of a stream's entries is exactly what the log committed
to. :func:`build_packet` writes one; :func:`verify_packet` checks one and never raises.

Packet format, version 1
========================

A ZIP archive with exactly these six members and nothing else. The builder writes them
in sorted name order, each with the timestamp 1980-01-01 00:00:00, external attributes
``0o644 << 16`` (Unix ``-rw-r--r--``, "made by" Unix), ``ZIP_DEFLATED`` at level 9, no
extra fields, no comments and no ZIP64 records, so the same inputs always give
byte-identical packets (with the same zlib):

``checkpoints.jsonl``
    Every checkpoint of the stream from the newest one whose size is at or before the
    range start (if there is one) to the newest overall, in increasing size order, one
    line each: ``{"note": "<signed note>", "size": n}``. Each note is a C2SP
    tlog-checkpoint signed note (:mod:`frostgate.ledger.note`).
``consistency.jsonl``
    For each consecutive pair of those checkpoints, ``{"first": a, "hashes": [hex, ...],
    "second": b}``: the RFC 9162 §2.1.4 consistency proof from size ``a`` to size ``b``.
``entries.jsonl``
    One line per entry of the range, in index order: ``{"chain_hash": hex, "entry":
    {...}, "index": i, "leaf_hash": hex, "prev_chain_hash": hex}`` where
    ``leaf_hash = SHA-256(0x00 ‖ RFC 8785(entry))`` and ``chain_hash =
    SHA-256(prev_chain_hash ‖ leaf_hash)``; the first entry of a stream (index 0) has
    ``prev_chain_hash`` = 32 zero bytes.
``inclusion.jsonl``
    One line per entry, in the same order: ``{"hashes": [hex, ...], "index": i,
    "tree_size": N}``: the RFC 9162 §2.1.3 inclusion proof of entry ``i`` in the tree
    of the newest checkpoint (``N`` is its size; every entry has ``i < N``).
``manifest.json``
    ``{"files": {"checkpoints.jsonl": sha256hex, "consistency.jsonl": sha256hex,
    "entries.jsonl": sha256hex, "inclusion.jsonl": sha256hex}, "origin": "<checkpoint
    origin>", "range": {"end": i1, "since": iso | null, "start": i0, "until": iso |
    null}, "stream": "decisions/acme", "tree_size": N, "version": 1}``; the range holds
    entries ``start <= i < end``; ``since`` / ``until`` are the ISO 8601 time bounds the
    range was selected by (informational: they are not checked against the entries).
``manifest.sig``
    One line: ``<key name> <base64(4-byte key ID ‖ 64-byte Ed25519 signature)>\\n``,
    the signature being over the exact bytes of ``manifest.json`` and the key ID that
    of C2SP signed notes (:func:`frostgate.ledger.note.key_id`). The manifest is signed
    with the log's checkpoint key, so one verifier key checks everything.

Every line of every ``.jsonl`` member, and ``manifest.json``, is RFC 8785 (JCS) JSON
(:func:`frostgate.ledger.canonical.encode`), each line ending in ``\\n``; hashes are
64 lowercase hex digits.

Verification
============

:func:`verify_packet` checks, in this order, and stops at the first failure:

1. the archive: at most :attr:`PacketLimits.max_total` bytes; a plain end-of-central-
   directory record (no comment, no ZIP64); exactly the six member names (no extra,
   missing, duplicate or path-like name), each deflated and unencrypted, each member and
   their sum under the size caps, and no member (beyond a small floor) expanding more
   than :attr:`PacketLimits.max_ratio` times, so zip bombs are refused before anything
   is inflated (inflating stops at the declared size and the CRC is checked);
2. ``manifest.sig`` with the verifier key (name, key ID, Ed25519 signature);
3. ``manifest.json``: canonical, the exact schema above;
4. each ``.jsonl`` member's SHA-256 against the manifest;
5. each checkpoint note's signature and origin (:func:`~frostgate.ledger.note.open_checkpoint`
   with the manifest's origin), sizes strictly increasing, the last one of
   ``tree_size``, only the first one at or before the range start;
6. the consistency proof between each consecutive pair of checkpoints;
7. for each entry, in order: contiguous indexes from ``start`` to ``end``, the leaf hash
   recomputed from the bytes of ``entry`` (which must be the RFC 8785 encoding of the
   parsed entry), the chain (``prev_chain_hash`` of entry ``k + 1`` is the
   ``chain_hash`` of entry ``k``, every ``chain_hash`` recomputed, genesis before entry
   0), and its inclusion proof against the newest checkpoint's root;
8. optionally, that a given entry index is in the packet.

Inclusion proofs are checked with a memo of the already-proven ancestors of the previous
entry: a proof is accepted exactly when RFC 9162 §2.1.3.2 verification would accept it
(up to SHA-256 collisions), but consecutive entries cost about two node hashes each
instead of ``log2 N``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from frostgate.ledger.canonical import CanonicalizationError, encode
from frostgate.ledger.hashing import GENESIS, HASH_SIZE
from frostgate.ledger.merkle import ProofError, verify_consistency
from frostgate.ledger.note import Checkpoint, NoteError, Signer, Verifier, open_checkpoint

__all__ = [
    "DEFAULT_LIMITS",
    "PACKET_MEMBERS",
    "PACKET_VERSION",
    "PacketEntry",
    "PacketError",
    "PacketLimits",
    "PacketReport",
    "build_packet",
    "verify_packet",
]

PACKET_VERSION: Final = 1
ENTRIES: Final = "entries.jsonl"
CHECKPOINTS: Final = "checkpoints.jsonl"
CONSISTENCY: Final = "consistency.jsonl"
INCLUSION: Final = "inclusion.jsonl"
MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"
#: The hashed data members, as listed in the manifest's ``files``.
DATA_MEMBERS: Final = (CHECKPOINTS, CONSISTENCY, ENTRIES, INCLUSION)
#: Every member of a packet, in the order they are written (sorted).
PACKET_MEMBERS: Final = tuple(sorted((*DATA_MEMBERS, MANIFEST, SIGNATURE)))

_ZIP_DATE: Final = (1980, 1, 1, 0, 0, 0)
_ZIP_ATTR: Final = 0o644 << 16
_ZIP_UNIX: Final = 3
_EOCD_SIG: Final = b"PK\x05\x06"
_ZIP64_LOCATOR_SIG: Final = b"PK\x06\x07"
_EOCD_SIZE: Final = 22
_MAX_CENTRAL_DIRECTORY: Final = 64 * 1024
_MAX_ZIP_RECORDS: Final = 64
_ZIP_ERRORS: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    OverflowError,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
)

_MANIFEST_KEYS: Final = frozenset({"version", "stream", "origin", "range", "tree_size", "files"})
_RANGE_KEYS: Final = frozenset({"start", "end", "since", "until"})
_ENTRY_KEYS: Final = frozenset({"index", "entry", "leaf_hash", "prev_chain_hash", "chain_hash"})
_CHECKPOINT_KEYS: Final = frozenset({"size", "note"})
_CONSISTENCY_KEYS: Final = frozenset({"first", "second", "hashes"})
_INCLUSION_KEYS: Final = frozenset({"index", "tree_size", "hashes"})
_MAX_INDEX: Final = 2**63 - 1
_PROGRESS_EVERY: Final = 8192

_sha256 = hashlib.sha256
_hexlify = binascii.hexlify
_unhexlify = binascii.unhexlify
_loads = orjson.loads
_SORTED: Final = orjson.OPT_SORT_KEYS
_JSONDecodeError = orjson.JSONDecodeError

# entries.jsonl line layout: JCS sorts the five keys, so every line is
# P_CHAIN <chain hex> P_ENTRY <entry JCS> P_INDEX <index> P_LEAF <leaf hex> P_PREV <prev hex> P_END
_P_CHAIN: Final = b'{"chain_hash":"'
_P_ENTRY: Final = b'","entry":'
_P_INDEX: Final = b',"index":'
_P_LEAF: Final = b',"leaf_hash":"'
_P_PREV: Final = b'","prev_chain_hash":"'
_P_END: Final = b'"}'
_ENTRY_START: Final = len(_P_CHAIN) + 2 * HASH_SIZE + len(_P_ENTRY)
_ENTRY_TAIL: Final = len(_P_INDEX) + len(_P_LEAF) + len(_P_PREV) + len(_P_END) + 4 * HASH_SIZE


class PacketError(ValueError):
    """A packet, or the input to build one, is malformed or fails verification.

    ``index`` is the ledger index of the entry at fault, if the failure is about one.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True, slots=True)
class PacketLimits:
    """Size caps that keep a hostile packet from exhausting memory (zip bombs)."""

    #: Cap on the packet file and on the sum of its members' uncompressed sizes.
    max_total: int = 512 * 1024 * 1024
    #: Cap on ``manifest.json``.
    max_manifest: int = 1024 * 1024
    #: Cap on ``manifest.sig``.
    max_signature: int = 4096
    #: Largest uncompressed / compressed ratio accepted for a member above ``ratio_floor``.
    max_ratio: int = 200
    #: Members no larger than this (uncompressed) are exempt from ``max_ratio``.
    ratio_floor: int = 1024 * 1024


DEFAULT_LIMITS: Final = PacketLimits()


@dataclass(frozen=True, slots=True)
class PacketEntry:
    """One ledger entry for :func:`build_packet`; its leaf hash is computed by the builder."""

    index: int
    entry: Mapping[str, Any]
    prev_chain_hash: bytes
    chain_hash: bytes


@dataclass(frozen=True, slots=True)
class PacketReport:
    """The outcome of :func:`verify_packet`.

    ``checked_entries`` counts entries fully verified (leaf, chain and inclusion) before
    the verdict, ``checkpoints`` the checkpoint signatures verified. The stream, origin,
    tree size and range are filled in once the signed manifest has been verified.
    """

    ok: bool
    checked_entries: int
    checkpoints: int
    first_bad_index: int | None
    reason: str | None
    stream: str | None = None
    origin: str | None = None
    tree_size: int | None = None
    range: Mapping[str, Any] | None = None
    event_index: int | None = None

    @property
    def event_included(self) -> bool | None:
        """Whether ``event_index`` was proven included (``None`` if none was asked)."""
        if self.event_index is None:
            return None
        return self.ok

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``frostgate verify --json`` report)."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "version": PACKET_VERSION,
            "stream": self.stream,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "range": dict(self.range) if self.range is not None else None,
            "checked_entries": self.checked_entries,
            "checkpoints": self.checkpoints,
            "first_bad_index": self.first_bad_index,
            "event_index": self.event_index,
            "event_included": self.event_included,
        }


ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while verifying (checkpoints + entries)."""


# ------------------------------------------------------------------------- helpers


def _hex32(value: object) -> bytes | None:
    """The 32 bytes of a 64-digit lowercase hex string, or ``None`` if it is not one."""
    if type(value) is not str or len(value) != 2 * HASH_SIZE:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == HASH_SIZE and raw.hex() == value else None


def _unhex32(value: bytes) -> bytes | None:
    """The 32 bytes of 64 lowercase hex digits given as ASCII bytes, or ``None``."""
    if len(value) != 2 * HASH_SIZE:
        return None
    try:
        raw = _unhexlify(value)
    except (binascii.Error, ValueError, TypeError):
        return None
    return raw if _hexlify(raw) == value else None


def _require_hex32(value: object, what: str, *, index: int | None = None) -> bytes:
    raw = _hex32(value)
    if raw is None:
        raise PacketError(f"{what} is not a 64-digit lowercase hex SHA-256", index=index)
    return raw


def _is_index(value: object) -> bool:
    return type(value) is int and 0 <= value <= _MAX_INDEX


def _canonical(value: Any, what: str) -> bytes:
    try:
        return encode(value)
    except (CanonicalizationError, TypeError, ValueError) as exc:
        raise PacketError(f"{what} cannot be encoded as RFC 8785 JSON: {exc}") from None


def _parse_line(line: bytes, what: str, keys: frozenset[str]) -> dict[str, Any]:
    """A JSON object with exactly ``keys`` whose encoding is exactly ``line``."""
    try:
        obj = _loads(line)
    except _JSONDecodeError:
        raise PacketError(f"{what} is not valid JSON") from None
    if type(obj) is not dict or obj.keys() != keys:
        raise PacketError(f"{what} must be a JSON object with the keys {', '.join(sorted(keys))}")
    return obj


def _check_canonical(obj: Any, line: bytes, what: str) -> None:
    if _canonical(obj, what) != line:
        raise PacketError(f"{what} is not in RFC 8785 canonical form")


def _split_lines(data: bytes, member: str) -> list[bytes]:
    """The lines of a member: each ends with ``\\n``; empty lines are left to the caller."""
    if not data:
        return []
    if not data.endswith(b"\n"):
        raise PacketError(f"{member} does not end with a newline")
    lines = data.split(b"\n")
    lines.pop()
    return lines


def _nonempty(line: bytes, what: str, index: int | None = None) -> bytes:
    if not line:
        raise PacketError(f"{what} is empty", index=index)
    return line


def _iso_or_none(value: object, what: str) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise PacketError(f"{what} must be an ISO 8601 string or null")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise PacketError(f"{what} is not an ISO 8601 date-time: {value!r}") from None
    return value


def _check_range(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or set(value.keys()) != _RANGE_KEYS:
        raise PacketError(f"{what} must have exactly the keys end, since, start, until")
    start, end = value["start"], value["end"]
    if not _is_index(start) or not _is_index(end) or start > end:
        raise PacketError(f"{what} start and end must be integers with 0 <= start <= end")
    return {
        "start": start,
        "end": end,
        "since": _iso_or_none(value["since"], f"{what} since"),
        "until": _iso_or_none(value["until"], f"{what} until"),
    }


# ------------------------------------------------------------------------ inclusion


_SEP: Final = b'","'
_STRIDE: Final = 2 * HASH_SIZE + len(_SEP)


def _join_hashes(hashes: Sequence[bytes]) -> bytes:
    """Hex hashes as they appear between ``["`` and ``"]`` in a JSON line."""
    return _SEP.join(_hexlify(h) for h in hashes)


class _InclusionChecker:
    """RFC 9162 §2.1.3.2 inclusion verification for increasing indexes, with a memo.

    A proof is given as its JSON text between ``["`` and ``"]``: hex hashes joined by
    ``","`` (element ``i`` at offset ``67 * i``). The walk from a leaf to the root visits
    states ``(k, fn)`` (``k`` right shifts done, ``fn`` the shifted index); the hash
    reached at a state is that of one tree node, and the proof text still to come is
    the path from that node to the root. ``_known[k] = (fn, hash, rest)`` records, per
    level, a node already proven to reach the root with the text ``rest`` (seeded with
    the root itself): as indexes increase, the nodes a later proof can meet are
    ancestors of the previous entry, so one node per level suffices. A proof is
    accepted when its walk reaches a known node with the same hash and the same
    remaining text: its full verification would repeat that proven computation. A
    different hash or different remaining text could only verify through a SHA-256
    collision, so rejecting them is exact. The elements walked are checked to be 64
    lowercase hex digits followed by ``","``; the rest equals text that was checked.
    """

    __slots__ = ("_known", "root", "size")

    def __init__(self, root_hash: bytes, size: int) -> None:
        self.root = root_hash
        self.size = size
        top = (size - 1).bit_length() if size > 0 else 0
        self._known: dict[int, tuple[int, bytes, bytes]] = {top: (0, root_hash, b"")}

    def check(self, index: int, leaf: bytes, proof: bytes) -> None:
        """Raise :class:`PacketError` unless ``proof`` proves ``leaf`` at ``index``."""
        if index >= self.size:
            raise PacketError(
                f"entry {index} is not in the newest checkpoint's tree of size {self.size}",
                index=index,
            )
        stride = _STRIDE
        if proof and (len(proof) + len(_SEP)) % stride:
            raise PacketError(
                f"inclusion proof of entry {index} is not a list of 64-digit hex hashes",
                index=index,
            )
        n = (len(proof) + len(_SEP)) // stride
        known = self._known
        sha = _sha256
        fn, sn, k, r, i = index, self.size - 1, 0, leaf, 0
        steps: list[tuple[int, int, bytes, int]] = []
        while True:
            hit = known.get(k)
            if hit is not None and hit[0] == fn:
                if r != hit[1] or proof[i * stride :] != hit[2]:
                    raise PacketError(
                        f"inclusion proof of entry {index} does not lead to the checkpoint root",
                        index=index,
                    )
                break
            if i == n:
                raise PacketError(
                    f"inclusion proof of entry {index} is shorter than the path to the root",
                    index=index,
                )
            # sn > 0 here: at sn == 0 the walk is at the root, which is always known.
            at = i * stride
            p = _unhex32(proof[at : at + 2 * HASH_SIZE])
            if p is None or (i + 1 < n and proof[at + 2 * HASH_SIZE : at + stride] != _SEP):
                raise PacketError(
                    f"inclusion proof of entry {index}: hash {i} is not 64 lowercase hex digits",
                    index=index,
                )
            i += 1
            if fn & 1 or fn == sn:
                r = sha(b"\x01" + p + r).digest()
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
                    k += 1
            else:
                r = sha(b"\x01" + r + p).digest()
            fn >>= 1
            sn >>= 1
            k += 1
            steps.append((k, fn, r, i))
        for level, node, h, pos in steps:
            known[level] = (node, h, proof[pos * stride :])


# --------------------------------------------------------------------- verification


@dataclass(slots=True)
class _State:
    """What verification has established so far (for the report on failure)."""

    checked_entries: int = 0
    checkpoints: int = 0
    stream: str | None = None
    origin: str | None = None
    tree_size: int | None = None
    range: dict[str, Any] | None = None
    files: dict[str, str] | None = None


def _preflight(data: bytes, limits: PacketLimits) -> None:
    """Refuse, before :mod:`zipfile` parses anything, archives it could choke on."""
    if len(data) == 0:
        raise PacketError("packet is empty")
    if len(data) > limits.max_total:
        raise PacketError(f"packet is larger than {limits.max_total} bytes; refused")
    if len(data) < _EOCD_SIZE or data[-_EOCD_SIZE : -_EOCD_SIZE + 4] != _EOCD_SIG:
        raise PacketError(
            "packet is not a zip archive of this format (no end-of-central-directory "
            "record at its end; truncated?)"
        )
    disk, cd_disk, here, total, cd_size, cd_offset, comment = struct.unpack(
        "<HHHHIIH", data[-_EOCD_SIZE + 4 :]
    )
    if comment:
        raise PacketError("packet zip's end record announces a comment it does not have")
    if data[-_EOCD_SIZE - 20 : -_EOCD_SIZE - 16] == _ZIP64_LOCATOR_SIG:
        raise PacketError("packet zip uses ZIP64 records, which this format never writes")
    if disk or cd_disk or here != total:
        raise PacketError("packet zip is a multi-disk archive")
    if total > _MAX_ZIP_RECORDS or cd_size > _MAX_CENTRAL_DIRECTORY:
        raise PacketError(
            f"packet zip has {total} members, expected {len(PACKET_MEMBERS)}; refused"
        )
    if cd_offset + cd_size > len(data) - _EOCD_SIZE:
        raise PacketError("packet zip is truncated (central directory out of bounds)")


def _check_members(infos: list[zipfile.ZipInfo], limits: PacketLimits) -> None:
    names = [info.filename for info in infos]
    for name in names:
        if name not in PACKET_MEMBERS:
            raise PacketError(f"packet has an unexpected member {name!r}")
    for name in PACKET_MEMBERS:
        count = names.count(name)
        if count == 0:
            raise PacketError(f"packet is missing its member {name!r}")
        if count > 1:
            raise PacketError(f"packet has member {name!r} {count} times")
    total = 0
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            raise PacketError(f"packet member {name!r} is encrypted")
        if info.compress_type != zipfile.ZIP_DEFLATED:
            raise PacketError(f"packet member {name!r} is not deflated")
        cap = {MANIFEST: limits.max_manifest, SIGNATURE: limits.max_signature}.get(
            name, limits.max_total
        )
        if info.file_size > cap:
            raise PacketError(
                f"packet member {name!r} is {info.file_size} bytes uncompressed, over the "
                f"{cap}-byte cap; refused"
            )
        total += info.file_size
        if total > limits.max_total:
            raise PacketError(
                f"packet members total more than {limits.max_total} bytes uncompressed; refused"
            )
        if info.file_size > limits.ratio_floor and (
            info.compress_size <= 0 or info.file_size > limits.max_ratio * info.compress_size
        ):
            raise PacketError(
                f"packet member {name!r} expands more than {limits.max_ratio} times "
                "(zip bomb?); refused"
            )


def _read_zip(data: bytes, limits: PacketLimits) -> dict[str, bytes]:
    _preflight(data, limits)
    members: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            _check_members(infos, limits)
            for info in infos:
                with zf.open(info) as handle:
                    content = handle.read(info.file_size + 1)
                if len(content) != info.file_size:
                    raise PacketError(f"packet member {info.filename!r} has the wrong size")
                members[info.filename] = content
    except PacketError:
        raise
    except _ZIP_ERRORS as exc:
        detail = str(exc) or type(exc).__name__
        raise PacketError(f"packet is not a valid zip archive: {detail}") from None
    return members


def _b64decode_strict(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _verify_signature(manifest: bytes, signature: bytes, verifier: Verifier) -> None:
    try:
        text = signature.decode("utf-8")
    except UnicodeDecodeError:
        raise PacketError("manifest.sig is not valid UTF-8") from None
    if not text.endswith("\n") or "\n" in text[:-1]:
        raise PacketError("manifest.sig must be exactly one line ending in a newline")
    name, sep, sig64 = text[:-1].partition(" ")
    if not sep or not name or " " in sig64:
        raise PacketError("manifest.sig must be '<key name> <base64 signature>'")
    raw = _b64decode_strict(sig64)
    if raw is None:
        raise PacketError("manifest.sig signature is not canonical base64")
    if len(raw) != 4 + 64:
        raise PacketError("manifest.sig must hold a 4-byte key ID and a 64-byte signature")
    if name != verifier.name:
        raise PacketError(
            f"manifest is signed by key {name!r}, not by the verifier key {verifier.name!r}"
        )
    if not hmac.compare_digest(raw[:4], verifier.key_id):
        raise PacketError(
            f"manifest signature key ID {raw[:4].hex()} is not the verifier key's "
            f"{verifier.key_id.hex()} (another key named {name!r}?)"
        )
    if not verifier.verify(manifest, raw[4:]):
        raise PacketError("manifest signature is invalid: manifest.json was altered after signing")


@dataclass(frozen=True, slots=True)
class _Manifest:
    origin: str
    tree_size: int
    start: int
    end: int
    files: dict[str, str]


def _parse_manifest(manifest: bytes, state: _State) -> _Manifest:
    what = "manifest.json"
    try:
        obj = _loads(manifest)
    except _JSONDecodeError:
        raise PacketError("manifest.json is not valid JSON") from None
    if type(obj) is not dict or obj.keys() != _MANIFEST_KEYS:
        raise PacketError(
            f"manifest.json must have exactly the keys {', '.join(sorted(_MANIFEST_KEYS))}"
        )
    _check_canonical(obj, manifest, what)
    if type(obj["version"]) is not int or obj["version"] != PACKET_VERSION:
        raise PacketError(f"unsupported packet version {obj['version']!r} (this verifier reads 1)")
    stream, origin, tree_size = obj["stream"], obj["origin"], obj["tree_size"]
    if type(stream) is not str or not stream:
        raise PacketError("manifest stream must be a non-empty string")
    if type(origin) is not str or not origin:
        raise PacketError("manifest origin must be a non-empty string")
    if not _is_index(tree_size):
        raise PacketError("manifest tree_size must be a non-negative integer")
    rng = _check_range(obj["range"], "manifest range")
    if rng["end"] > tree_size:
        raise PacketError(
            f"manifest range ends at {rng['end']}, beyond the newest checkpoint's size {tree_size}"
        )
    files = obj["files"]
    if type(files) is not dict or files.keys() != set(DATA_MEMBERS):
        raise PacketError(f"manifest files must list exactly {', '.join(DATA_MEMBERS)}")
    for name in DATA_MEMBERS:
        _require_hex32(files[name], f"manifest hash of {name}")
    state.stream, state.origin, state.tree_size = stream, origin, tree_size
    state.range, state.files = rng, dict(files)
    return _Manifest(origin, tree_size, rng["start"], rng["end"], dict(files))


def _open_checkpoints(
    items: Sequence[tuple[int, str]], verifier: Verifier, origin: str, start: int, tree_size: int
) -> list[Checkpoint]:
    """Open every checkpoint; sizes strictly increasing, last one ``tree_size``."""
    if not items:
        raise PacketError("packet has no checkpoint")
    checkpoints: list[Checkpoint] = []
    for number, (size, note) in enumerate(items, 1):
        what = f"{CHECKPOINTS} line {number}"
        try:
            checkpoint = open_checkpoint(note, verifier, origin=origin)
        except NoteError as exc:
            raise PacketError(f"{what}: {exc}") from None
        if checkpoint.size != size:
            raise PacketError(f"{what}: note is for size {checkpoint.size}, line says {size}")
        if checkpoints and size <= checkpoints[-1].size:
            raise PacketError(f"{what}: checkpoint sizes are not strictly increasing")
        if checkpoints and size <= start:
            raise PacketError(
                f"{what}: only the newest checkpoint at or before the range start ({start}) "
                "belongs in the packet"
            )
        checkpoints.append(checkpoint)
    if checkpoints[-1].size != tree_size:
        raise PacketError(
            f"newest checkpoint has size {checkpoints[-1].size}, manifest says {tree_size}"
        )
    return checkpoints


def _check_consistency(
    checkpoints: Sequence[Checkpoint], proofs: Sequence[tuple[int, int, Sequence[bytes]]]
) -> None:
    if len(proofs) != len(checkpoints) - 1:
        raise PacketError(
            f"packet has {len(proofs)} consistency proofs for {len(checkpoints)} checkpoints"
        )
    for number, ((first, second, hashes), old, new) in enumerate(
        zip(proofs, checkpoints, checkpoints[1:], strict=False), 1
    ):
        if (first, second) != (old.size, new.size):
            raise PacketError(
                f"{CONSISTENCY} line {number} is for sizes {first} -> {second}, expected "
                f"{old.size} -> {new.size}"
            )
        try:
            verify_consistency(first, second, hashes, old.root, new.root)
        except ProofError as exc:
            raise PacketError(
                f"checkpoints of sizes {first} and {second} are not consistent: {exc}"
            ) from None


def _checkpoint_items(data: bytes) -> list[tuple[int, str]]:
    items: list[tuple[int, str]] = []
    for number, line in enumerate(_split_lines(data, CHECKPOINTS), 1):
        what = f"{CHECKPOINTS} line {number}"
        _nonempty(line, what)
        obj = _parse_line(line, what, _CHECKPOINT_KEYS)
        if not _is_index(obj["size"]) or type(obj["note"]) is not str:
            raise PacketError(f"{what}: size must be a non-negative integer and note a string")
        _check_canonical(obj, line, what)
        items.append((obj["size"], obj["note"]))
    return items


def _consistency_items(data: bytes) -> list[tuple[int, int, list[bytes]]]:
    items: list[tuple[int, int, list[bytes]]] = []
    for number, line in enumerate(_split_lines(data, CONSISTENCY), 1):
        what = f"{CONSISTENCY} line {number}"
        _nonempty(line, what)
        obj = _parse_line(line, what, _CONSISTENCY_KEYS)
        first, second, hashes = obj["first"], obj["second"], obj["hashes"]
        if not _is_index(first) or not _is_index(second) or type(hashes) is not list:
            raise PacketError(f"{what}: first and second must be sizes and hashes a list")
        proof = [_require_hex32(h, f"{what} hash {i}") for i, h in enumerate(hashes)]
        _check_canonical(obj, line, what)
        items.append((first, second, proof))
    return items


def _entry_line(
    index: int, entry_json: bytes, leaf_hex: bytes, prev_hex: bytes, chain_hex: bytes
) -> bytes:
    """The RFC 8785 ``entries.jsonl`` line (JCS is compositional: keys sorted, no spaces)."""
    return b"".join(
        (
            _P_CHAIN,
            chain_hex,
            _P_ENTRY,
            entry_json,
            _P_INDEX,
            b"%d" % index,
            _P_LEAF,
            leaf_hex,
            _P_PREV,
            prev_hex,
            _P_END,
        )
    )


def _entry_line_slow(
    line: bytes, number: int, index: int, prev: bytes | None
) -> tuple[bytes, bytes]:
    """Check one entries.jsonl line field by field; return ``(leaf, chain)``.

    The slow path: it runs for the first entry of a range that does not start at 0
    (``prev`` is ``None``: its ``prev_chain_hash`` is taken as given) and to name the
    problem when the fast path rejects a line.
    """
    what = f"{ENTRIES} line {number}"
    _nonempty(line, what, index)
    try:
        obj = _loads(line)
    except _JSONDecodeError:
        raise PacketError(f"{what} is not valid JSON", index=index) from None
    if type(obj) is not dict or obj.keys() != _ENTRY_KEYS:
        raise PacketError(
            f"{what} must be a JSON object with the keys {', '.join(sorted(_ENTRY_KEYS))}",
            index=index,
        )
    found = obj["index"]
    if not _is_index(found):
        raise PacketError(f"{what}: index must be a non-negative integer", index=index)
    if found != index:
        raise PacketError(
            f"entries are not contiguous: {what} holds entry {found}, expected entry {index}",
            index=index,
        )
    entry = obj["entry"]
    if type(entry) is not dict:
        raise PacketError(f"entry {index} is not a JSON object", index=index)
    leaf_field = _require_hex32(obj["leaf_hash"], f"entry {index} leaf_hash", index=index)
    prev_field = _require_hex32(
        obj["prev_chain_hash"], f"entry {index} prev_chain_hash", index=index
    )
    chain_field = _require_hex32(obj["chain_hash"], f"entry {index} chain_hash", index=index)
    try:
        entry_json = encode(entry)
    except (CanonicalizationError, TypeError, ValueError) as exc:
        raise PacketError(
            f"entry {index} cannot be encoded as RFC 8785 JSON: {exc}", index=index
        ) from None
    leaf = _sha256(b"\x00" + entry_json).digest()
    if leaf != leaf_field:
        raise PacketError(
            f"entry {index} does not match its leaf_hash (SHA-256(0x00 ‖ RFC 8785(entry))): "
            "the entry or its hash was altered",
            index=index,
        )
    if prev is not None and prev_field != prev:
        link = "the genesis value" if index == 0 else f"the chain_hash of entry {index - 1}"
        raise PacketError(
            f"hash chain broken at entry {index}: prev_chain_hash is not {link}", index=index
        )
    chain = _sha256(prev_field + leaf).digest()
    if chain != chain_field:
        raise PacketError(
            f"entry {index}: chain_hash is not SHA-256(prev_chain_hash ‖ leaf_hash)", index=index
        )
    expected = _entry_line(index, entry_json, _hexlify(leaf), _hexlify(prev_field), _hexlify(chain))
    if line != expected:
        raise PacketError(f"{what} is not in RFC 8785 canonical form", index=index)
    return leaf, chain


_P_HASHES: Final = b'{"hashes":["'


def _inclusion_proof(line: bytes, number: int, index: int, tree_size: int) -> bytes:
    """The proof text (hex hashes joined by ``","``) of one inclusion.jsonl line.

    Fast path: the line must be ``{"hashes":["h0","h1",...],"index":i,"tree_size":N}``
    byte for byte; the inclusion check then validates the hashes and separators, so a
    line that passes both is exactly the RFC 8785 encoding of a well-formed proof.
    Anything else is parsed as JSON to say what is wrong.
    """
    suffix = b'"],"index":%d,"tree_size":%d}' % (index, tree_size)
    if line.startswith(_P_HASHES) and line.endswith(suffix):
        proof = line[len(_P_HASHES) : len(line) - len(suffix)]
        if proof:
            return proof
    elif line == b'{"hashes":[],"index":%d,"tree_size":%d}' % (index, tree_size):
        return b""
    what = f"{INCLUSION} line {number}"
    _nonempty(line, what, index)
    try:
        obj = _loads(line)
    except _JSONDecodeError:
        raise PacketError(f"{what} is not valid JSON", index=index) from None
    if type(obj) is not dict or obj.keys() != _INCLUSION_KEYS:
        raise PacketError(
            f"{what} must be a JSON object with the keys hashes, index, tree_size", index=index
        )
    if type(obj["index"]) is not int or obj["index"] != index:
        raise PacketError(
            f"{what} is the proof of entry {obj['index']!r}, expected entry {index}", index=index
        )
    if type(obj["tree_size"]) is not int or obj["tree_size"] != tree_size:
        raise PacketError(
            f"{what} is a proof in a tree of size {obj['tree_size']!r}, expected {tree_size}",
            index=index,
        )
    hashes = obj["hashes"]
    if type(hashes) is not list:
        raise PacketError(f"{what}: hashes must be a list", index=index)
    for i, h in enumerate(hashes):
        _require_hex32(h, f"{what} hash {i}", index=index)
    raise PacketError(f"{what} is not in RFC 8785 canonical form", index=index)


def _verify_entries(
    entries: bytes,
    inclusion: bytes,
    checker: _InclusionChecker,
    start: int,
    end: int,
    state: _State,
    progress: ProgressCallback | None,
    progress_base: int,
    progress_total: int,
) -> None:
    entry_lines = _split_lines(entries, ENTRIES)
    proof_lines = _split_lines(inclusion, INCLUSION)
    count = end - start
    for member, lines, what in ((ENTRIES, entry_lines, "lines"), (INCLUSION, proof_lines, "lines")):
        if len(lines) > count:
            raise PacketError(f"{member} has {len(lines)} {what}; the range holds {count} entries")
    prev: bytes | None = GENESIS if start == 0 else None
    prev_hex = _hexlify(GENESIS)
    sha = _sha256
    hexlify = _hexlify
    loads = _loads
    join = b"".join
    check = checker.check
    tree_size = checker.size
    n_entries, n_proofs = len(entry_lines), len(proof_lines)
    for offset in range(count):
        index = start + offset
        number = offset + 1
        if offset >= n_entries:
            raise PacketError(
                f"{ENTRIES} ends after {n_entries} entries; the range holds {count}", index=index
            )
        line = entry_lines[offset]
        leaf = chain = None
        if prev is not None:
            # Fast path: slice the entry's bytes out of the expected line layout,
            # re-encode the parsed entry, hash, and rebuild the whole line.
            digits = b"%d" % index
            entry_json = line[_ENTRY_START : len(line) - _ENTRY_TAIL - len(digits)]
            try:
                entry = loads(entry_json)
            except _JSONDecodeError:
                entry = None
            if type(entry) is dict:
                try:
                    canonical = encode(entry)
                except (CanonicalizationError, TypeError, ValueError):
                    canonical = None
                if canonical == entry_json:
                    leaf_ = sha(b"\x00" + entry_json).digest()
                    chain_ = sha(prev + leaf_).digest()
                    chain_hex = hexlify(chain_)
                    expected = join(
                        (
                            _P_CHAIN,
                            chain_hex,
                            _P_ENTRY,
                            entry_json,
                            _P_INDEX,
                            digits,
                            _P_LEAF,
                            hexlify(leaf_),
                            _P_PREV,
                            prev_hex,
                            _P_END,
                        )
                    )
                    if line == expected:
                        leaf, chain = leaf_, chain_
                        prev_hex = chain_hex
        if leaf is None or chain is None:
            leaf, chain = _entry_line_slow(line, number, index, prev)
            prev_hex = hexlify(chain)
        prev = chain

        if offset >= n_proofs:
            raise PacketError(
                f"{INCLUSION} ends after {n_proofs} proofs; the range holds {count}", index=index
            )
        check(index, leaf, _inclusion_proof(proof_lines[offset], number, index, tree_size))
        state.checked_entries = number
        if progress is not None and number % _PROGRESS_EVERY == 0:
            progress(progress_base + number, progress_total)


def _verify_members(
    members: Mapping[str, bytes],
    verifier: Verifier,
    state: _State,
    *,
    event_index: int | None,
    progress: ProgressCallback | None,
) -> None:
    _verify_signature(members[MANIFEST], members[SIGNATURE], verifier)
    manifest = _parse_manifest(members[MANIFEST], state)
    for name in DATA_MEMBERS:
        digest = _sha256(members[name]).hexdigest()
        if not hmac.compare_digest(digest, manifest.files[name]):
            raise PacketError(f"{name} does not match its SHA-256 in the signed manifest")
    start, end = manifest.start, manifest.end
    items = _checkpoint_items(members[CHECKPOINTS])
    total = len(items) + (end - start)
    checkpoints = _open_checkpoints(items, verifier, manifest.origin, start, manifest.tree_size)
    state.checkpoints = len(checkpoints)
    if progress is not None:
        progress(len(checkpoints), total)
    _check_consistency(checkpoints, _consistency_items(members[CONSISTENCY]))
    checker = _InclusionChecker(checkpoints[-1].root, checkpoints[-1].size)
    _verify_entries(
        members[ENTRIES],
        members[INCLUSION],
        checker,
        start,
        end,
        state,
        progress,
        len(checkpoints),
        total,
    )
    if progress is not None:
        progress(total, total)
    if event_index is not None and not start <= event_index < end:
        raise PacketError(
            f"entry {event_index} is not in this packet (it holds entries {start} to {end - 1})"
            if end > start
            else f"entry {event_index} is not in this packet (it holds no entries)"
        )


def verify_packet(
    data: bytes | bytearray | memoryview,
    verifier: Verifier,
    *,
    event_index: int | None = None,
    progress: ProgressCallback | None = None,
    limits: PacketLimits = DEFAULT_LIMITS,
) -> PacketReport:
    """Verify an audit packet offline with the log's verifier key; never raises.

    Returns a :class:`PacketReport` with ``ok=True``, or ``ok=False`` and the first
    problem found as ``reason`` (and ``first_bad_index`` when it concerns one entry).
    ``event_index``, if given, must be the index of an entry in the packet.
    ``progress(done, total)`` is called now and then with counts of checkpoints plus
    entries.
    """
    state = _State()
    reason: str | None = None
    bad: int | None = None
    try:
        if not isinstance(verifier, Verifier):
            raise PacketError("verifier must be a frostgate.ledger.Verifier")
        if event_index is not None and not _is_index(event_index):
            raise PacketError("event index must be a non-negative integer")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise PacketError("packet must be bytes")
        members = _read_zip(bytes(data), limits)
        _verify_members(members, verifier, state, event_index=event_index, progress=progress)
    except PacketError as exc:
        reason, bad = str(exc), exc.index
    except MemoryError:
        reason = "packet is too large to verify in the available memory"
    except Exception as exc:  # noqa: BLE001 - the verifier's contract: a verdict, never a traceback
        reason = f"internal error while verifying the packet: {type(exc).__name__}: {exc}"
    return PacketReport(
        ok=reason is None,
        checked_entries=state.checked_entries,
        checkpoints=state.checkpoints,
        first_bad_index=bad,
        reason=reason,
        stream=state.stream,
        origin=state.origin,
        tree_size=state.tree_size,
        range=state.range,
        event_index=event_index,
    )


# -------------------------------------------------------------------------- building


def _proof_hexes(hashes: object, what: str) -> list[str]:
    if isinstance(hashes, str | bytes) or not isinstance(hashes, Sequence):
        raise PacketError(f"{what} must be a list of 32-byte hashes")
    out: list[str] = []
    for i, h in enumerate(hashes):
        if type(h) is not bytes or len(h) != HASH_SIZE:
            raise PacketError(f"{what} element {i} must be 32 bytes")
        out.append(h.hex())
    return out


def _write_zip(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in PACKET_MEMBERS:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _ZIP_UNIX
            info.external_attr = _ZIP_ATTR
            zf.writestr(info, members[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def build_packet(
    *,
    stream: str,
    origin: str,
    entries: Sequence[PacketEntry],
    checkpoints: Sequence[tuple[int, str]],
    consistency: Sequence[tuple[int, int, list[bytes]]],
    inclusion: Sequence[tuple[int, int, list[bytes]]],
    range_meta: Mapping[str, Any],
    signer: Signer,
    limits: PacketLimits = DEFAULT_LIMITS,
) -> bytes:
    """Build a version 1 audit packet (the zip bytes) for entries ``range_meta[start:end]``.

    ``entries`` are the range's entries in index order; ``checkpoints`` the ``(size,
    signed note)`` of every checkpoint from the newest at or before ``start`` (if any)
    to the newest; ``consistency`` the ``(size_a, size_b, proof)`` of each consecutive
    pair; ``inclusion`` the ``(index, newest size, proof)`` of each entry; ``range_meta``
    has ``start``, ``end`` (exclusive), ``since`` and ``until`` (ISO 8601 or ``None``).
    ``signer`` is the log's checkpoint key; it signs the manifest.

    The builder computes each leaf hash itself and verifies the packet it wrote with
    ``signer``'s verifier key, so inconsistent input (a wrong chain hash, a proof that
    does not verify, a checkpoint of another origin or key, ...) raises
    :class:`PacketError` instead of producing a packet that would not verify.
    """
    if not isinstance(signer, Signer):
        raise PacketError("signer must be a frostgate.ledger.Signer")
    if type(stream) is not str or not stream:
        raise PacketError("stream must be a non-empty string")
    if type(origin) is not str or not origin:
        raise PacketError("origin must be a non-empty string")
    rng = _check_range(range_meta, "range_meta")
    start, end = rng["start"], rng["end"]
    if len(entries) != end - start:
        raise PacketError(f"range [{start}, {end}) needs {end - start} entries, got {len(entries)}")
    if not checkpoints:
        raise PacketError("a packet needs at least one checkpoint")

    entry_lines: list[bytes] = []
    for offset, item in enumerate(entries):
        index = start + offset
        if not isinstance(item, PacketEntry) or item.index != index:
            raise PacketError(f"entries must be PacketEntry items with indexes {start}..{end - 1}")
        if not isinstance(item.entry, Mapping):
            raise PacketError(f"entry {index} must be a mapping", index=index)
        for what, h in (("prev_chain_hash", item.prev_chain_hash), ("chain_hash", item.chain_hash)):
            if type(h) is not bytes or len(h) != HASH_SIZE:
                raise PacketError(f"entry {index} {what} must be 32 bytes", index=index)
        entry_json = _canonical(dict(item.entry), f"entry {index}")
        leaf = _sha256(b"\x00" + entry_json).digest()
        if _sha256(item.prev_chain_hash + leaf).digest() != item.chain_hash:
            raise PacketError(
                f"entry {index}: chain_hash is not SHA-256(prev_chain_hash ‖ leaf_hash)",
                index=index,
            )
        entry_lines.append(
            _entry_line(
                index,
                entry_json,
                _hexlify(leaf),
                _hexlify(item.prev_chain_hash),
                _hexlify(item.chain_hash),
            )
            + b"\n"
        )

    checkpoint_lines: list[bytes] = []
    for size, note in checkpoints:
        checkpoint_lines.append(_canonical({"size": size, "note": note}, "checkpoint") + b"\n")
    consistency_lines: list[bytes] = []
    for first, second, hashes in consistency:
        proof = _proof_hexes(hashes, f"consistency proof {first} -> {second}")
        line = _canonical({"first": first, "second": second, "hashes": proof}, "consistency proof")
        consistency_lines.append(line + b"\n")
    inclusion_lines: list[bytes] = []
    for index, size, hashes in inclusion:
        proof = _proof_hexes(hashes, f"inclusion proof of entry {index}")
        line = _canonical({"index": index, "tree_size": size, "hashes": proof}, "inclusion proof")
        inclusion_lines.append(line + b"\n")

    members = {
        ENTRIES: b"".join(entry_lines),
        CHECKPOINTS: b"".join(checkpoint_lines),
        CONSISTENCY: b"".join(consistency_lines),
        INCLUSION: b"".join(inclusion_lines),
    }
    newest = checkpoints[-1][0]
    manifest = _canonical(
        {
            "version": PACKET_VERSION,
            "stream": stream,
            "origin": origin,
            "range": rng,
            "tree_size": newest,
            "files": {name: _sha256(members[name]).hexdigest() for name in DATA_MEMBERS},
        },
        "manifest",
    )
    members[MANIFEST] = manifest
    signature = base64.b64encode(signer.key_id + signer.sign(manifest)).decode("ascii")
    members[SIGNATURE] = f"{signer.name} {signature}\n".encode()

    state = _State()
    try:
        _verify_members(members, signer.verifier(), state, event_index=None, progress=None)
    except PacketError as exc:
        raise PacketError(f"refusing to build an invalid packet: {exc}", index=exc.index) from None
    data = _write_zip(members)
    try:
        _preflight(data, limits)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _check_members(zf.infolist(), limits)
    except PacketError as exc:
        raise PacketError(f"refusing to build a packet the verifier would refuse: {exc}") from None
    return data
