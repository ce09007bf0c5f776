"""FrostGate's tamper-evident ledger primitives: pure functions, no I/O.

One module per specification:

* :mod:`~frostgate.ledger.canonical` — RFC 8785 JSON canonicalization (JCS);
* :mod:`~frostgate.ledger.hashing` — RFC 6962 §2.1 / RFC 9162 §2.1.1 leaf and node
  hashes with SHA-256, plus the per-stream hash chain;
* :mod:`~frostgate.ledger.merkle` — RFC 9162 §2.1 tree roots, inclusion and
  consistency proofs over stored complete subtrees, and their verification;
* :mod:`~frostgate.ledger.note` — C2SP signed-note and tlog-checkpoint with Ed25519.
"""

from frostgate.ledger.canonical import MAX_SAFE_INTEGER, CanonicalizationError, encode
from frostgate.ledger.hashing import (
    EMPTY_ROOT,
    GENESIS,
    HASH_SIZE,
    chain_hash,
    chain_hashes,
    entry_leaf_hash,
    leaf_hash,
    node_hash,
)
from frostgate.ledger.merkle import (
    MemoryTree,
    NodeReader,
    ProofError,
    StoredNode,
    consistency_proof,
    inclusion_proof,
    nodes_to_store_for_batch,
    nodes_to_store_on_append,
    root,
    verify_consistency,
    verify_inclusion,
)
from frostgate.ledger.note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    format_checkpoint,
    generate_signing_key,
    key_id,
    open_checkpoint,
    open_note,
    sign_note,
)
from frostgate.ledger.packet import (
    PacketEntry,
    PacketError,
    PacketLimits,
    PacketReport,
    build_packet,
    verify_packet,
)

__all__ = [
    "EMPTY_ROOT",
    "GENESIS",
    "HASH_SIZE",
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "Checkpoint",
    "MemoryTree",
    "NodeReader",
    "NoteError",
    "PacketEntry",
    "PacketError",
    "PacketLimits",
    "PacketReport",
    "ProofError",
    "Signer",
    "StoredNode",
    "Verifier",
    "build_packet",
    "chain_hash",
    "chain_hashes",
    "consistency_proof",
    "encode",
    "entry_leaf_hash",
    "format_checkpoint",
    "generate_signing_key",
    "inclusion_proof",
    "key_id",
    "leaf_hash",
    "node_hash",
    "nodes_to_store_for_batch",
    "nodes_to_store_on_append",
    "open_checkpoint",
    "open_note",
    "root",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_packet",
]
