"""API key format, parsing and hashing (DESIGN.md, "API keys").

A key is ``fgk_<key_id>_<secret>``: ``key_id`` is 16 lowercase hex characters, public
and indexed; ``secret`` is 43 base64url characters (256 bits from :mod:`secrets`).
Only ``HMAC-SHA256(pepper[pepper_id], secret)`` is stored. A random 256-bit secret
needs a keyed hash, not a password KDF: verification costs about a microsecond,
which is what keeps authentication off the audited system's 94% CPU share.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "KEY_PREFIX",
    "MintedKey",
    "ParsedKey",
    "Peppers",
    "hash_secret",
    "new_key",
    "parse_key",
]

KEY_PREFIX = "fgk_"
_KEY_RE = re.compile(r"fgk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class MintedKey:
    key_id: str
    token: str
    secret_hash: str
    pepper_id: str


class Peppers:
    """The server-side HMAC keys, by id; the first is current and used for new hashes."""

    def __init__(self, entries: dict[str, bytes], current_id: str) -> None:
        if current_id not in entries:
            raise ValueError("current pepper id is not among the peppers")
        for pepper_id, value in entries.items():
            if len(value) < 32:
                raise ValueError(f"pepper {pepper_id!r} is shorter than 32 bytes")
        self._entries = dict(entries)
        self.current_id = current_id

    @classmethod
    def parse(cls, spec: str) -> Peppers:
        """Parse ``id:hex[,id:hex...]`` (current first)."""
        entries: dict[str, bytes] = {}
        order: list[str] = []
        for part in spec.split(","):
            pepper_id, sep, value = part.strip().partition(":")
            if not sep or not re.fullmatch(r"[A-Za-z0-9]{1,32}", pepper_id):
                raise ValueError("peppers must be written 'id:hex[,id:hex...]'")
            try:
                entries[pepper_id] = bytes.fromhex(value)
            except ValueError as exc:
                raise ValueError(f"pepper {pepper_id!r} is not hex") from exc
            order.append(pepper_id)
        return cls(entries, order[0])

    @staticmethod
    def generate_spec(pepper_id: str = "p1") -> str:
        return f"{pepper_id}:{secrets.token_hex(32)}"

    def get(self, pepper_id: str) -> bytes | None:
        return self._entries.get(pepper_id)

    @property
    def current(self) -> bytes:
        return self._entries[self.current_id]


def parse_key(token: str) -> ParsedKey | None:
    """Split a presented key into id and secret; None for anything malformed."""
    match = _KEY_RE.fullmatch(token)
    if match is None:
        return None
    return ParsedKey(key_id=match.group(1), secret=match.group(2))


def hash_secret(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode("ascii"), hashlib.sha256).hexdigest()


def new_key(peppers: Peppers) -> MintedKey:
    """A fresh key: the token is shown once; only its keyed hash is kept."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return MintedKey(
        key_id=key_id,
        token=f"{KEY_PREFIX}{key_id}_{secret}",
        secret_hash=hash_secret(peppers.current, secret),
        pepper_id=peppers.current_id,
    )
