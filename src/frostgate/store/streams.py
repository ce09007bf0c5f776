"""Appending leaves to a ledger stream inside the caller's transaction, and reading its
Merkle tree back.

A stream (``decisions/<tenant>``, ``audit/<tenant>``, ``audit/_platform``) has a head row
in ``ledger_heads``: its size and last chain hash. :class:`StreamAppender` locks the head
once (PostgreSQL ``FOR UPDATE``; on SQLite the write transaction already holds the
database write lock), hands out consecutive indexes and chain links, and writes the new
head back. Every writer of a stream goes through it, so indexes never collide and the
chain never forks. On save it also inserts the hashes of every complete subtree the new
leaves finish (RFC 9162 §2.1), so proofs never need to read the whole log.
"""

from __future__ import annotations

import sqlalchemy as sa

from frostgate.ledger import GENESIS, chain_hash, nodes_to_store_for_batch
from frostgate.store import schema
from frostgate.store.bulk import insert_rows
from frostgate.store.tenancy import serialize_tenant_change

__all__ = ["Link", "StoredTree", "StreamAppender"]

_heads = schema.ledger_heads
_nodes = schema.ledger_nodes


_NODE = sa.select(_nodes.c.hash).where(
    _nodes.c.stream == sa.bindparam("stream"),
    _nodes.c.level == sa.bindparam("level"),
    _nodes.c.idx == sa.bindparam("idx"),
)
_HEAD = sa.select(_heads.c.size, _heads.c.chain_hash).where(
    _heads.c.stream == sa.bindparam("stream")
)
_HEAD_LOCKED = _HEAD.with_for_update()
_HEAD_UPDATE = (
    _heads.update()
    .where(_heads.c.stream == sa.bindparam("target"))
    .values(size=sa.bindparam("size"), chain_hash=sa.bindparam("chain_hash"))
)


class StoredTree:
    """A stream's stored subtree hashes as a ``frostgate.ledger.NodeReader``."""

    def __init__(self, conn: sa.Connection, stream: str) -> None:
        self._conn = conn
        self._stream = stream

    def node(self, level: int, index: int) -> bytes:
        value = self._conn.execute(
            _NODE, {"stream": self._stream, "level": level, "idx": index}
        ).scalar()
        if value is None:
            raise LookupError(f"{self._stream}: no stored node ({level}, {index})")
        return bytes(value)


class Link:
    """Where one leaf landed: its index and the chain hashes around it."""

    __slots__ = ("chain", "index", "prev_chain")

    def __init__(self, index: int, prev_chain: bytes, chain: bytes) -> None:
        self.index = index
        self.prev_chain = prev_chain
        self.chain = chain


class StreamAppender:
    def __init__(self, conn: sa.Connection, stream: str, tenant_id: str) -> None:
        self._conn = conn
        self._stream = stream
        self._tenant_id = tenant_id
        query = _HEAD_LOCKED if conn.dialect.name == "postgresql" else _HEAD
        head = conn.execute(query, {"stream": stream}).first()
        if head is None and conn.dialect.name == "postgresql":
            # No head row to lock yet: a stream's first writers queue on an advisory lock,
            # then look again (another process may have created the head meanwhile).
            serialize_tenant_change(conn, tenant_id, f"stream {stream}")
            head = conn.execute(query, {"stream": stream}).first()
        self._existed = head is not None
        self.size = int(head.size) if head else 0
        self._chain = bytes.fromhex(head.chain_hash) if head else GENESIS
        self._start = self.size
        self._leaves: list[bytes] = []

    @property
    def next_index(self) -> int:
        return self.size

    def append(self, leaf: bytes) -> Link:
        link = Link(self.size, self._chain, chain_hash(self._chain, leaf))
        self._chain = link.chain
        self.size += 1
        self._leaves.append(leaf)
        return link

    def save(self) -> None:
        """Write the new head (nothing to do when no leaf was appended)."""
        if self.size == self._start:
            return
        nodes = nodes_to_store_for_batch(
            self._start, self._leaves, StoredTree(self._conn, self._stream)
        )
        insert_rows(
            self._conn,
            _nodes,
            ("stream", "tenant_id", "level", "idx", "hash"),
            [
                (self._stream, self._tenant_id, level, index, digest)
                for level, index, digest in nodes
            ],
        )
        self._leaves = []
        values = {"size": self.size, "chain_hash": self._chain.hex()}
        if self._existed:
            self._conn.execute(_HEAD_UPDATE, {"target": self._stream, **values})
        else:
            self._conn.execute(
                _heads.insert().values(stream=self._stream, tenant_id=self._tenant_id, **values)
            )
            self._existed = True
        self._start = self.size
