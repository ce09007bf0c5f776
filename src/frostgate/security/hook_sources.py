"""Inbound webhooks (audit F1): sources, their secrets, and the check of each delivery.

A source belongs to one tenant and has one or more active ``whsec_`` secrets (two
during a rotation). ``POST /v1/hooks/{source}`` is accepted only when the Standard
Webhooks signature verifies with one of them, the timestamp is within the tolerance,
and the ``webhook-id`` has not been seen for this source within the replay window.
There is no unsigned mode. An unknown source is answered exactly like a bad signature,
so the endpoint does not reveal which source ids exist.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
import sqlalchemy as sa

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security.admin import Actor, audit_change
from frostgate.security.replay import ReplayCache
from frostgate.security.secret_box import SecretBox
from frostgate.security.webhook_signature import (
    SignatureRejected,
    decode_secret,
    new_secret,
    verify,
)
from frostgate.store import Database
from frostgate.store import webhooks as repo
from frostgate.store.tenancy import serialize_tenant_change

__all__ = [
    "MAX_ACTIVE_SECRETS",
    "HookRejected",
    "HookVerifier",
    "IssuedHookSecret",
    "VerifiedHook",
    "add_secret",
    "create_source",
    "revoke_secret",
]


#: Every delivery is checked against every active secret of its source (one HMAC over
#: the whole body each, before anything else is known about the sender); a rotation
#: needs two.
MAX_ACTIVE_SECRETS = 2


@dataclass(frozen=True, slots=True)
class IssuedHookSecret:
    source_id: str
    secret_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class VerifiedHook:
    tenant_id: str
    source_id: str
    source_name: str
    webhook_id: str
    # The key that added the secret the delivery was signed with (its holder was shown
    # it): the proposer of any mitigation the delivery causes, so it cannot approve it.
    proposer_key_id: str | None = None


class HookRejected(FrostGateError):
    """A delivery refused for its signature or as a replay. ``tenant_id`` is the tenant
    of the source it named, when that source exists: the refusal belongs in that
    tenant's audit stream too (it is an attack on, or a fault of, their integration).
    The sender's answer is the same either way."""

    def __init__(self, code: ErrorCode, log_message: str, *, tenant_id: str | None) -> None:
        super().__init__(code, log_message)
        self.tenant_id = tenant_id


def _checked_secret(secret: str | None) -> str:
    if secret is None:
        return new_secret()
    try:
        decode_secret(secret)
    except ValueError as exc:
        raise FrostGateError(ErrorCode.WEBHOOK_SECRET_INVALID, str(exc)) from exc
    return secret


def _store_secret(
    conn: sa.Connection,
    box: SecretBox,
    tenant_id: str,
    source_id: str,
    secret: str,
    now: datetime,
    *,
    actor: Actor,
) -> str:
    secret_id = "hks_" + secrets.token_hex(8)
    sealed = box.seal(secret, bound_to=f"{tenant_id}/{source_id}/{secret_id}")
    repo.add_hook_secret(
        conn,
        source_id=source_id,
        tenant_id=tenant_id,
        secret_id=secret_id,
        pepper_id=sealed.pepper_id,
        sealed=sealed.ciphertext,
        now=now,
        created_by=actor.key_id,
    )
    return secret_id


def create_source(
    db: Database, box: SecretBox, tenant_id: str, name: str, *, actor: Actor
) -> IssuedHookSecret:
    if not name or len(name) > 200:
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "name")
    now = datetime.now(UTC)
    source_id = "hsrc_" + secrets.token_hex(10)
    secret = new_secret()
    with db.write.begin() as conn:
        repo.create_hook_source(
            conn,
            source_id=source_id,
            tenant_id=tenant_id,
            name=name,
            now=now,
            created_by=actor.key_id,
        )
        secret_id = _store_secret(conn, box, tenant_id, source_id, secret, now, actor=actor)
        audit_change(
            conn,
            actor,
            "hook_source_created",
            tenant_id,
            now,
            {"source_id": source_id, "secret_id": secret_id},
        )
    return IssuedHookSecret(source_id, secret_id, secret)


def add_secret(
    db: Database,
    box: SecretBox,
    tenant_id: str,
    source_id: str,
    secret: str | None,
    *,
    actor: Actor,
) -> IssuedHookSecret:
    """Add a secret (generated, or the sender's own of ≥ 32 bytes) for rotation.

    A secret already active on the source is refused: a delivery signed with it would
    have two holders on record, and the proposer of what it causes must be one key."""
    chosen = _checked_secret(secret)
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        serialize_tenant_change(conn, tenant_id, f"hook-secrets {source_id}")
        source = next(
            (s for s in repo.list_hook_sources(conn, tenant_id) if s.source_id == source_id), None
        )
        if source is None:
            raise FrostGateError(ErrorCode.NOT_FOUND)
        key = decode_secret(chosen)
        if any(hmac.compare_digest(key, _open(box, source, s)) for s in source.secrets):
            raise FrostGateError(ErrorCode.WEBHOOK_SECRET_IN_USE)
        if len(source.secrets) >= MAX_ACTIVE_SECRETS:
            reason = (
                f"a hook source holds at most {MAX_ACTIVE_SECRETS} active secrets: revoke one first"
            )
            raise FrostGateError(ErrorCode.LIMIT_REACHED, reason, reason=reason)
        secret_id = _store_secret(conn, box, tenant_id, source_id, chosen, now, actor=actor)
        audit_change(
            conn,
            actor,
            "hook_secret_added",
            tenant_id,
            now,
            {"source_id": source_id, "secret_id": secret_id},
        )
    return IssuedHookSecret(source_id, secret_id, chosen)


def revoke_secret(
    db: Database, tenant_id: str, source_id: str, secret_id: str, *, actor: Actor
) -> bool:
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        if not repo.revoke_hook_secret(conn, tenant_id, source_id, secret_id, now):
            return False
        audit_change(
            conn,
            actor,
            "hook_secret_revoked",
            tenant_id,
            now,
            {"source_id": source_id, "secret_id": secret_id},
        )
        return True


def _open(box: SecretBox, source: repo.HookSource, stored: repo.HookSecret) -> bytes:
    """The key bytes of one of ``source``'s secrets (sealed bound to where it belongs)."""
    plain = box.open(
        stored.pepper_id,
        stored.sealed,
        bound_to=f"{source.tenant_id}/{source.source_id}/{stored.secret_id}",
    )
    return decode_secret(plain)


def _replay_key(source_id: str, webhook_id: str) -> str:
    return f"{source_id}:{webhook_id}"


class HookVerifier:
    """Checks one inbound delivery: signature, time window, then the replay cache."""

    def __init__(
        self, db: Database, box: SecretBox, replay: ReplayCache, *, tolerance_seconds: int
    ) -> None:
        self._db = db
        self._box = box
        self._replay = replay
        self._tolerance = tolerance_seconds

    async def verify(self, source_id: str, headers: dict[str, str], body: bytes) -> VerifiedHook:
        source = await anyio.to_thread.run_sync(self._load, source_id)
        if source is None or not source.secrets:
            tenant_id = None if source is None else source.tenant_id
            raise HookRejected(ErrorCode.SIGNATURE_INVALID, "unknown source", tenant_id=tenant_id)
        # The newest two: a source may hold more from before the cap, and every one tried
        # is an HMAC over the whole body before anything is known about the sender.
        tried = source.secrets[-MAX_ACTIVE_SECRETS:]
        keys = [_open(self._box, source, stored) for stored in tried]
        try:
            signed = verify(keys, headers, body, now=int(time.time()), tolerance=self._tolerance)
        except SignatureRejected as rejected:
            raise HookRejected(
                ErrorCode.SIGNATURE_INVALID, rejected.reason, tenant_id=source.tenant_id
            ) from rejected
        # Remember ids for the whole span in which their timestamp could still pass.
        window = 2 * self._tolerance + 60
        if not await self._replay.first_sighting(_replay_key(source_id, signed.webhook_id), window):
            raise HookRejected(
                ErrorCode.WEBHOOK_REPLAYED, signed.webhook_id, tenant_id=source.tenant_id
            )
        return VerifiedHook(
            source.tenant_id,
            source.source_id,
            source.name,
            signed.webhook_id,
            # A secret from before holders were recorded (migration 0010) is its
            # source creator's, as every secret was before.
            tried[signed.key_index].created_by or source.created_by,
        )

    async def release(self, verified: VerifiedHook) -> None:
        """The verified message could not be processed (e.g. storage down): let the
        sender's retry through instead of refusing it as a replay."""
        await self._replay.forget(_replay_key(verified.source_id, verified.webhook_id))

    def _load(self, source_id: str) -> repo.HookSource | None:
        try:
            with self._db.read.connect() as conn:
                return repo.find_hook_source(conn, source_id)
        except Exception as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "hook source lookup") from exc
