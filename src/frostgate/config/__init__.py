"""Typed settings read from ``FG_*`` environment variables; the only reader of the environment.

Profiles: ``dev`` (local work, generates missing secrets into the data directory),
``test`` (like dev, used by the test suite) and ``prod`` (refuses to start when a
startup invariant is violated; see :func:`startup_problems`).
"""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Profile", "Settings", "get_settings", "invalid_settings", "startup_problems"]


class Profile(enum.StrEnum):
    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class Settings(BaseSettings):
    """Every tunable of FrostGate. Defaults suit ``make run`` on one machine."""

    model_config = SettingsConfigDict(env_prefix="FG_", extra="ignore", frozen=True)

    profile: Profile = Profile.DEV
    data_dir: Path = Path("./var")
    db_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite in data_dir")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    key_peppers: str = Field(
        default="",
        description="Comma-separated 'id:hex' peppers, current first; dev/test generate one",
    )
    policy_path: Path | None = None
    rule_packs: str = Field(
        default="",
        description="Comma-separated rule-pack or Sigma files merged into the policy, in order",
    )
    clock_skew_seconds: int = Field(default=300, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=16, ge=2)
    max_array_items: int = Field(default=1000, ge=1)
    max_string_bytes: int = Field(default=8 * 1024, ge=64)
    max_batch_events: int = Field(default=1000, ge=1)
    writer_max_batch: int = Field(default=4096, ge=1)
    writer_linger_ms: float = Field(
        default=2.0,
        ge=0,
        le=50,
        description="How long a group commit may wait for concurrent requests (0: never)",
    )
    malloc_arena_max: int = Field(
        default=2, ge=0, description="glibc malloc arenas for `serve` (0: glibc's default)"
    )
    key_cache_seconds: float = Field(
        default=1.0, gt=0, le=1.0, description="Key-record cache life; bounds revocation lag"
    )
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    sse_streams_per_tenant: int = Field(
        default=32, ge=1, description="Open /v1/feed/stream connections per tenant and process"
    )
    sse_streams_per_process: int = Field(
        default=256, ge=1, description="Open /v1/feed/stream connections per process"
    )
    trusted_proxy_cidrs: str = Field(
        default="", description="Comma-separated CIDRs whose X-Forwarded-For is believed"
    )
    max_header_count: int = Field(default=64, ge=8)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    max_path_bytes: int = Field(default=2048, ge=64)
    max_query_bytes: int = Field(default=4096, ge=64)
    head_timeout_seconds: float = Field(
        default=10.0, gt=0, description="For a request's line and headers to arrive (else 408)"
    )
    max_connections_per_peer: int = Field(
        default=256, ge=1, description="Open connections from one peer (IPv6: /64) but proxies"
    )
    max_connections: int = Field(
        default=4096, ge=1, description="Open connections per process (below the fd limit)"
    )
    request_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Until the response starts (streams are exempt after)"
    )
    max_concurrent_requests: int = Field(default=1024, ge=1)
    max_concurrent_per_address: int = Field(
        default=256, ge=1, description="In flight from one client address (streams count)"
    )
    max_concurrent_per_tenant: int = Field(
        default=256, ge=1, description="In flight for one tenant, all its keys together"
    )
    cors_origins: str = Field(
        default="", description="Comma-separated allowed origins; empty = off"
    )
    redis_url: str = Field(default="", description="redis://... for shared rate limits")
    rate_limit_backend: str = Field(
        default="memory", pattern="^(memory|redis)$", description="memory: one process only"
    )
    rate_limit_key_per_second: float = Field(default=5000.0, gt=0)
    rate_limit_key_burst: int = Field(default=10000, ge=1)
    rate_limit_tenant_per_second: float = Field(default=20000.0, gt=0)
    rate_limit_tenant_burst: int = Field(default=40000, ge=1)
    hook_rate_limit_per_second: float = Field(
        default=50.0, gt=0, description="Inbound webhook requests per client address"
    )
    hook_rate_limit_burst: int = Field(default=500, ge=1)
    ledger_signing_key: str = Field(
        default="", description="PRIVATE+KEY+<name>+<id>+<key> note key; dev generates one"
    )
    ledger_origin: str = Field(
        default="frostgate.local", description="Checkpoint origin prefix: <origin>/<stream>"
    )
    anchor_interval_seconds: float = Field(default=60.0, gt=0)
    anchor_every_entries: int = Field(default=10_000, ge=1)
    anchor_export_dir: Path | None = None
    anchor_witness_urls: str = Field(
        default="",
        description="Comma-separated URLs each new signed checkpoint is POSTed to (egress)",
    )
    verify_key: str = Field(
        default="", description="ledger:read key for 'frostgate verify --url' (not in history)"
    )
    audit_summary_seconds: float = Field(
        default=60.0, gt=0, description="Window in which repeated auth failures are summarised"
    )
    egress_allow_hosts: str = Field(
        default="",
        description="host:port list let through to private addresses and http (dev/test only)",
    )
    egress_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    egress_read_timeout_seconds: float = Field(default=10.0, gt=0)
    egress_total_timeout_seconds: float = Field(default=15.0, gt=0)
    egress_max_response_bytes: int = Field(default=64 * 1024, ge=1024)
    alert_aggregate_seconds: float = Field(
        default=60.0, gt=0, description="Same rules + target within this window: one alert"
    )
    delivery_poll_seconds: float = Field(default=0.5, gt=0)
    delivery_lease_seconds: float = Field(
        default=60.0, gt=0, description="A claimed delivery is retried by anyone after this"
    )
    delivery_deadline_seconds: float = Field(
        default=86_400.0, gt=0, description="Retries stop (dead letter) this long after creation"
    )
    delivery_concurrency: int = Field(default=16, ge=1)
    delivery_backoff_base_seconds: float = Field(default=2.0, gt=0)
    delivery_backoff_cap_seconds: float = Field(default=600.0, gt=0)
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, le=600, description="Accepted clock skew of inbound webhook timestamps"
    )
    replay_cache_backend: str = Field(
        default="memory", pattern="^(memory|redis)$", description="Inbound webhook-id replay cache"
    )
    window_backend: str = Field(
        default="memory",
        pattern="^(memory|redis)$",
        description="Stateful-rule window state: memory (one process) or redis (several)",
    )
    window_max_keys: int = Field(
        default=100_000, ge=1000, description="Memory window store: most keys kept (LRU)"
    )
    honeypot_paths: str = Field(
        default=(
            "/.env,/.git/config,/.git/HEAD,/wp-admin,/wp-login.php,/phpmyadmin,"
            "/.aws/credentials,/server-status,/actuator/env,/config.json,/admin"
        ),
        description="Paths that raise a tripwire event (answered 404 like any unknown path)",
    )

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'frostgate.db').resolve()}"

    @property
    def rule_pack_paths(self) -> tuple[Path, ...]:
        return tuple(Path(p.strip()) for p in self.rule_packs.split(",") if p.strip())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def startup_problems(settings: Settings) -> list[str]:
    """Every reason this configuration must not serve, from the settings alone (no I/O).

    Only ``prod`` is held to these: ``dev`` and ``test`` are for one machine. Runtime
    checks that need the database or Redis live in ``frostgate.security.startup``.
    """
    if settings.profile is not Profile.PROD:
        return []
    problems: list[str] = []
    if settings.is_sqlite:
        problems.append("prod requires PostgreSQL (FG_DB_URL=postgresql://...)")
    if not settings.key_peppers:
        problems.append("prod requires FG_KEY_PEPPERS (generated peppers are dev-only)")
    else:
        for part in settings.key_peppers.split(","):
            pepper_id, _, value = part.strip().partition(":")
            if len(value) < 64 or len(set(value.lower())) < 8:
                problems.append(f"pepper {pepper_id!r} must be at least 32 random bytes in hex")
    if settings.rate_limit_backend != "redis" or not settings.redis_url:
        problems.append(
            "prod requires the Redis rate limiter (FG_RATE_LIMIT_BACKEND=redis, FG_REDIS_URL)"
        )
    # Like the rate limiter, state a prod deployment's processes must share: in one
    # process's memory a replayed webhook is accepted once per worker, and a brute
    # force spread over workers is counted in parts.
    if settings.replay_cache_backend != "redis":
        problems.append("prod requires the Redis replay cache (FG_REPLAY_CACHE_BACKEND=redis)")
    if settings.window_backend != "redis":
        problems.append("prod requires Redis window state (FG_WINDOW_BACKEND=redis)")
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if "*" in origins or "null" in origins:
        problems.append("prod refuses CORS origin '*' or 'null'; list exact origins")
    if any(not o.startswith("https://") for o in origins):
        problems.append("prod CORS origins must be https://")
    if not settings.ledger_signing_key:
        problems.append("prod requires FG_LEDGER_SIGNING_KEY (generated keys are dev-only)")
    if settings.egress_allow_hosts.strip():
        problems.append("prod refuses FG_EGRESS_ALLOW_HOSTS (private egress is dev/test only)")
    if settings.key_cache_seconds > 1.0:
        problems.append("FG_KEY_CACHE_SECONDS above 1 s breaks the revocation bound")
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def invalid_settings(exc: ValidationError) -> list[str]:
    """One line per bad ``FG_*`` value, named as the operator set it (``FG_PORT``, not
    the field ``port``). The value itself is never repeated: it may be a secret."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"FG_{field.upper()}" if field else "the configuration"
        lines.append(f"{name}: {error['msg']}")
    return lines
