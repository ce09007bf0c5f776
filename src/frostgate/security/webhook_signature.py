"""Standard Webhooks signatures (https://www.standardwebhooks.com/, spec v1).

One module for both directions: FrostGate signs what it sends (``delivery``) and checks
what it receives (``/v1/hooks/{source}``, audit F1) with the same definitions, so a
receiver can verify our deliveries with any Standard Webhooks library and any sender
library can sign for us.

* Secret: ``whsec_`` + base64 of the key bytes. We generate 32 random bytes and refuse
  keys shorter than 32 bytes (the spec allows 24; we do not).
* Signed content: ``{webhook-id}.{webhook-timestamp}.{body}``, HMAC-SHA256 with the key.
* ``webhook-signature``: space-separated ``v1,<base64 MAC>`` entries; any entry made with
  any of the receiver's active secrets is accepted (secret rotation).
* ``webhook-timestamp``: integer Unix seconds, accepted within ±``tolerance`` of now.

Verification does not remember ids: replay protection (a ``webhook-id`` seen before
inside the tolerance window) is the caller's job, because it needs shared state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "MIN_SECRET_BYTES",
    "SECRET_PREFIX",
    "SignatureRejected",
    "SignedHeaders",
    "decode_secret",
    "new_secret",
    "sign",
    "signed_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
MIN_SECRET_BYTES = 32
MAX_SIGNATURE_HEADER = 4096
DEFAULT_TOLERANCE_SECONDS = 300
_MSG_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# Canonical decimal only: the MAC is computed over str(int(header)), so a header with
# leading zeros ("0100") would verify against a signature over another string ("100").
# Found by the mutation property in tests/webhooks/test_webhook_signature.py.
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,11}")


class SignatureRejected(ValueError):
    """A delivery whose signature headers do not verify; ``reason`` is stable text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    webhook_id: str
    webhook_timestamp: int
    # Which of the keys passed to :func:`verify` signed it (the first, if several did).
    key_index: int


def new_secret() -> str:
    """A fresh ``whsec_`` secret of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(MIN_SECRET_BYTES)).decode()


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; ``ValueError`` when malformed or too short."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("secret must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("secret is not base64") from exc
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"secret must hold at least {MIN_SECRET_BYTES} bytes")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a sender adds."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
    }


def verify(
    keys: Iterable[bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> SignedHeaders:
    """Check the signature headers of ``body`` against any of ``keys``.

    ``headers`` must have lowercase names. Raises :class:`SignatureRejected` for a
    missing or malformed header, a timestamp outside ±``tolerance`` seconds, or no
    matching signature; comparisons are constant-time.
    """
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if msg_id is None or stamp is None or signature is None:
        raise SignatureRejected("missing signature headers")
    if not _MSG_ID.fullmatch(msg_id):
        raise SignatureRejected("malformed webhook-id")
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureRejected("malformed webhook-timestamp")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance:
        raise SignatureRejected("timestamp outside tolerance")
    if len(signature) > MAX_SIGNATURE_HEADER:
        raise SignatureRejected("signature header too long")
    offered = [
        entry.partition(",")[2].encode()
        for entry in signature.split(" ")
        if entry.startswith("v1,")
    ]
    if not offered:
        raise SignatureRejected("no v1 signature")
    signer: int | None = None
    for index, key in enumerate(keys):
        expected = sign(key, msg_id, timestamp, body).partition(",")[2].encode()
        # Evaluate every pair: the time taken does not tell which secret matched.
        hits = [hmac.compare_digest(expected, candidate) for candidate in offered]
        if any(hits) and signer is None:
            signer = index
    if signer is None:
        raise SignatureRejected("signature mismatch")
    return SignedHeaders(webhook_id=msg_id, webhook_timestamp=timestamp, key_index=signer)
