"""Proof latency on a 1,000,000-entry stream, read from the node table (issue target:
≤ 20 ms per proof). Builds the stream's Merkle nodes in a scratch SQLite database with
the production appender's node logic, then times inclusion and consistency proofs
through ``StoredTree`` (the API's reader) for random leaves and sizes.

Run: ``.venv/bin/python bench/ledger_proofs.py [--size N] [--samples K]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from frostgate.ledger import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    nodes_to_store_for_batch,
    root,
    verify_consistency,
    verify_inclusion,
)
from frostgate.store import open_database, schema, upgrade
from frostgate.store.streams import StoredTree

STREAM = "decisions/bench"


def build(db_path: Path, size: int) -> list[bytes]:
    db = open_database(f"sqlite:///{db_path}")
    upgrade(db.write)
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(size)]
    tree = MemoryTree()
    with db.write.begin() as conn:
        for start in range(0, size, 50_000):
            batch = leaves[start : start + 50_000]
            nodes = nodes_to_store_for_batch(start, batch, tree)
            for leaf in batch:
                tree.append(leaf)
            conn.execute(
                schema.ledger_nodes.insert(),
                [
                    {"stream": STREAM, "tenant_id": "bench", "level": lv, "idx": ix, "hash": h}
                    for lv, ix, h in nodes
                ],
            )
    db.dispose()
    return leaves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    rng = random.Random(7)  # noqa: S311 - sampling positions, not secrets
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "proofs.db"
        started = time.perf_counter()
        leaves = build(path, args.size)
        print(f"built {args.size:,} leaves in {time.perf_counter() - started:.1f} s")
        db = open_database(f"sqlite:///{path}")
        with db.read.connect() as conn:
            tree = StoredTree(conn, STREAM)
            head = root(args.size, tree)
            inclusion_ms: list[float] = []
            consistency_ms: list[float] = []
            for _ in range(args.samples):
                index = rng.randrange(args.size)
                t0 = time.perf_counter()
                proof = inclusion_proof(index, args.size, tree)
                inclusion_ms.append((time.perf_counter() - t0) * 1000)
                verify_inclusion(leaves[index], index, args.size, proof, head)
                first = rng.randrange(1, args.size)
                t0 = time.perf_counter()
                cproof = consistency_proof(first, args.size, tree)
                consistency_ms.append((time.perf_counter() - t0) * 1000)
                verify_consistency(first, args.size, cproof, root(first, tree), head)
        db.dispose()
    for name, samples in (("inclusion", inclusion_ms), ("consistency", consistency_ms)):
        ordered = sorted(samples)
        p99 = ordered[int(len(ordered) * 0.99) - 1]
        print(
            f"{name} proof, {args.size:,} entries, {len(samples)} samples: "
            f"median {statistics.median(samples):.2f} ms, p99 {p99:.2f} ms,"
            f" max {ordered[-1]:.2f} ms"
        )


if __name__ == "__main__":
    main()
