"""Signed notes and checkpoints: C2SP signed-note and tlog-checkpoint, Ed25519 only.

Implements https://c2sp.org/signed-note (format of golang.org/x/mod/sumdb/note) and
https://c2sp.org/tlog-checkpoint:

* a signed note is a text ending in a newline, a blank line, and one or more lines
  ``"— " <key name> " " base64(key ID || signature) "\\n"`` (U+2014 EM DASH); the whole
  note is valid UTF-8 with no ASCII control character other than newline;
* key names are non-empty and contain neither Unicode spaces nor ``+``;
* key ID = ``SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]``
  (signature type 0x01 = Ed25519 over the note text, RFC 8032);
* verifier key string ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``; private
  key string ``PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>``
  (the encodings of ``note.NewVerifier`` / ``note.NewSigner``);
* a checkpoint's note text is ``<origin>\\n<decimal size>\\n<base64 root hash>\\n``,
  size without leading zeros, optionally followed by non-empty extension lines.

Verification follows the spec: signatures from unknown keys (name and key ID not both
known) are ignored, a known key whose signature fails rejects the whole note, and a
note without a verified signature from a known key is rejected. Parsing is strict:
base64 must be canonical standard encoding, and every malformation raises
:class:`NoteError` naming the problem. FrostGate never writes extension lines, so
:func:`open_checkpoint` rejects them unless asked to return them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from frostgate.ledger.hashing import HASH_SIZE

__all__ = [
    "Checkpoint",
    "NoteError",
    "Signer",
    "Verifier",
    "format_checkpoint",
    "generate_signing_key",
    "key_id",
    "open_checkpoint",
    "open_note",
    "sign_note",
]

EM_DASH: Final = "\u2014"
_SIG_PREFIX: Final = EM_DASH + " "
_ALG_ED25519: Final = 0x01
_PRIVATE_PREFIX: Final = "PRIVATE+KEY+"
#: Notes with more signature lines than this are rejected (the spec requires accepting
#: at least 16; golang.org/x/mod/sumdb/note stops at 100).
MAX_SIGNATURES: Final = 100
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE: Final = 2**64 - 1


class NoteError(ValueError):
    """A key string, note or checkpoint is malformed or fails verification."""


# ------------------------------------------------------------------------ encodings


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4): alphabet, padding and canonical form."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _is_valid_name(name: str) -> bool:
    """Non-empty, UTF-8 encodable, no Unicode space, no ``+``, no control character."""
    if not name or "+" in name:
        return False
    if any(ch.isspace() or ord(ch) < 0x20 for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _is_valid_name(name):
        raise NoteError(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || 0x01 || public_key)[:4]`` — the Ed25519 key ID."""
    _check_name(name)
    if len(public_key) != 32:
        raise NoteError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([_ALG_ED25519]) + public_key
    ).digest()[:4]


def _split_key(text: str, parts: int, what: str) -> list[str]:
    """Split at the first ``parts - 1`` plus signs (the last part is base64 and may hold ``+``)."""
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise NoteError(f"malformed {what}: expected {parts} '+'-separated fields")
    return fields


def _decode_key_material(name: str, hex_id: str, key64: str, what: str) -> tuple[bytes, bytes]:
    _check_name(name)
    if not _HEX8.fullmatch(hex_id):
        raise NoteError(f"malformed {what}: key ID must be 8 hex digits")
    raw = _b64decode(key64, f"{what} key data")
    if not raw:
        raise NoteError(f"malformed {what}: empty key data")
    if raw[0] != _ALG_ED25519:
        raise NoteError(f"unsupported {what} algorithm {raw[0]:#04x} (only Ed25519, 0x01)")
    if len(raw) != 33:
        raise NoteError(f"malformed {what}: Ed25519 key data must be 32 bytes")
    return bytes.fromhex(hex_id), raw[1:]


# -------------------------------------------------------------------------- signers


class Verifier:
    """Verifies note signatures of one named Ed25519 key."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        self.key_id: bytes = key_id(name, public_key)
        self.name: str = name
        self.public_key: bytes = bytes(public_key)
        try:
            self._key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:  # pragma: no cover - any 32 bytes load in OpenSSL
            raise NoteError("invalid Ed25519 public key") from exc

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse a verifier key ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
        if not isinstance(vkey, str):
            raise NoteError("verifier key must be a str")
        name, hex_id, key64 = _split_key(vkey, 3, "verifier key")
        claimed_id, public_key = _decode_key_material(name, hex_id, key64, "verifier key")
        verifier = cls(name, public_key)
        if verifier.key_id != claimed_id:
            raise NoteError("verifier key ID does not match its name and public key")
        return verifier

    @property
    def vkey(self) -> str:
        """The verifier key string."""
        return (
            f"{self.name}+{self.key_id.hex()}+{_b64encode(bytes([_ALG_ED25519]) + self.public_key)}"
        )

    def with_name(self, name: str) -> Verifier:
        """The same public key under another key name (hence another key ID)."""
        return Verifier(name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"Verifier({self.vkey!r})"


class Signer:
    """Signs notes with one named Ed25519 key."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise NoteError("private key must be an Ed25519PrivateKey")
        self.public_key: bytes = private_key.public_key().public_bytes_raw()
        self.key_id: bytes = key_id(name, self.public_key)
        self.name: str = name
        self._key = private_key

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``.

        The key ID is checked against the public key derived from the seed.
        """
        if not isinstance(skey, str) or not skey.startswith(_PRIVATE_PREFIX):
            raise NoteError("malformed private key: must start with 'PRIVATE+KEY+'")
        name, hex_id, key64 = _split_key(skey[len(_PRIVATE_PREFIX) :], 3, "private key")
        claimed_id, seed = _decode_key_material(name, hex_id, key64, "private key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if signer.key_id != claimed_id:
            raise NoteError("private key ID does not match its name and public key")
        return signer

    @property
    def skey(self) -> str:
        """The private key string (secret: store it like a password)."""
        data = _b64encode(bytes([_ALG_ED25519]) + self._key.private_bytes_raw())
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{data}"

    @property
    def vkey(self) -> str:
        """The verifier key string for this signer."""
        return self.verifier().vkey

    def verifier(self) -> Verifier:
        """The matching :class:`Verifier`."""
        return Verifier(self.name, self.public_key)

    def with_name(self, name: str) -> Signer:
        """The same private key under another key name (hence another key ID)."""
        return Signer(name, self._key)

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message`` (64 bytes)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()!r})"


def generate_signing_key(name: str) -> tuple[str, str]:
    """A new Ed25519 key as ``(private key string, verifier key string)``.

    Like ``note.GenerateKey``: the first string is secret and can live in one
    environment variable or file; the second is published to verifiers.
    """
    signer = Signer(name, Ed25519PrivateKey.generate())
    return signer.skey, signer.vkey


# ---------------------------------------------------------------------------- notes


def _check_note_chars(text: str, what: str) -> None:
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            raise NoteError(f"{what} contains control character {ch!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8 (lone surrogate)") from None


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise NoteError("note text must be a str")
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_note_chars(text, "note text")


def sign_note(text: str, signer: Signer, *more: Signer) -> str:
    """``text`` followed by a blank line and one signature line per signer."""
    _check_text(text)
    message = text.encode("utf-8")
    lines = []
    for s in (signer, *more):
        lines.append(f"{_SIG_PREFIX}{s.name} {_b64encode(s.key_id + s.sign(message))}\n")
    return text + "\n" + "".join(lines)


def _index_verifiers(verifiers: Verifier | Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    items = [verifiers] if isinstance(verifiers, Verifier) else list(verifiers)
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in items:
        if not isinstance(v, Verifier):
            raise TypeError("verifiers must be Verifier instances")
        key = (v.name, v.key_id)
        if key in known and known[key].public_key != v.public_key:
            raise NoteError(f"ambiguous verifiers for key {v.name}+{v.key_id.hex()}")
        known[key] = v
    return known


def open_note(note: str | bytes, verifiers: Verifier | Iterable[Verifier]) -> tuple[str, list[str]]:
    """Verify a signed note; return its text and the names of the keys that signed it.

    Raises :class:`NoteError` if the note is malformed, if a known key's signature is
    invalid, or if no known key signed it.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    if not isinstance(note, str):
        raise NoteError("note must be str or bytes")
    _check_note_chars(note, "note")
    known = _index_verifiers(verifiers)

    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines")
    if not block.endswith("\n"):
        raise NoteError("note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signature lines")

    message = text.encode("utf-8")
    verified: list[str] = []
    seen: set[tuple[str, bytes]] = set()
    for number, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"signature line {number} does not start with an em dash and a space")
        name, sep, sig64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _is_valid_name(name):
            raise NoteError(f"signature line {number} has an invalid key name")
        if not sig64:
            raise NoteError(f"signature line {number} has no signature")
        raw = _b64decode(sig64, f"signature on line {number}")
        if len(raw) < 5:
            raise NoteError(f"signature on line {number} is too short")
        kid, sig = raw[:4], raw[4:]
        verifier = known.get((name, kid))
        if verifier is None or (name, kid) in seen:
            continue  # unknown key: ignored, as the spec requires; repeats: ignored
        seen.add((name, kid))
        if not verifier.verify(message, sig):
            raise NoteError(f"invalid signature by known key {name}+{kid.hex()}")
        verified.append(name)
    if not verified:
        raise NoteError("note is not signed by any known key")
    return text, verified


# ----------------------------------------------------------------------- checkpoints


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified log checkpoint (c2sp.org/tlog-checkpoint)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The checkpoint's note text."""
        return format_checkpoint(self.origin, self.size, self.root, self.extensions)


def _check_origin(origin: str) -> None:
    if not isinstance(origin, str) or not origin:
        raise NoteError("checkpoint origin must be a non-empty str")
    if "\n" in origin:
        raise NoteError("checkpoint origin must be a single line")
    _check_note_chars(origin, "checkpoint origin")


def format_checkpoint(
    origin: str, size: int, root_hash: bytes, extensions: Iterable[str] = ()
) -> str:
    """The checkpoint note text ``<origin>\\n<size>\\n<base64 root>\\n`` (+ extension lines)."""
    _check_origin(origin)
    if type(size) is not int or not 0 <= size <= _MAX_TREE_SIZE:
        raise NoteError(f"checkpoint size must be an int in [0, 2**64), got {size!r}")
    if not isinstance(root_hash, bytes) or len(root_hash) != HASH_SIZE:
        raise NoteError(f"checkpoint root hash must be {HASH_SIZE} bytes")
    ext = list(extensions)
    for line in ext:
        if not isinstance(line, str) or not line or "\n" in line:
            raise NoteError("checkpoint extension lines must be non-empty single lines")
        _check_note_chars(line, "checkpoint extension line")
    return "".join(f"{line}\n" for line in (origin, str(size), _b64encode(root_hash), *ext))


def _parse_checkpoint_text(text: str, *, allow_extensions: bool) -> Checkpoint:
    lines = text.split("\n")
    # text ends with "\n" (guaranteed by open_note), so the last element is "".
    lines.pop()
    if len(lines) < 3:
        raise NoteError("checkpoint needs origin, size and root hash lines")
    origin, size_line, root_line, *ext = lines
    if not origin:
        raise NoteError("checkpoint origin line is empty")
    if not _DECIMAL.fullmatch(size_line):
        raise NoteError("checkpoint size is not a decimal number without leading zeros")
    size = int(size_line)
    if size > _MAX_TREE_SIZE:
        raise NoteError("checkpoint size does not fit in 64 bits")
    root_hash = _b64decode(root_line, "checkpoint root hash")
    if len(root_hash) != HASH_SIZE:
        raise NoteError(f"checkpoint root hash is {len(root_hash)} bytes, expected {HASH_SIZE}")
    if any(not line for line in ext):
        raise NoteError("checkpoint has an empty extension line")
    if ext and not allow_extensions:
        raise NoteError("checkpoint has unexpected extension lines after the root hash")
    return Checkpoint(origin, size, root_hash, tuple(ext))


def open_checkpoint(
    note: str | bytes,
    verifier: Verifier | Iterable[Verifier],
    *,
    origin: str | None = None,
    allow_extensions: bool = False,
) -> Checkpoint:
    """Verify a signed checkpoint note and parse it strictly.

    ``origin``, if given, must equal the checkpoint's origin line; callers that hold
    checkpoints of several logs signed by one key MUST pass it (the signature covers
    the origin, the key name does not). Raises :class:`NoteError` on any problem.
    """
    text, _names = open_note(note, verifier)
    checkpoint = _parse_checkpoint_text(text, allow_extensions=allow_extensions)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}")
    return checkpoint
