"""Audit packets (``frostgate.ledger.packet``): build, verify, and refuse every tamper.

Packets are built from a real ``MemoryTree`` over synthetic decision entries, with
checkpoints signed by a freshly generated Ed25519 key. Tampered packets are made the
way an attacker (or a buggy exporter) would: edit a member and, where the point is to
get past the manifest, re-hash and re-sign it with the log's own key.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import random
import re
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frostgate.ledger import (
    GENESIS,
    MemoryTree,
    Signer,
    Verifier,
    encode,
    format_checkpoint,
    generate_signing_key,
    inclusion_proof,
    leaf_hash,
    sign_note,
    verify_inclusion,
)
from frostgate.ledger import ProofError as MerkleProofError
from frostgate.ledger.packet import (
    PACKET_MEMBERS,
    PacketEntry,
    PacketError,
    PacketLimits,
    PacketReport,
    _InclusionChecker,
    _join_hashes,
    build_packet,
    verify_packet,
)

STREAM = "decisions/acme"
ORIGIN = "frostgate.test/decisions/acme"
SIZES = (7, 64, 100, 173, 256, 300)
DATA = ("checkpoints.jsonl", "consistency.jsonl", "entries.jsonl", "inclusion.jsonl")


def make_entry(i: int) -> dict[str, Any]:
    """A decision ledger entry shaped like ``store.entries.decision_entry``."""
    return {
        "v": 1,
        "stream": STREAM,
        "index": i,
        "tenant_id": "acme",
        "event_id": f"01J9Z8X7Y6W5V4U3T2S1R{i:05d}",
        "source": "gw-01",
        "event_type": "auth.failure",
        "src_ip": f"203.0.113.{i % 250}",
        "threat_level": ("low", "medium", "high")[i % 3],
        "score": i % 100,
        "rules": ["R-100", "R-204"][: i % 3],
        "actions": [],
        "diff": None if i % 4 else {"added": ["block"], "note": "élan — ok"},
        "policy_hash": "sha256:" + "0123456789abcdef" * 4,
        "created_at": f"2025-01-01T12:{i // 60 % 60:02d}:{i % 60:02d}.000000Z",
        "request_sha256": hashlib.sha256(b"q%d" % i).hexdigest(),
        "response_sha256": hashlib.sha256(b"r%d" % i).hexdigest(),
    }


@dataclass
class Log:
    signer: Signer
    verifier: Verifier
    origin: str
    tree: MemoryTree = field(default_factory=MemoryTree)
    entries: list[dict[str, Any]] = field(default_factory=list)
    chain: list[bytes] = field(default_factory=list)  # chain[i] = chain hash after entry i
    notes: dict[int, str] = field(default_factory=dict)

    def prev(self, i: int) -> bytes:
        return GENESIS if i == 0 else self.chain[i - 1]

    def append(self, entry: dict[str, Any]) -> None:
        leaf = leaf_hash(encode(entry))
        self.chain.append(hashlib.sha256(self.prev(len(self.entries)) + leaf).digest())
        self.entries.append(entry)
        self.tree.append(leaf)

    def checkpoint(self, size: int) -> None:
        self.notes[size] = sign_note(
            format_checkpoint(self.origin, size, self.tree.root(size)), self.signer
        )

    def inputs(
        self, start: int, end: int, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        """``build_packet`` keyword arguments for entries ``[start, end)``."""
        sizes = sorted(self.notes)
        chosen = [s for s in sizes if s <= start][-1:] + [s for s in sizes if s > start]
        newest = chosen[-1]
        return {
            "stream": STREAM,
            "origin": self.origin,
            "entries": [
                PacketEntry(i, self.entries[i], self.prev(i), self.chain[i])
                for i in range(start, end)
            ],
            "checkpoints": [(s, self.notes[s]) for s in chosen],
            "consistency": [
                (a, b, self.tree.consistency_proof(a, b)) for a, b in itertools.pairwise(chosen)
            ],
            "inclusion": [
                (i, newest, self.tree.inclusion_proof(i, newest)) for i in range(start, end)
            ],
            "range_meta": {"start": start, "end": end, "since": since, "until": until},
            "signer": self.signer,
        }

    def build(self, start: int, end: int, **kw: Any) -> bytes:
        return build_packet(**self.inputs(start, end, **kw))


def make_log(
    n: int, sizes: tuple[int, ...], *, name: str = "log.test", origin: str = ORIGIN
) -> Log:
    skey, vkey = generate_signing_key(name)
    log = Log(Signer.from_skey(skey), Verifier.from_vkey(vkey), origin)
    for i in range(n):
        log.append(make_entry(i))
    for size in sizes:
        log.checkpoint(size)
    return log


@pytest.fixture(scope="module")
def log() -> Log:
    # 310 entries; the newest checkpoint covers 300 of them.
    return make_log(310, SIZES)


@pytest.fixture(scope="module")
def packet(log: Log) -> bytes:
    return log.build(120, 190, since="2025-01-01T12:02:00Z", until="2025-01-01T12:03:10Z")


# ------------------------------------------------------------------ zip helpers


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def rezip(members: dict[str, bytes]) -> bytes:
    """A plain zip of ``members`` (in the given order), deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def resign(members: dict[str, bytes], signer: Signer, **manifest_changes: Any) -> bytes:
    """Re-hash the data members into the manifest, apply changes, re-sign, re-zip."""
    manifest = orjson.loads(members["manifest.json"])
    manifest["files"] = {
        name: hashlib.sha256(members[name]).hexdigest() for name in DATA if name in members
    }
    manifest.update(manifest_changes)
    out = dict(members)
    out["manifest.json"] = encode(manifest)
    sig = base64.b64encode(signer.key_id + signer.sign(out["manifest.json"])).decode()
    out["manifest.sig"] = f"{signer.name} {sig}\n".encode()
    return rezip(out)


def lines(content: bytes) -> list[bytes]:
    return content.splitlines()


def joined(items: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in items)


def deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@dataclass
class Raw:
    """One member of a hand-made zip (for archives ``zipfile`` would not write)."""

    name: bytes
    data: bytes  # as stored (compressed unless method 0)
    crc: int
    size: int  # declared uncompressed size
    method: int = 8
    flags: int = 0


def raw_member(name: str, content: bytes) -> Raw:
    return Raw(name.encode(), deflate_raw(content), zlib.crc32(content), len(content))


def raw_zip(members: list[Raw], comment: bytes = b"") -> bytes:
    out = bytearray()
    central = bytearray()
    for m in members:
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            m.flags,
            m.method,
            0,
            0x21,
            m.crc,
            len(m.data),
            m.size,
            len(m.name),
            0,
        )
        out += m.name + m.data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            0x0314,
            20,
            m.flags,
            m.method,
            0,
            0x21,
            m.crc,
            len(m.data),
            m.size,
            len(m.name),
            0,
            0,
            0,
            0,
            0o644 << 16,
            offset,
        )
        central += m.name
    cd_offset = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        len(members),
        len(members),
        len(central),
        cd_offset,
        len(comment),
    )
    return bytes(out + comment)


def raw_from(members: dict[str, bytes]) -> list[Raw]:
    return [raw_member(name, content) for name, content in members.items()]


def assert_fails(report: PacketReport, *fragments: str, first_bad_index: int | None = None) -> None:
    assert isinstance(report, PacketReport)
    assert report.ok is False
    assert report.reason is not None
    for fragment in fragments:
        assert fragment in report.reason, report.reason
    assert not report.reason.startswith("internal error"), report.reason
    if first_bad_index is not None:
        assert report.first_bad_index == first_bad_index, report


# ------------------------------------------------------------------- valid packets


def test_valid_packet_verifies(log: Log, packet: bytes) -> None:
    report = verify_packet(packet, log.verifier)
    assert report.ok, report.reason
    assert report.reason is None
    assert report.checked_entries == 70
    assert report.checkpoints == 4  # 100 (newest at or before 120), 173, 256, 300
    assert report.first_bad_index is None
    assert report.as_dict() == {
        "ok": True,
        "reason": None,
        "version": 1,
        "stream": STREAM,
        "origin": ORIGIN,
        "tree_size": 300,
        "range": {
            "start": 120,
            "end": 190,
            "since": "2025-01-01T12:02:00Z",
            "until": "2025-01-01T12:03:10Z",
        },
        "checked_entries": 70,
        "checkpoints": 4,
        "first_bad_index": None,
        "event_index": None,
        "event_included": None,
    }
    orjson.dumps(report.as_dict())  # JSON-ready


def test_packet_layout(log: Log, packet: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(packet)) as zf:
        infos = zf.infolist()
        assert zf.comment == b""
    assert [i.filename for i in infos] == sorted(PACKET_MEMBERS) == list(PACKET_MEMBERS)
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr == 0o644 << 16
        assert info.create_system == 3
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.extra == b""
        assert info.flag_bits & 0x08 == 0  # no data descriptor
    members = unzip(packet)

    # Every line of every member, and the manifest, is RFC 8785 JSON.
    for name in DATA:
        assert members[name].endswith(b"\n")
        for line in lines(members[name]):
            assert encode(orjson.loads(line)) == line
    manifest = orjson.loads(members["manifest.json"])
    assert encode(manifest) == members["manifest.json"]
    assert manifest == {
        "version": 1,
        "stream": STREAM,
        "origin": ORIGIN,
        "range": {
            "start": 120,
            "end": 190,
            "since": "2025-01-01T12:02:00Z",
            "until": "2025-01-01T12:03:10Z",
        },
        "tree_size": 300,
        "files": {name: hashlib.sha256(members[name]).hexdigest() for name in DATA},
    }

    entries = [orjson.loads(line) for line in lines(members["entries.jsonl"])]
    assert [e["index"] for e in entries] == list(range(120, 190))
    for e in entries:
        i = e["index"]
        assert e["entry"] == log.entries[i]
        assert e["leaf_hash"] == leaf_hash(encode(log.entries[i])).hex()
        assert e["prev_chain_hash"] == log.prev(i).hex()
        assert e["chain_hash"] == log.chain[i].hex()
    checkpoints = [orjson.loads(line) for line in lines(members["checkpoints.jsonl"])]
    assert checkpoints == [{"size": s, "note": log.notes[s]} for s in (100, 173, 256, 300)]
    consistency = [orjson.loads(line) for line in lines(members["consistency.jsonl"])]
    assert [(c["first"], c["second"]) for c in consistency] == [(100, 173), (173, 256), (256, 300)]
    inclusion = [orjson.loads(line) for line in lines(members["inclusion.jsonl"])]
    assert inclusion[0] == {
        "index": 120,
        "tree_size": 300,
        "hashes": [h.hex() for h in log.tree.inclusion_proof(120, 300)],
    }

    # manifest.sig: "<name> base64(key id || Ed25519 signature over manifest.json)\n"
    name, _, sig64 = members["manifest.sig"].decode().rstrip("\n").partition(" ")
    raw = base64.b64decode(sig64)
    assert members["manifest.sig"].count(b"\n") == 1
    assert name == log.signer.name
    assert raw[:4] == log.signer.key_id
    assert log.verifier.verify(members["manifest.json"], raw[4:])


def test_build_is_deterministic(log: Log) -> None:
    first = log.build(10, 80, since="2025-01-01T12:00:10Z", until=None)
    second = log.build(10, 80, since="2025-01-01T12:00:10Z", until=None)
    assert first == second
    assert log.build(10, 81) != log.build(10, 80)


@pytest.mark.parametrize(
    ("start", "end", "sizes"),
    [
        (0, 7, [7, 64, 100, 173, 256, 300]),  # from genesis: no checkpoint before
        (0, 300, [7, 64, 100, 173, 256, 300]),  # the whole log
        (3, 5, [7, 64, 100, 173, 256, 300]),
        (7, 64, [7, 64, 100, 173, 256, 300]),  # checkpoint exactly at the start
        (63, 64, [7, 64, 100, 173, 256, 300]),
        (256, 300, [256, 300]),  # range ends at the newest checkpoint
        (299, 300, [256, 300]),
        (300, 300, [300]),  # empty range after the last entry: one checkpoint
        (150, 150, [100, 173, 256, 300]),  # empty range
    ],
)
def test_ranges_and_checkpoint_selection(log: Log, start: int, end: int, sizes: list[int]) -> None:
    data = log.build(start, end)
    report = verify_packet(data, log.verifier)
    assert report.ok, report.reason
    assert report.checked_entries == end - start
    assert report.checkpoints == len(sizes)
    members = unzip(data)
    got = [orjson.loads(line)["size"] for line in lines(members["checkpoints.jsonl"])]
    assert got == sizes


def test_small_trees() -> None:
    # Tree sizes 1..9 with every range: exercises the right edge of small trees.
    for n in range(1, 10):
        small = make_log(n, (n,))
        for start in range(n + 1):
            for end in range(start, n + 1):
                report = verify_packet(small.build(start, end), small.verifier)
                assert report.ok, (n, start, end, report.reason)


def test_single_entry_tree_without_earlier_checkpoints() -> None:
    small = make_log(1, (1,))
    members = unzip(small.build(0, 1))
    assert orjson.loads(members["inclusion.jsonl"]) == {"hashes": [], "index": 0, "tree_size": 1}
    assert members["consistency.jsonl"] == b""


def test_event_index(log: Log, packet: bytes) -> None:
    report = verify_packet(packet, log.verifier, event_index=150)
    assert report.ok
    assert report.as_dict()["event_included"] is True
    assert report.as_dict()["event_index"] == 150
    for outside in (0, 119, 190, 305):
        report = verify_packet(packet, log.verifier, event_index=outside)
        assert_fails(report, f"entry {outside} is not in this packet", "120 to 189")
        assert report.checked_entries == 70  # the packet itself verified
        assert report.as_dict()["event_included"] is False
    assert_fails(verify_packet(packet, log.verifier, event_index=-1), "non-negative")
    empty = log.build(150, 150)
    assert_fails(verify_packet(empty, log.verifier, event_index=150), "holds no entries")


def test_progress_callback(log: Log) -> None:
    data = log.build(0, 300)
    calls: list[tuple[int, int]] = []
    report = verify_packet(data, log.verifier, progress=lambda d, t: calls.append((d, t)))
    assert report.ok
    total = 300 + 6
    assert calls[0] == (6, total)
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# -------------------------------------------------------------------- tampering

Mutation = Callable[[dict[str, bytes], Log], bytes]


def edit_entry_value(members: dict[str, bytes], index_in_packet: int) -> dict[str, bytes]:
    out = dict(members)
    rows = lines(out["entries.jsonl"])
    obj = orjson.loads(rows[index_in_packet])
    obj["entry"]["score"] = obj["entry"]["score"] + 1
    rows[index_in_packet] = encode(obj)
    out["entries.jsonl"] = joined(rows)
    return out


def test_flipped_byte_in_entry_breaks_the_manifest_hash(log: Log, packet: bytes) -> None:
    members = unzip(packet)
    content = bytearray(members["entries.jsonl"])
    pos = content.index(b'"threat_level":"') + len(b'"threat_level":"')
    content[pos] ^= 0x01  # "high" -> "iigh"
    members["entries.jsonl"] = bytes(content)
    assert_fails(
        verify_packet(rezip(members), log.verifier),
        "entries.jsonl does not match its SHA-256 in the signed manifest",
    )


def test_edited_entry_with_rehashed_manifest_fails_the_signature(log: Log, packet: bytes) -> None:
    members = edit_entry_value(unzip(packet), 5)
    manifest = orjson.loads(members["manifest.json"])
    manifest["files"]["entries.jsonl"] = hashlib.sha256(members["entries.jsonl"]).hexdigest()
    members["manifest.json"] = encode(manifest)  # manifest.sig left as it was
    assert_fails(verify_packet(rezip(members), log.verifier), "manifest signature is invalid")


def test_edited_and_resigned_entry_fails_its_leaf_hash(log: Log, packet: bytes) -> None:
    members = edit_entry_value(unzip(packet), 5)
    assert_fails(
        verify_packet(resign(members, log.signer), log.verifier),
        "entry 125 does not match its leaf_hash",
        first_bad_index=125,
    )


def test_rewritten_history_fails_inclusion(log: Log, packet: bytes) -> None:
    # Edit entry 125 and recompute its leaf and the whole chain after it: only the
    # Merkle tree, whose root the checkpoint signs, still catches it.
    members = unzip(packet)
    rows = [orjson.loads(line) for line in lines(members["entries.jsonl"])]
    rows[5]["entry"]["threat_level"] = "low"
    prev = bytes.fromhex(rows[0]["prev_chain_hash"])
    for row in rows:
        leaf = leaf_hash(encode(row["entry"]))
        chain = hashlib.sha256(prev + leaf).digest()
        row.update(leaf_hash=leaf.hex(), prev_chain_hash=prev.hex(), chain_hash=chain.hex())
        prev = chain
    members["entries.jsonl"] = joined([encode(r) for r in rows])
    report = verify_packet(resign(members, log.signer), log.verifier)
    assert_fails(report, "inclusion proof of entry 125 does not lead", first_bad_index=125)
    assert report.checked_entries == 5


def rewrite_rows(
    members: dict[str, bytes], member: str, fn: Callable[[list[bytes]], list[bytes]]
) -> dict[str, bytes]:
    out = dict(members)
    out[member] = joined(fn(lines(out[member])))
    return out


def set_field(row: bytes, **changes: Any) -> bytes:
    obj = orjson.loads(row)
    obj.update(changes)
    return encode(obj)


def forked_checkpoint(log: Log, size: int) -> str:
    """A validly signed checkpoint of a different tree of the same size."""
    fork = MemoryTree(log.tree.leaf_hash(i) for i in range(size - 1))
    fork.append(hashlib.sha256(b"forged").digest())
    return sign_note(format_checkpoint(log.origin, size, fork.root()), log.signer)


def _swap(rows: list[bytes], a: int, b: int) -> list[bytes]:
    rows = list(rows)
    rows[a], rows[b] = rows[b], rows[a]
    return rows


RESIGNED_TAMPERS: list[
    tuple[str, Callable[[dict[str, bytes], Log], dict[str, bytes]], str, int | None]
] = [
    (
        "gap",
        lambda m, _log: {
            **rewrite_rows(m, "entries.jsonl", lambda r: r[:10] + r[11:]),
            "inclusion.jsonl": joined(
                lines(m["inclusion.jsonl"])[:10] + lines(m["inclusion.jsonl"])[11:]
            ),
        },
        "entries are not contiguous: entries.jsonl line 11 holds entry 131, expected entry 130",
        130,
    ),
    (
        "reordered",
        lambda m, _log: {
            **rewrite_rows(m, "entries.jsonl", lambda r: _swap(r, 20, 21)),
            "inclusion.jsonl": joined(_swap(lines(m["inclusion.jsonl"]), 20, 21)),
        },
        "entries are not contiguous",
        140,
    ),
    (
        "missing last entry",
        lambda m, _log: {
            **rewrite_rows(m, "entries.jsonl", lambda r: r[:-1]),
            "inclusion.jsonl": joined(lines(m["inclusion.jsonl"])[:-1]),
        },
        "entries.jsonl ends after 69 entries; the range holds 70",
        189,
    ),
    (
        "duplicated entry",
        lambda m, _log: rewrite_rows(m, "entries.jsonl", lambda r: [*r, r[-1]]),
        "entries.jsonl has 71 lines; the range holds 70 entries",
        None,
    ),
    (
        "broken chain link",
        lambda m, _log: rewrite_rows(
            m,
            "entries.jsonl",
            lambda r: [*r[:3], set_field(r[3], prev_chain_hash="ab" * 32), *r[4:]],
        ),
        "hash chain broken at entry 123: prev_chain_hash is not the chain_hash of entry 122",
        123,
    ),
    (
        "wrong chain hash",
        lambda m, _log: rewrite_rows(
            m, "entries.jsonl", lambda r: [*r[:3], set_field(r[3], chain_hash="ab" * 32), *r[4:]]
        ),
        "entry 123: chain_hash is not SHA-256(prev_chain_hash ‖ leaf_hash)",
        123,
    ),
    (
        "wrong leaf hash",
        lambda m, _log: rewrite_rows(
            m, "entries.jsonl", lambda r: [*r[:3], set_field(r[3], leaf_hash="ab" * 32), *r[4:]]
        ),
        "entry 123 does not match its leaf_hash",
        123,
    ),
    (
        "uppercase hex",
        lambda m, _log: rewrite_rows(
            m,
            "entries.jsonl",
            lambda r: [
                *r[:3],
                set_field(r[3], chain_hash=orjson.loads(r[3])["chain_hash"].upper()),
                *r[4:],
            ],
        ),
        "entry 123 chain_hash is not a 64-digit lowercase hex SHA-256",
        123,
    ),
    (
        "non-canonical entry line",
        lambda m, _log: rewrite_rows(
            m,
            "entries.jsonl",
            lambda r: [
                *r[:3],
                orjson.dumps(orjson.loads(r[3]), option=orjson.OPT_INDENT_2).replace(b"\n", b""),
                *r[4:],
            ],
        ),
        "entries.jsonl line 4 is not in RFC 8785 canonical form",
        123,
    ),
    (
        "non-canonical entry bytes",
        lambda m, _log: rewrite_rows(
            m,
            "entries.jsonl",
            lambda r: [*r[:3], r[3].replace(b'"score":', b'"score": '), *r[4:]],
        ),
        "entries.jsonl line 4 is not in RFC 8785 canonical form",
        123,
    ),
    (
        "entry line not JSON",
        lambda m, _log: rewrite_rows(m, "entries.jsonl", lambda r: [*r[:3], b"{nope", *r[4:]]),
        "entries.jsonl line 4 is not valid JSON",
        123,
    ),
    (
        "entry is not an object",
        lambda m, _log: rewrite_rows(
            m, "entries.jsonl", lambda r: [*r[:3], set_field(r[3], entry=[1, 2]), *r[4:]]
        ),
        "entry 123 is not a JSON object",
        123,
    ),
    (
        "empty entry line",
        lambda m, _log: rewrite_rows(m, "entries.jsonl", lambda r: [*r[:3], b"", *r[4:]]),
        "entries.jsonl line 4 is empty",
        123,
    ),
    (
        "bad inclusion hash",
        lambda m, _log: rewrite_rows(
            m,
            "inclusion.jsonl",
            lambda r: [
                *r[:7],
                set_field(r[7], hashes=["00" * 32, *orjson.loads(r[7])["hashes"][1:]]),
                *r[8:],
            ],
        ),
        "inclusion proof of entry 127 does not lead to the checkpoint root",
        127,
    ),
    (
        "inclusion hash not hex",
        lambda m, _log: rewrite_rows(
            m,
            "inclusion.jsonl",
            lambda r: [
                *r[:8],
                set_field(r[8], hashes=["zz" * 32, *orjson.loads(r[8])["hashes"][1:]]),
                *r[9:],
            ],
        ),
        "inclusion proof of entry 128: hash 0 is not 64 lowercase hex digits",
        128,
    ),
    (
        "inclusion proof too short",
        lambda m, _log: rewrite_rows(
            m,
            "inclusion.jsonl",
            lambda r: [*r[:7], set_field(r[7], hashes=orjson.loads(r[7])["hashes"][:-1]), *r[8:]],
        ),
        "inclusion proof of entry 127",
        127,
    ),
    (
        "inclusion proof too long",
        lambda m, _log: rewrite_rows(
            m,
            "inclusion.jsonl",
            lambda r: [
                *r[:7],
                set_field(r[7], hashes=[*orjson.loads(r[7])["hashes"], "00" * 32]),
                *r[8:],
            ],
        ),
        "inclusion proof of entry 127 does not lead to the checkpoint root",
        127,
    ),
    (
        "inclusion proof of another entry",
        lambda m, _log: rewrite_rows(m, "inclusion.jsonl", lambda r: [*r[:7], r[8], r[8], *r[9:]]),
        "inclusion.jsonl line 8 is the proof of entry 128, expected entry 127",
        127,
    ),
    (
        "inclusion proof in another tree size",
        lambda m, _log: rewrite_rows(
            m, "inclusion.jsonl", lambda r: [*r[:7], set_field(r[7], tree_size=299), *r[8:]]
        ),
        "is a proof in a tree of size 299, expected 300",
        127,
    ),
    (
        "inclusion line not canonical",
        lambda m, _log: rewrite_rows(
            m, "inclusion.jsonl", lambda r: [*r[:7], r[7].replace(b",", b", "), *r[8:]]
        ),
        "inclusion.jsonl line 8 is not in RFC 8785 canonical form",
        127,
    ),
    (
        "inclusion line with an extra key",
        lambda m, _log: rewrite_rows(
            m, "inclusion.jsonl", lambda r: [*r[:7], set_field(r[7], extra=1), *r[8:]]
        ),
        "inclusion.jsonl line 8 must be a JSON object with the keys hashes, index, tree_size",
        127,
    ),
    (
        "checkpoint from another origin",
        lambda m, log: rewrite_rows(
            m,
            "checkpoints.jsonl",
            lambda r: [
                r[0],
                encode(
                    {
                        "size": 173,
                        "note": sign_note(
                            format_checkpoint("evil.example/log", 173, log.tree.root(173)),
                            log.signer,
                        ),
                    }
                ),
                *r[2:],
            ],
        ),
        "checkpoints.jsonl line 2: checkpoint origin 'evil.example/log' is not the expected",
        None,
    ),
    (
        "checkpoint signed by another key",
        lambda m, log: rewrite_rows(
            m,
            "checkpoints.jsonl",
            lambda r: [
                r[0],
                encode(
                    {
                        "size": 173,
                        "note": sign_note(
                            format_checkpoint(log.origin, 173, log.tree.root(173)),
                            Signer.from_skey(generate_signing_key("log.test")[0]),
                        ),
                    }
                ),
                *r[2:],
            ],
        ),
        "checkpoints.jsonl line 2: note is not signed by any known key",
        None,
    ),
    (
        "checkpoint size mislabelled",
        lambda m, _log: rewrite_rows(
            m, "checkpoints.jsonl", lambda r: [r[0], set_field(r[1], size=174), *r[2:]]
        ),
        "checkpoints.jsonl line 2: note is for size 173, line says 174",
        None,
    ),
    (
        "inconsistent checkpoint pair",
        lambda m, log: rewrite_rows(
            m,
            "checkpoints.jsonl",
            lambda r: [r[0], encode({"size": 173, "note": forked_checkpoint(log, 173)}), *r[2:]],
        ),
        "checkpoints of sizes 100 and 173 are not consistent",
        None,
    ),
    (
        "tampered consistency proof",
        lambda m, _log: rewrite_rows(
            m,
            "consistency.jsonl",
            lambda r: [
                *r[:2],
                set_field(r[2], hashes=["11" * 32, *orjson.loads(r[2])["hashes"][1:]]),
            ],
        ),
        "checkpoints of sizes 256 and 300 are not consistent",
        None,
    ),
    (
        "missing consistency proof",
        lambda m, _log: rewrite_rows(m, "consistency.jsonl", lambda r: r[:-1]),
        "packet has 2 consistency proofs for 4 checkpoints",
        None,
    ),
    (
        "consistency proof for other sizes",
        lambda m, _log: rewrite_rows(
            m, "consistency.jsonl", lambda r: [set_field(r[0], first=99), *r[1:]]
        ),
        "consistency.jsonl line 1 is for sizes 99 -> 173, expected 100 -> 173",
        None,
    ),
    (
        "stale checkpoint before the newest one at the start",
        lambda m, log: {
            **rewrite_rows(
                m,
                "checkpoints.jsonl",
                lambda r: [encode({"size": 64, "note": log.notes[64]}), *r],
            ),
            "consistency.jsonl": joined(
                [
                    encode(
                        {
                            "first": 64,
                            "second": 100,
                            "hashes": [h.hex() for h in log.tree.consistency_proof(64, 100)],
                        }
                    ),
                    *lines(m["consistency.jsonl"]),
                ]
            ),
        },
        "only the newest checkpoint at or before the range start (120) belongs in the packet",
        None,
    ),
    (
        "checkpoints out of order",
        lambda m, _log: rewrite_rows(m, "checkpoints.jsonl", lambda r: _swap(r, 1, 2)),
        "checkpoint sizes are not strictly increasing",
        None,
    ),
    (
        "newest checkpoint dropped",
        lambda m, _log: {
            **rewrite_rows(m, "checkpoints.jsonl", lambda r: r[:-1]),
            "consistency.jsonl": joined(lines(m["consistency.jsonl"])[:-1]),
        },
        "newest checkpoint has size 256, manifest says 300",
        None,
    ),
    (
        "no checkpoints",
        lambda m, _log: {**m, "checkpoints.jsonl": b"", "consistency.jsonl": b""},
        "packet has no checkpoint",
        None,
    ),
    (
        "checkpoint note is garbage",
        lambda m, _log: rewrite_rows(
            m, "checkpoints.jsonl", lambda r: [set_field(r[0], note="hello\n"), *r[1:]]
        ),
        "checkpoints.jsonl line 1: note has no blank line before its signatures",
        None,
    ),
    (
        "member without final newline",
        lambda m, _log: {**m, "entries.jsonl": m["entries.jsonl"][:-1]},
        "entries.jsonl does not end with a newline",
        None,
    ),
]


@pytest.mark.parametrize(
    ("label", "mutate", "reason", "bad_index"),
    RESIGNED_TAMPERS,
    ids=[t[0] for t in RESIGNED_TAMPERS],
)
def test_resigned_tamper_is_caught(
    log: Log,
    packet: bytes,
    label: str,
    mutate: Callable[[dict[str, bytes], Log], dict[str, bytes]],
    reason: str,
    bad_index: int | None,
) -> None:
    members = mutate(unzip(packet), log)
    assert members != unzip(packet), label
    report = verify_packet(resign(members, log.signer), log.verifier)
    assert_fails(report, reason, first_bad_index=bad_index)


MANIFEST_TAMPERS: list[tuple[dict[str, Any], str]] = [
    ({"version": 2}, "unsupported packet version 2"),
    ({"version": True}, "unsupported packet version True"),
    ({"tree_size": 256}, "newest checkpoint has size 300, manifest says 256"),
    ({"tree_size": 150}, "manifest range ends at 190, beyond the newest checkpoint's size 150"),
    ({"tree_size": 400}, "newest checkpoint has size 300, manifest says 400"),
    ({"origin": "other.example/log"}, "is not the expected 'other.example/log'"),
    ({"stream": ""}, "manifest stream must be a non-empty string"),
    ({"range": {"start": 120, "end": 191, "since": None, "until": None}}, "entries.jsonl ends"),
    (
        {"range": {"start": 121, "end": 190, "since": None, "until": None}},
        "has 70 lines; the range holds 69",
    ),
    ({"range": {"start": 190, "end": 120, "since": None, "until": None}}, "0 <= start <= end"),
    ({"range": {"start": 120, "end": 190, "since": "yesterday", "until": None}}, "ISO 8601"),
    ({"range": {"start": 120, "end": 190}}, "manifest range must have exactly the keys"),
    ({"extra": 1}, "manifest.json must have exactly the keys"),
]


@pytest.mark.parametrize(("changes", "reason"), MANIFEST_TAMPERS)
def test_resigned_manifest_tamper_is_caught(
    log: Log, packet: bytes, changes: dict[str, Any], reason: str
) -> None:
    report = verify_packet(resign(unzip(packet), log.signer, **changes), log.verifier)
    assert_fails(report, reason)


def test_manifest_files_must_match(log: Log, packet: bytes) -> None:
    members = unzip(packet)
    files = {name: hashlib.sha256(members[name]).hexdigest() for name in DATA}
    del files["inclusion.jsonl"]
    report = verify_packet(resign(members, log.signer, files=files), log.verifier)
    assert_fails(report, "manifest files must list exactly")
    files["inclusion.jsonl"] = "not hex"
    report = verify_packet(resign(members, log.signer, files=files), log.verifier)
    assert_fails(report, "manifest hash of inclusion.jsonl is not a 64-digit lowercase hex")


def test_non_canonical_manifest(log: Log, packet: bytes) -> None:
    members = unzip(packet)
    members["manifest.json"] = orjson.dumps(
        orjson.loads(members["manifest.json"]), option=orjson.OPT_INDENT_2
    )
    sig = base64.b64encode(log.signer.key_id + log.signer.sign(members["manifest.json"])).decode()
    members["manifest.sig"] = f"{log.signer.name} {sig}\n".encode()
    assert_fails(verify_packet(rezip(members), log.verifier), "manifest.json is not in RFC 8785")


def test_wrong_verifier_keys(log: Log, packet: bytes) -> None:
    other_name = Verifier.from_vkey(generate_signing_key("someone.else")[1])
    assert_fails(
        verify_packet(packet, other_name),
        "manifest is signed by key 'log.test', not by the verifier key 'someone.else'",
    )
    same_name = Verifier.from_vkey(generate_signing_key("log.test")[1])
    assert_fails(verify_packet(packet, same_name), "manifest signature key ID")
    renamed = log.verifier.with_name("log.renamed")
    assert_fails(verify_packet(packet, renamed), "not by the verifier key 'log.renamed'")


@pytest.mark.parametrize(
    ("sig", "reason"),
    [
        (b"", "manifest.sig must be exactly one line"),
        (b"log.test\n", "manifest.sig must be '<key name> <base64 signature>'"),
        (b"log.test AAAA\n", "4-byte key ID and a 64-byte signature"),
        (b"log.test !!!!\n", "not canonical base64"),
        (b"log.test a b\n", "manifest.sig must be '<key name> <base64 signature>'"),
        (b"\xff\xfe\n", "manifest.sig is not valid UTF-8"),
        (b"a b\nc d\n", "exactly one line"),
    ],
)
def test_malformed_signature_member(log: Log, packet: bytes, sig: bytes, reason: str) -> None:
    members = unzip(packet)
    members["manifest.sig"] = sig
    assert_fails(verify_packet(rezip(members), log.verifier), reason)


# ------------------------------------------------------------------ zip-level attacks


def test_extra_member(log: Log, packet: bytes) -> None:
    members = unzip(packet)
    members["notes.txt"] = b"hello"
    assert_fails(verify_packet(rezip(members), log.verifier), "unexpected member 'notes.txt'")


@pytest.mark.parametrize("name", sorted(PACKET_MEMBERS))
def test_missing_member(log: Log, packet: bytes, name: str) -> None:
    members = unzip(packet)
    del members[name]
    assert_fails(verify_packet(rezip(members), log.verifier), f"missing its member '{name}'")


@pytest.mark.parametrize(
    "name",
    ["../evil", "/etc/passwd", "entries.jsonl/", "sub/entries.jsonl", "..\\evil", "C:evil"],
)
def test_path_tricks(log: Log, packet: bytes, name: str) -> None:
    members = unzip(packet)
    members[name] = b"x"
    report = verify_packet(raw_zip(raw_from(members)), log.verifier)
    assert_fails(report, "unexpected member")


def test_renamed_member_with_path(log: Log, packet: bytes) -> None:
    members = unzip(packet)
    members["../entries.jsonl"] = members.pop("entries.jsonl")
    assert_fails(
        verify_packet(raw_zip(raw_from(members)), log.verifier),
        "unexpected member '../entries.jsonl'",
    )


def test_duplicate_member(log: Log, packet: bytes) -> None:
    raws = raw_from(unzip(packet))
    raws.append(raw_member("entries.jsonl", b"{}\n"))
    assert_fails(verify_packet(raw_zip(raws), log.verifier), "member 'entries.jsonl' 2 times")


def test_stored_and_encrypted_members_are_refused(log: Log, packet: bytes) -> None:
    members = unzip(packet)
    stored = members["manifest.json"]
    raws = [r for r in raw_from(members) if r.name != b"manifest.json"]
    raws.append(Raw(b"manifest.json", stored, zlib.crc32(stored), len(stored), method=0))
    assert_fails(verify_packet(raw_zip(raws), log.verifier), "'manifest.json' is not deflated")
    raws = raw_from(members)
    raws[0].flags = 0x1
    assert_fails(verify_packet(raw_zip(raws), log.verifier), "is encrypted")
    raws = raw_from(members)
    raws[0].method = 12  # bzip2
    assert_fails(verify_packet(raw_zip(raws), log.verifier), "is not deflated")


def zero_bomb(size_mib: int) -> Raw:
    """A deflate stream of ``size_mib`` MiB of zeros, made by repeating one flushed block."""
    mib = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    data = block * size_mib + c.flush()
    crc = 0
    for _ in range(size_mib):
        crc = zlib.crc32(mib, crc)
    return Raw(b"entries.jsonl", data, crc, size_mib << 20)


def test_zip_bomb_is_refused_before_inflating(log: Log, packet: bytes) -> None:
    members = unzip(packet)
    raws = [r for r in raw_from(members) if r.name != b"entries.jsonl"]
    bomb = zero_bomb(600)  # 600 MiB of zeros in ~600 KiB
    assert len(bomb.data) < 1 << 20
    start = time.perf_counter()
    report = verify_packet(raw_zip([bomb, *raws]), log.verifier)
    assert_fails(report, "'entries.jsonl' is 629145600 bytes uncompressed", "cap; refused")
    assert time.perf_counter() - start < 1.0


def test_compression_ratio_is_capped(log: Log, packet: bytes) -> None:
    members = unzip(packet)
    raws = [r for r in raw_from(members) if r.name != b"entries.jsonl"]
    bomb = zero_bomb(20)  # under the size cap, but expands ~1000 times
    assert_fails(
        verify_packet(raw_zip([bomb, *raws]), log.verifier),
        "'entries.jsonl' expands more than 200 times (zip bomb?); refused",
    )


def test_total_size_is_capped(log: Log, packet: bytes) -> None:
    limits = PacketLimits(max_total=len(unzip(packet)["entries.jsonl"]) + 100)
    assert_fails(
        verify_packet(packet, log.verifier, limits=limits),
        "packet members total more than",
    )
    assert_fails(
        verify_packet(packet, log.verifier, limits=PacketLimits(max_total=1000)),
        "packet is larger than 1000 bytes",
    )
    assert_fails(
        verify_packet(packet, log.verifier, limits=PacketLimits(max_manifest=100)),
        "'manifest.json' is",
        "over the 100-byte cap",
    )


def test_lying_declared_size_is_caught(log: Log, packet: bytes) -> None:
    # The central directory says 1 KiB; the data inflates to 50 MiB. Inflating stops at
    # the declared size and the CRC check fails.
    members = unzip(packet)
    raws = [r for r in raw_from(members) if r.name != b"entries.jsonl"]
    bomb = zero_bomb(50)
    bomb.size = 1024
    assert_fails(verify_packet(raw_zip([bomb, *raws]), log.verifier), "not a valid zip archive")


def test_too_many_members_are_refused_before_parsing(log: Log) -> None:
    raws = [raw_member(f"m{i}", b"") for i in range(5000)]
    assert_fails(verify_packet(raw_zip(raws), log.verifier), "5000 members", "refused")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "packet is empty"),
        (b"PK", "not a zip archive"),
        (b"PK\x03\x04" + bytes(100), "not a zip archive"),
        (bytes(range(256)) * 10, "not a zip archive"),
        (b"PK\x05\x06" + bytes(18), "missing its member"),  # an empty zip
    ],
)
def test_garbage_input(log: Log, data: bytes, reason: str) -> None:
    assert_fails(verify_packet(data, log.verifier), reason)


def test_random_bytes(log: Log) -> None:
    rng = random.Random(1)
    for size in (1, 21, 22, 100, 4096, 100_000):
        assert_fails(verify_packet(rng.randbytes(size), log.verifier))


def test_truncated_packets(log: Log, packet: bytes) -> None:
    for cut in (1, 10, 21, 22, 23, 100, len(packet) // 2, len(packet) - 1):
        assert_fails(verify_packet(packet[:cut], log.verifier))
        assert_fails(verify_packet(packet[cut:], log.verifier))


def test_archive_comment_and_zip64_are_refused(log: Log, packet: bytes) -> None:
    raws = raw_from(unzip(packet))
    assert_fails(verify_packet(raw_zip(raws, comment=b"hi"), log.verifier), "not a zip archive")
    bad_end = packet[:-2] + b"\x05\x00"
    assert_fails(verify_packet(bad_end, log.verifier), "announces a comment")
    zip64 = bytearray(packet)
    zip64[-42:-38] = b"PK\x06\x07"
    assert_fails(verify_packet(bytes(zip64), log.verifier), "ZIP64")


def test_bad_arguments_never_raise(log: Log, packet: bytes) -> None:
    assert_fails(verify_packet("not bytes", log.verifier), "packet must be bytes")  # type: ignore[arg-type]
    assert_fails(verify_packet(packet, "vkey"), "verifier must be")  # type: ignore[arg-type]
    assert verify_packet(bytearray(packet), log.verifier).ok
    assert verify_packet(memoryview(packet), log.verifier).ok


# ------------------------------------------------------------------- builder input


def test_builder_refuses_inconsistent_input(log: Log) -> None:
    def refuse(fragment: str, **changes: Any) -> None:
        kwargs = log.inputs(120, 190)
        kwargs.update(changes)
        with pytest.raises(PacketError, match=re.escape(fragment)):
            build_packet(**kwargs)

    good = log.inputs(120, 190)
    entries = list(good["entries"])
    entries[3] = PacketEntry(123, entries[3].entry, entries[3].prev_chain_hash, b"\x00" * 32)
    refuse("entry 123: chain_hash is not", entries=entries)
    entries = list(good["entries"])
    entries[3] = PacketEntry(
        123, {**entries[3].entry, "score": 1000}, entries[3].prev_chain_hash, entries[3].chain_hash
    )
    refuse("entry 123: chain_hash is not", entries=entries)
    entries = list(good["entries"])
    entries[4] = PacketEntry(
        124, entries[4].entry, entries[4].prev_chain_hash[:5], entries[4].chain_hash
    )
    refuse("entry 124 prev_chain_hash must be 32 bytes", entries=entries)
    refuse("needs 70 entries, got 69", entries=good["entries"][:-1])
    refuse("indexes 120..189", entries=[*good["entries"][1:], good["entries"][0]])
    refuse(
        "hash chain broken at entry 121",
        entries=[
            good["entries"][0],
            *[
                PacketEntry(
                    e.index,
                    e.entry,
                    hashlib.sha256(b"x").digest(),
                    hashlib.sha256(
                        hashlib.sha256(b"x").digest() + leaf_hash(encode(e.entry))
                    ).digest(),
                )
                for e in good["entries"][1:2]
            ],
            *good["entries"][2:],
        ],
    )
    inclusion = list(good["inclusion"])
    inclusion[5] = (125, 300, [b"\x00" * 32, *inclusion[5][2][1:]])
    refuse("inclusion proof of entry 125 does not lead", inclusion=inclusion)
    refuse(
        "inclusion proof of entry 120 element 0 must be 32 bytes",
        inclusion=[(120, 300, ["ab"]), *good["inclusion"][1:]],
    )
    refuse("at least one checkpoint", checkpoints=[], consistency=[])
    foreign = sign_note(format_checkpoint("other/origin", 300, log.tree.root(300)), log.signer)
    refuse("is not the expected", checkpoints=[*good["checkpoints"][:-1], (300, foreign)])
    refuse(
        "not consistent", consistency=[(a, b, list(reversed(p))) for a, b, p in good["consistency"]]
    )
    refuse(
        "range_meta start and end", range_meta={"start": 5, "end": 1, "since": None, "until": None}
    )
    refuse("not an ISO 8601", range_meta={"start": 120, "end": 190, "since": "soon", "until": None})
    refuse("exactly the keys", range_meta={"start": 120, "end": 190})
    refuse("stream must be", stream="")
    refuse("origin must be", origin="")
    refuse("signer must be", signer=log.verifier)
    entries = list(good["entries"])
    entries[0] = PacketEntry(
        120, {"bad": float("nan")}, entries[0].prev_chain_hash, entries[0].chain_hash
    )
    refuse("entry 120 cannot be encoded as RFC 8785 JSON", entries=entries)


def test_builder_refuses_a_range_beyond_the_newest_checkpoint(log: Log) -> None:
    kwargs = log.inputs(290, 300)
    kwargs["entries"] = [
        PacketEntry(i, log.entries[i], log.prev(i), log.chain[i]) for i in range(290, 305)
    ]
    kwargs["range_meta"] = {"start": 290, "end": 305, "since": None, "until": None}
    with pytest.raises(PacketError, match="beyond the newest checkpoint's size 300"):
        build_packet(**kwargs)


def test_builder_refuses_a_packet_over_the_caps(log: Log) -> None:
    with pytest.raises(PacketError, match="verifier would refuse"):
        build_packet(**log.inputs(0, 300), limits=PacketLimits(max_total=50_000))


# ----------------------------------------------------- the memoized inclusion check


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 70),
    data=st.data(),
)
def test_memo_inclusion_check_matches_rfc_verification(size: int, data: st.DataObject) -> None:
    """For increasing indexes, the memoized check accepts exactly what RFC 9162 does."""
    tree = MemoryTree(hashlib.sha256(b"%d" % i).digest() for i in range(size))
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start + 1, size))
    bad = data.draw(st.integers(start, end - 1))
    how = data.draw(st.sampled_from(["none", "flip", "drop", "add", "swap", "leaf", "dup"]))
    checker = _InclusionChecker(tree.root(), size)
    for index in range(start, end):
        leaf = tree.leaf_hash(index)
        proof = inclusion_proof(index, size, tree)
        if index == bad:
            if how == "flip" and proof:
                k = data.draw(st.integers(0, len(proof) - 1))
                proof[k] = bytes([proof[k][0] ^ 1]) + proof[k][1:]
            elif how == "drop" and proof:
                proof.pop(data.draw(st.integers(0, len(proof) - 1)))
            elif how == "add":
                proof.insert(data.draw(st.integers(0, len(proof))), hashlib.sha256(b"x").digest())
            elif how == "swap" and len(proof) > 1:
                proof[0], proof[-1] = proof[-1], proof[0]
            elif how == "leaf":
                leaf = hashlib.sha256(b"other").digest()
            elif how == "dup" and proof:
                proof.append(proof[-1])
        try:
            verify_inclusion(leaf, index, size, proof, tree.root())
            expected = True
        except MerkleProofError:
            expected = False
        try:
            checker.check(index, leaf, _join_hashes(proof))
            got = True
        except PacketError:
            got = False
        assert got == expected, (size, index, how)
        if not got:
            break


# --------------------------------------------------------------- property: no raise


@pytest.fixture(scope="module")
def small_log() -> Log:
    return make_log(20, (2, 5, 13, 16))


@pytest.fixture(scope="module")
def small_packet(small_log: Log) -> bytes:
    return small_log.build(3, 12)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_byte_mutations_never_raise(
    small_log: Log, small_packet: bytes, data: st.DataObject
) -> None:
    packet = bytearray(small_packet)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(len(packet) - 1, 0)))
        if op == "flip" and packet:
            packet[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and packet:
            packet[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del packet[pos:]
        elif op == "insert":
            packet[pos:pos] = data.draw(st.binary(min_size=1, max_size=40))
        elif op == "delete":
            del packet[pos : pos + data.draw(st.integers(1, 40))]
    report = verify_packet(bytes(packet), small_log.verifier)
    assert isinstance(report, PacketReport)
    assert report.ok in (True, False)
    if not report.ok:
        assert report.reason
        assert not report.reason.startswith("internal error"), report.reason
    orjson.dumps(report.as_dict())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_resigned_member_mutations_never_raise_and_fail(
    small_log: Log, small_packet: bytes, data: st.DataObject
) -> None:
    """Mutate a member's content and re-sign the manifest: always ``ok=False``."""
    members = unzip(small_packet)
    name = data.draw(st.sampled_from(DATA))
    content = bytearray(members[name])
    op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
    pos = data.draw(st.integers(0, max(len(content) - 1, 0)))
    if op == "flip" and content:
        content[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif op == "set" and content:
        content[pos] = data.draw(st.integers(0, 255))
    elif op == "cut":
        del content[pos:]
    elif op == "insert":
        content[pos:pos] = data.draw(st.binary(min_size=1, max_size=20))
    elif op == "delete":
        del content[pos : pos + data.draw(st.integers(1, 20))]
    if bytes(content) == members[name]:
        return
    members[name] = bytes(content)
    report = verify_packet(resign(members, small_log.signer), small_log.verifier)
    assert report.ok is False, (name, op, pos)
    assert report.reason
    assert not report.reason.startswith("internal error"), report.reason


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(PACKET_MEMBERS)),
    junk=st.binary(max_size=200) | st.text(max_size=100).map(str.encode),
)
def test_replaced_member_never_raises(
    small_log: Log, small_packet: bytes, name: str, junk: bytes
) -> None:
    members = unzip(small_packet)
    members[name] = junk
    packets = [rezip(members)]
    if name in DATA:
        packets.append(resign(members, small_log.signer))
    for data in packets:
        report = verify_packet(data, small_log.verifier)
        assert report.ok is False
        assert report.reason
        assert not report.reason.startswith("internal error"), report.reason


# ------------------------------------------------------------------------ throughput


@pytest.mark.slow
def test_throughput_smoke() -> None:
    """20,000 entries verify well within a few seconds (the measured rate is reported)."""
    n = 20_000
    big = make_log(n, (n // 2, n))
    data = big.build(0, n)
    start = time.perf_counter()
    report = verify_packet(data, big.verifier)
    elapsed = time.perf_counter() - start
    assert report.ok, report.reason
    assert report.checked_entries == n
    assert n / elapsed > 10_000, f"{n / elapsed:.0f} entries/s"
