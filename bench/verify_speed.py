"""Verifier speed: entries re-hashed per second on one core (issue target ≥ 300,000/s).

Builds a decisions stream of ``--size`` entries shaped exactly like the service's
(``frostgate.store.entries.decision_entry`` over synthetic rows), serialises it as the
API's ``/v1/ledger/decisions/entries`` pages of 1,000 (orjson, as the router does) with
signed checkpoints every ``--every`` entries, then times, in this process's CPU time:

* ``re-hash``: from parsed pages to checked leaf and chain hashes — RFC 8785 encoding
  (with the proof that it is canonical), SHA-256 leaf, chain link, comparison with the
  served ``leaf_hash`` and ``chain_hash``;
* ``verify``: what ``frostgate verify --url`` does with the pages once fetched —
  JSON parsing, the re-hash, the Merkle tree and every checkpoint (signature, root,
  consistency).

each two ways: ``per-entry`` is the one-entry-at-a-time path the verifiers had
(``entry_leaf_hash`` → ``chain_hash`` per entry, ``MemoryTree``, collector on);
``batch`` is the code ``frostgate verify --url`` runs
(:class:`frostgate.decisions.stream_check.StreamCheck` over
:mod:`frostgate.ledger.rehash`, collector paused; also shown with it on). Each figure is
the best of ``--repeat`` interleaved rounds (least disturbed by other processes on a
shared machine).

Run: ``.venv/bin/python bench/verify_speed.py [--size N] [--every K] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from frostgate.decisions.stream_check import StreamCheck
from frostgate.ledger import (
    GENESIS,
    MemoryTree,
    chain_hash,
    entry_leaf_hash,
    format_checkpoint,
    generate_signing_key,
    sign_note,
)
from frostgate.ledger.note import Signer, Verifier, open_checkpoint
from frostgate.ledger.rehash import chain_links, encode_parsed, first_mismatch, leaf_hashes
from frostgate.store.entries import decision_entry

STREAM = "decisions/bench"
ORIGIN = f"frostgate.local/{STREAM}"
PAGE = 1000


def row(i: int, start: datetime) -> dict[str, Any]:
    """A decisions row like the writer stores (ASCII text, as sensors send)."""
    high = i % 5 == 0
    return {
        "tenant_id": "bench",
        "seq": i,
        "event_id": f"bench-{i:012d}",
        "source": "sshd",
        "event_type": "auth.failed",
        "src_ip": f"203.0.{i // 250 % 250}.{i % 250}",
        "threat_level": "high" if high else "low",
        "score": 80 if high else 10,
        "rules": '["brute_force"]' if high else "[]",
        "actions": '[{"action":"block_ip","target":"203.0.113.9","ttl_seconds":3600}]'
        if high
        else "[]",
        "diff": None,
        "policy_hash": "sha256:" + "ab" * 32,
        "created_at": start + timedelta(microseconds=i * 137),
        "request_json": f'{{"event_id":"bench-{i}","source":"sshd"}}',
        "response_json": '{"decision":"block"}' if high else '{"decision":"allow"}',
    }


def build(size: int, every: int) -> tuple[list[bytes], dict[str, Any], str]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tree = MemoryTree()
    items: list[dict[str, Any]] = []
    prev = GENESIS
    for i in range(size):
        entry = decision_entry(row(i, start))
        leaf = entry_leaf_hash(entry)
        prev = chain_hash(prev, leaf)
        tree.append(leaf)
        items.append(
            {"index": i, "entry": entry, "leaf_hash": leaf.hex(), "chain_hash": prev.hex()}
        )
    pages = [orjson.dumps({"entries": items[s : s + PAGE]}) for s in range(0, size, PAGE)]
    skey, vkey = generate_signing_key("frostgate.local")
    signer = Signer.from_skey(skey)
    sizes = sorted({*range(every, size + 1, every), size})
    checkpoints = {
        "origin": ORIGIN,
        "checkpoints": [
            {
                "size": n,
                "root_hash": tree.root(n).hex(),
                "note": sign_note(format_checkpoint(ORIGIN, n, tree.root(n)), signer),
            }
            for n in sizes
        ],
    }
    return pages, checkpoints, vkey


def cpu_best(jobs: list[tuple[Callable[[], object], bool]], repeat: int) -> list[float]:
    """Best CPU seconds of each job over ``repeat`` rounds, the jobs interleaved so a
    busy spell on a shared machine does not land on one of them only. A job with
    ``paused`` runs with the cyclic garbage collector off, as ``frostgate verify`` does."""
    best = [float("inf")] * len(jobs)
    for _ in range(repeat):
        for position, (fn, paused) in enumerate(jobs):
            gc.collect()
            if paused:
                gc.disable()
            try:
                t = time.process_time()
                fn()
                best[position] = min(best[position], time.process_time() - t)
            finally:
                gc.enable()
    return best


def rehash_per_entry(parsed: list[list[dict[str, Any]]]) -> None:
    prev = GENESIS
    for items in parsed:
        for item in items:
            leaf = entry_leaf_hash(item["entry"])
            prev = chain_hash(prev, leaf)
            if leaf.hex() != item["leaf_hash"] or prev.hex() != item["chain_hash"]:
                raise AssertionError(item["index"])


def rehash_batch(parsed: list[list[dict[str, Any]]]) -> None:
    prev = GENESIS
    for items in parsed:
        leaves = leaf_hashes(encode_parsed([item["entry"] for item in items]))
        links = chain_links(prev, leaves)
        if first_mismatch(leaves, [item["leaf_hash"] for item in items]) is not None:
            raise AssertionError("leaf")
        if first_mismatch(links, [item["chain_hash"] for item in items]) is not None:
            raise AssertionError("chain")
        prev = links[-1]


def verify_per_entry(pages: list[bytes], checkpoints: dict[str, Any], vkey: str) -> None:
    verifier = Verifier.from_vkey(vkey)
    tree = MemoryTree()
    prev = GENESIS
    for page in pages:
        for item in orjson.loads(page)["entries"]:
            leaf = entry_leaf_hash(item["entry"])
            prev = chain_hash(prev, leaf)
            if leaf.hex() != item["leaf_hash"] or prev.hex() != item["chain_hash"]:
                raise AssertionError(item["index"])
            tree.append(leaf)
    before = None
    for cp in checkpoints["checkpoints"]:
        opened = open_checkpoint(cp["note"], verifier, origin=ORIGIN)
        if tree.root(opened.size) != opened.root:
            raise AssertionError(opened.size)
        if before is not None:
            tree.consistency_proof(before, opened.size)
        before = opened.size


def verify_batch(pages: list[bytes], checkpoints: dict[str, Any], vkey: str) -> None:
    check = StreamCheck(STREAM, ORIGIN, Verifier.from_vkey(vkey))
    check.add_checkpoints(checkpoints["checkpoints"])
    for page in pages:
        check.add_entries(orjson.loads(page)["entries"])
    summary = check.finish()
    if summary.entries != summary.tree_size:
        raise AssertionError(summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=10_000, help="checkpoint interval")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    t = time.perf_counter()
    pages, checkpoints, vkey = build(args.size, args.every)
    parsed = [orjson.loads(p)["entries"] for p in pages]
    mib = sum(map(len, pages)) / 2**20
    print(
        f"{args.size:,} decision entries in {len(pages)} pages ({mib:.0f} MiB), "
        f"{len(checkpoints['checkpoints'])} checkpoints; built in {time.perf_counter() - t:.1f} s"
    )
    n = args.size
    jobs: list[tuple[str, str, Callable[[], object], bool]] = [
        ("re-hash", "per-entry", lambda: rehash_per_entry(parsed), False),
        ("re-hash", "batch", lambda: rehash_batch(parsed), True),
        ("verify", "per-entry", lambda: verify_per_entry(pages, checkpoints, vkey), False),
        ("verify", "batch", lambda: verify_batch(pages, checkpoints, vkey), True),
        ("verify", "batch, gc on", lambda: verify_batch(pages, checkpoints, vkey), False),
    ]
    seconds = cpu_best([(fn, paused) for _, _, fn, paused in jobs], args.repeat)
    print(f"{'what':8} {'path':13} {'CPU s':>7} {'µs/entry':>9} {'entries/s':>11}")
    for (what, path, _, _), spent in zip(jobs, seconds, strict=True):
        print(f"{what:8} {path:13} {spent:7.3f} {spent / n * 1e6:9.2f} {n / spent:11,.0f}")


if __name__ == "__main__":
    main()
