"""Micro-benchmarks for the ledger hot paths (not collected by pytest).

Run: ``.venv/bin/python tests/ledger/bench_ledger.py``
"""

from __future__ import annotations

import hashlib
import time
import timeit
from collections.abc import Callable
from typing import Any

import orjson
import rfc8785

from frostgate.ledger import (
    GENESIS,
    MemoryTree,
    chain_hash,
    consistency_proof,
    encode,
    entry_leaf_hash,
    inclusion_proof,
    leaf_hash,
)
from frostgate.ledger.canonical import _fast_path_ok

ENTRY: dict[str, Any] = {
    "v": 1,
    "stream": "decisions/tenant-a",
    "seq": 123456,
    "ts": "2025-01-01T12:00:00.123456Z",
    "tenant": "tenant-a",
    "event_id": "01J9Z8X7Y6W5V4U3T2S1R0QPON",
    "sensor": "gw-01",
    "threat_level": "high",
    "score": 87,
    "rules": ["R-100", "R-204"],
    "mitigations": [],
    "policy": "sha256:" + "0123456789abcdef" * 4,
    "request_id": "req-9f8e7d",
    "ip": "203.0.113.7",
    "prev": None,
}


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


class CountingNodes:
    def __init__(self) -> None:
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        self.reads += 1
        return hashlib.sha256(f"{level}/{index}".encode()).digest()


def main() -> None:
    assert len(ENTRY) == 15
    assert encode(ENTRY) == rfc8785.dumps(ENTRY)
    with_float = dict(ENTRY, score=0.87)
    print("canonical.encode, 15-key flat entry")
    print(f"  orjson.dumps alone      {per_call_us(lambda: orjson.dumps(ENTRY), 200_000):6.2f} µs")
    print(f"  domain walk alone       {per_call_us(lambda: _fast_path_ok(ENTRY), 200_000):6.2f} µs")
    print(f"  encode (fast path)      {per_call_us(lambda: encode(ENTRY), 200_000):6.2f} µs")
    print(f"  encode (one float)      {per_call_us(lambda: encode(with_float), 20_000):6.2f} µs")
    print(f"  rfc8785.dumps           {per_call_us(lambda: rfc8785.dumps(ENTRY), 20_000):6.2f} µs")

    n = 200_000
    entries = [dict(ENTRY, seq=i) for i in range(n)]
    stored = [encode(e) for e in entries]
    t = time.perf_counter()
    leaves = [entry_leaf_hash(e) for e in entries]
    dt = time.perf_counter() - t
    print(f"entry_leaf_hash (encode + SHA-256)   {n / dt:10,.0f} /s")
    t = time.perf_counter()
    leaves2 = [leaf_hash(b) for b in stored]
    dt = time.perf_counter() - t
    assert leaves == leaves2
    print(f"leaf_hash of stored JCS bytes        {n / dt:10,.0f} /s")
    t = time.perf_counter()
    head = GENESIS
    for e in entries:
        head = chain_hash(head, entry_leaf_hash(e))
    dt = time.perf_counter() - t
    print(f"entry -> leaf -> chain link          {n / dt:10,.0f} /s")
    t = time.perf_counter()
    tree = MemoryTree(leaves)
    dt = time.perf_counter() - t
    print(f"MemoryTree.append (with node hashes) {n / dt:10,.0f} /s")
    t = time.perf_counter()
    for i in range(0, n, 97):
        tree.inclusion_proof(i)
    dt = time.perf_counter() - t
    print(f"inclusion_proof from MemoryTree      {len(range(0, n, 97)) / dt:10,.0f} /s")

    size = 1_000_000
    reader = CountingNodes()
    worst_i = worst_c = 0
    for i in (0, size // 2, size - 1, 2**19 - 1):
        reader.reads = 0
        inclusion_proof(i, size, reader)
        worst_i = max(worst_i, reader.reads)
        reader.reads = 0
        consistency_proof(max(i, 1), size, reader)
        worst_c = max(worst_c, reader.reads)
    print(f"node reads, n = 1,000,000: inclusion ≤ {worst_i}, consistency ≤ {worst_c}")


if __name__ == "__main__":
    main()
