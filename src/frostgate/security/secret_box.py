"""Encryption at rest for secrets FrostGate must be able to use again.

API keys are stored as keyed hashes because FrostGate only ever compares them. Webhook
secrets are different: signing an outbound delivery or checking an inbound one needs
the secret itself. They are stored encrypted with AES-256-GCM under a key derived from
a pepper (HKDF-SHA256, RFC 5869, with a purpose label), so a database dump alone does
not reveal them. The pepper id is stored next to the ciphertext; rotating peppers keeps
old ones readable for as long as they are configured. The associated data binds a
ciphertext to its row (tenant and id): a ciphertext copied onto another tenant's row
does not decrypt.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from frostgate.security.keys import Peppers

__all__ = ["SealedSecret", "SecretBox"]

_INFO = b"frostgate webhook secret v1"
_NONCE_BYTES = 12


class SealedSecret(tuple[str, str]):
    """``(pepper_id, ciphertext)`` as stored: base64 of nonce ‖ AES-GCM output."""

    __slots__ = ()

    @property
    def pepper_id(self) -> str:
        return self[0]

    @property
    def ciphertext(self) -> str:
        return self[1]


class SecretBox:
    def __init__(self, peppers: Peppers) -> None:
        self._peppers = peppers
        self._keys: dict[str, AESGCM] = {}

    def _aead(self, pepper_id: str) -> AESGCM:
        aead = self._keys.get(pepper_id)
        if aead is None:
            pepper = self._peppers.get(pepper_id)
            if pepper is None:
                raise LookupError(f"pepper {pepper_id!r} is not configured")
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(pepper)
            aead = self._keys[pepper_id] = AESGCM(key)
        return aead

    def seal(self, secret: str, *, bound_to: str) -> SealedSecret:
        pepper_id = self._peppers.current_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead(pepper_id).encrypt(nonce, secret.encode(), bound_to.encode())
        return SealedSecret((pepper_id, base64.b64encode(nonce + sealed).decode()))

    def open(self, pepper_id: str, ciphertext: str, *, bound_to: str) -> str:
        """The secret; ``ValueError`` when it was tampered with or bound to another row."""
        raw = base64.b64decode(ciphertext)
        try:
            plain = self._aead(pepper_id).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode()
            )
        except InvalidTag as exc:
            raise ValueError("sealed secret does not open (tampered or moved)") from exc
        return plain.decode()
