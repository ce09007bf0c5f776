"""Table definitions (SQLAlchemy Core) shared by the repositories and the writer.

The Alembic migrations in ``migrations/`` are the source of truth for the database;
these objects describe the same tables for building statements. ``tenant_id`` is
NOT NULL on every tenant table: there is no default or synthetic tenant (audit F6).
Decisions are append-only: no code path issues UPDATE or DELETE against them.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("daily_event_quota", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("pepper_id", sa.String(32), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_by", sa.String(32), nullable=True),
    # The key this one replaced by rotation (migration 0009).
    sa.Column("replaces", sa.String(32), nullable=True),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("source", sa.String(256), nullable=False),
    sa.Column("event_type", sa.String(256), nullable=False),
    sa.Column("src_ip", sa.String(64), nullable=True),
    sa.Column("threat_level", sa.String(16), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("rules", sa.Text, nullable=False),
    sa.Column("actions", sa.Text, nullable=False),
    sa.Column("actionable", sa.Boolean, nullable=False),
    sa.Column("changed", sa.Boolean, nullable=False),
    sa.Column("diff", sa.Text, nullable=True),
    sa.Column("policy_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_json", sa.Text, nullable=False),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("response_json", sa.Text, nullable=False),
    sa.Column("response_sha256", sa.String(64), nullable=False),
    sa.Column("leaf_hash", sa.String(64), nullable=False),
    sa.Column("prev_chain_hash", sa.String(64), nullable=False),
    sa.Column("chain_hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("tenant_id", "event_id", name="uq_decisions_tenant_event"),
    sa.Index("ix_decisions_lineage", "tenant_id", "source", "event_type", "seq"),
    sa.Index("ix_decisions_level", "tenant_id", "threat_level", "seq"),
    sa.Index("ix_decisions_created", "tenant_id", "created_at"),
)

ledger_heads = sa.Table(
    "ledger_heads",
    metadata,
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("chain_hash", sa.String(64), nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("actor_key_id", sa.String(32), nullable=True),
    sa.Column("client_ip", sa.String(64), nullable=True),
    sa.Column("peer_ip", sa.String(64), nullable=True),
    sa.Column("forwarded_for", sa.Text, nullable=True),
    sa.Column("route", sa.String(200), nullable=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("leaf_hash", sa.String(64), nullable=False),
    sa.Column("prev_chain_hash", sa.String(64), nullable=False),
    sa.Column("chain_hash", sa.String(64), nullable=False),
)

tenant_usage = sa.Table(
    "tenant_usage",
    metadata,
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("events", sa.BigInteger, nullable=False),
)

ledger_nodes = sa.Table(
    "ledger_nodes",
    metadata,
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("level", sa.SmallInteger, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, primary_key=True),
    sa.Column("root_hash", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

forensic_packets = sa.Table(
    "forensic_packets",
    metadata,
    sa.Column("packet_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("stream", sa.String(100), nullable=False),
    sa.Column("start_index", sa.BigInteger, nullable=False),
    sa.Column("end_index", sa.BigInteger, nullable=False),
    sa.Column("tree_size", sa.BigInteger, nullable=False),
    sa.Column("since", sa.String(40), nullable=True),
    sa.Column("until", sa.String(40), nullable=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# -- alerting, delivery and inbound webhooks (0006) ------------------------------------

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("endpoint_id", sa.String(40), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret_pepper_id", sa.String(32), nullable=False),
    sa.Column("secret_sealed", sa.Text, nullable=False),
    sa.Column("min_threat_level", sa.String(16), nullable=False),
    sa.Column("filters", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("max_per_minute", sa.Integer, nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_webhook_endpoints_tenant", "tenant_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("message_id", sa.String(40), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("endpoint_id", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("aggregate_key", sa.String(300), nullable=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_outbox_aggregate", "endpoint_id", "aggregate_key", "created_at"),
    sa.Index("ix_outbox_tenant", "tenant_id", "created_at"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("message_id", sa.String(40), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("endpoint_id", sa.String(40), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_delivery_attempts_endpoint", "endpoint_id", "started_at"),
)

hook_sources = sa.Table(
    "hook_sources",
    metadata,
    sa.Column("source_id", sa.String(40), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(32), nullable=True),
)

hook_source_secrets = sa.Table(
    "hook_source_secrets",
    metadata,
    sa.Column("secret_id", sa.String(40), primary_key=True),
    sa.Column("source_id", sa.String(40), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("secret_pepper_id", sa.String(32), nullable=False),
    sa.Column("secret_sealed", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    # The key that added the secret and was shown it (migration 0010).
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Index("ix_hook_source_secrets_source", "source_id"),
)

tenant_egress_hosts = sa.Table(
    "tenant_egress_hosts",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(253), primary_key=True),
)

# -- enforcement (0007) -----------------------------------------------------------------

mitigations = sa.Table(
    "mitigations",
    metadata,
    sa.Column("mitigation_id", sa.String(40), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("value", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("origin_event_id", sa.String(128), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.String(200), nullable=True),
    sa.Column("ttl_seconds", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("proposed_by", sa.String(32), nullable=True),
    sa.Column("approved_by", sa.String(32), nullable=True),
    sa.Column("lifted_by", sa.String(32), nullable=True),
    sa.Index("ix_mitigations_seq", "tenant_id", "seq"),
    sa.Index("ix_mitigations_status", "status", "expires_at"),
    sa.Index("ix_mitigations_value", "tenant_id", "value"),
    # The blast-radius count (store.mitigations.count_recent_blocks), migration 0008.
    sa.Index("ix_mitigations_activated", "tenant_id", "activated_at"),
)

mitigation_heads = sa.Table(
    "mitigation_heads",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

enforcement_cursors = sa.Table(
    "enforcement_cursors",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

tenant_envelopes = sa.Table(
    "tenant_envelopes",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
