"""C2SP signed-note and tlog-checkpoint with Ed25519.

Known answers:

* golang.org/x/mod ``sumdb/note/note.go`` (package documentation) and
  ``sumdb/note/note_test.go`` (``TestNewVerifier``, ``TestNewSigner``, ``TestSign``,
  ``TestOpen``): the PeterNeumann private and verifier keys, the signed note they
  produce, and the EnochRoot verifier key and cosignature;
* the example of the C2SP signed-note specification (c2sp.org/signed-note, section
  "Example" of C2SP/C2SP ``signed-note.md`` at commit d4c16da5, as quoted verbatim by
  several independent implementations): verifier key ``example.com/foo+530d903a+…``
  and its signature of "This is an example message.\\n";
* the example checkpoint body of c2sp.org/tlog-checkpoint (its signature cannot be
  checked: the spec does not publish that key).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from frostgate.ledger import (
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
from frostgate.ledger.note import _parse_checkpoint_text

EM = "\u2014"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    f"{EM} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    f"{EM} EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM} example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
SPEC_CHECKPOINT_TEXT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)

ROOT = bytes(range(32))
ORIGIN = "frostgate.test/decisions/tenant-a"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32))


# ------------------------------------------------------------------ known answers


def test_go_keys_and_signature_reproduce_byte_for_byte() -> None:
    peter = Signer.from_skey(PETER_SKEY)
    assert peter.name == "PeterNeumann"
    assert peter.key_id.hex() == "c74f20a3"
    assert peter.vkey == PETER_VKEY
    assert peter.skey == PETER_SKEY
    assert sign_note(GO_TEXT, peter) == GO_TEXT + "\n" + PETER_SIG  # Ed25519 is deterministic
    v = Verifier.from_vkey(PETER_VKEY)
    assert v.vkey == PETER_VKEY
    assert key_id("PeterNeumann", v.public_key) == bytes.fromhex("c74f20a3")
    assert Verifier.from_vkey(ENOCH_VKEY).key_id.hex() == "af0cfe78"


def test_go_open_one_known_one_unknown_and_both_known() -> None:
    peter, enoch = Verifier.from_vkey(PETER_VKEY), Verifier.from_vkey(ENOCH_VKEY)
    note = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, peter) == (GO_TEXT, ["PeterNeumann"])
    assert open_note(note, [peter, enoch]) == (GO_TEXT, ["PeterNeumann", "EnochRoot"])
    assert open_note(note.encode(), [enoch]) == (GO_TEXT, ["EnochRoot"])
    with pytest.raises(NoteError, match="not signed by any known key"):
        open_note(note, [])
    # Repeated signatures are ignored, like the Go implementation.
    assert open_note(GO_TEXT + "\n" + PETER_SIG * 3, peter) == (GO_TEXT, ["PeterNeumann"])


def test_c2sp_signed_note_spec_example() -> None:
    v = Verifier.from_vkey(SPEC_VKEY)
    assert v.name == "example.com/foo"
    assert v.key_id.hex() == "530d903a"
    assert v.public_key.hex() == "e932791ae6e7a840a46164c904786426d5e7821dd8b29a00d61cae72afdd4da4"
    assert open_note(SPEC_NOTE, v) == ("This is an example message.\n", ["example.com/foo"])


def test_c2sp_checkpoint_spec_example_parses_and_reformats() -> None:
    cp = _parse_checkpoint_text(SPEC_CHECKPOINT_TEXT, allow_extensions=False)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert len(cp.root) == 32
    assert format_checkpoint(cp.origin, cp.size, cp.root) == SPEC_CHECKPOINT_TEXT
    assert cp.text() == SPEC_CHECKPOINT_TEXT


# ------------------------------------------------------------------- key strings


def _manglings(key: str) -> list[str]:
    """Every proper substring and every one-character increment (as golang.org/x/mod tests)."""
    out = {key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)} - {key}
    out |= {key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))}
    return sorted(out)


def test_mangled_verifier_keys_are_rejected() -> None:
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(NoteError):
            Verifier.from_vkey(bad)
    # golang.org/x/mod note_test.go: wrong key length / unknown algorithm, adjusted IDs.
    for bad in (
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(NoteError):
            Verifier.from_vkey(bad)


def test_mangled_private_keys_are_rejected() -> None:
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(NoteError):
            Signer.from_skey(bad)


@pytest.mark.parametrize(
    ("vkey", "reason"),
    [
        ("PeterNeumann+c74f20a3", "3 '\\+'-separated"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "invalid key name"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "invalid key name"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n", "base64"),
        ("PeterNeumann+c74f20a3+", "empty key data"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
    ],
)
def test_verifier_key_errors_name_the_problem(vkey: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        Verifier.from_vkey(vkey)


def test_generated_keys_round_trip() -> None:
    skey, vkey = generate_signing_key("frostgate.test/ledger")
    assert skey.startswith("PRIVATE+KEY+frostgate.test/ledger+")
    signer, verifier = Signer.from_skey(skey), Verifier.from_vkey(vkey)
    assert signer.vkey == vkey
    assert signer.skey == skey
    assert verifier.key_id == signer.key_id
    note = sign_note("hello\n", signer)
    assert open_note(note, verifier) == ("hello\n", ["frostgate.test/ledger"])
    other = signer.with_name("other.test/log")
    assert other.key_id != signer.key_id
    assert other.public_key == signer.public_key
    assert open_note(sign_note("hi\n", other), verifier.with_name("other.test/log"))[0] == "hi\n"
    with pytest.raises(NoteError, match="invalid key name"):
        generate_signing_key("has space")
    with pytest.raises(NoteError, match="invalid key name"):
        generate_signing_key("a+b")


# ------------------------------------------------------------------------- notes


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (GO_TEXT, "no blank line"),
        (GO_TEXT + "\n", "no signature lines"),
        (GO_TEXT + "\n" + PETER_SIG[:-1], "does not end with a newline"),
        ("\x01" + GO_TEXT + "\n" + PETER_SIG, "control character"),
        (GO_TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG, "control character"),
        (GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), "not valid base64"),
        (GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"), "invalid key name"),
        (GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "line 2 does not start"),
        (GO_TEXT + "\n" + PETER_SIG.replace(EM, "-"), "line 1 does not start"),
        (GO_TEXT + "\n" + f"{EM} PeterNeumann\n", "invalid key name"),
        (GO_TEXT + "\n" + f"{EM} PeterNeumann \n", "no signature"),
        (GO_TEXT + "\n" + f"{EM} PeterNeumann !!!!\n", "not valid base64"),
        (GO_TEXT + "\n" + f"{EM} PeterNeumann AAAA\n", "too short"),
        (
            GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:],
            "invalid signature by known key",
        ),
        (GO_TEXT + "\n" + PETER_SIG * 101, "more than 100"),
        ("\ud800" + GO_TEXT + "\n" + PETER_SIG, "lone surrogate"),
    ],
)
def test_malformed_notes_are_rejected_with_a_reason(note: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        open_note(note, Verifier.from_vkey(PETER_VKEY))


def test_invalid_utf8_bytes_are_rejected() -> None:
    with pytest.raises(NoteError, match="not valid UTF-8"):
        open_note(b"\xff" + (GO_TEXT + "\n" + PETER_SIG).encode(), Verifier.from_vkey(PETER_VKEY))


def test_sign_note_requires_a_valid_text(signer: Signer) -> None:
    for bad in ("no newline", "", "tab\there\n", "\ud800\n"):
        with pytest.raises(NoteError):
            sign_note(bad, signer)


def test_ambiguous_verifiers_are_refused() -> None:
    a = Signer("same", Ed25519PrivateKey.generate()).verifier()
    twin = Verifier(a.name, a.public_key)
    assert open_note(
        sign_note("x\n", Signer.from_skey(PETER_SKEY)), [a, twin, Verifier.from_vkey(PETER_VKEY)]
    )
    # Two different keys can only share a name and key ID by a 32-bit collision; fake one.
    b = Signer("same", Ed25519PrivateKey.generate()).verifier()
    b.key_id = a.key_id
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(sign_note("x\n", Signer.from_skey(PETER_SKEY)), [a, b])


@given(
    st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]) | st.just("\n"), max_size=200)
)
def test_any_valid_text_round_trips(body: str) -> None:
    signer = Signer.from_skey(PETER_SKEY)
    text = body + "\n"
    assert open_note(sign_note(text, signer), signer.verifier()) == (text, ["PeterNeumann"])


# ------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(signer: Signer) -> None:
    text = format_checkpoint(ORIGIN, 1234, ROOT)
    assert text == f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
    note = sign_note(text, signer)
    assert note.startswith(text + "\n" + EM + " " + ORIGIN + " ")
    cp = open_checkpoint(note, signer.verifier(), origin=ORIGIN)
    assert cp == Checkpoint(ORIGIN, 1234, ROOT)
    assert open_checkpoint(note, Verifier.from_vkey(signer.vkey)).size == 1234
    empty = open_checkpoint(
        sign_note(format_checkpoint(ORIGIN, 0, ROOT), signer), signer.verifier()
    )
    assert empty.size == 0


def test_checkpoint_for_another_origin_is_refused(signer: Signer) -> None:
    note = sign_note(format_checkpoint("frostgate.test/decisions/tenant-b", 5, ROOT), signer)
    with pytest.raises(NoteError, match="not the expected"):
        open_checkpoint(note, signer.verifier(), origin=ORIGIN)


def test_checkpoint_from_an_unknown_key_is_refused(signer: Signer) -> None:
    note = sign_note(format_checkpoint(ORIGIN, 5, ROOT), signer)
    with pytest.raises(NoteError, match="not signed by any known key"):
        open_checkpoint(note, Verifier.from_vkey(PETER_VKEY))
    # Same name, different key: unknown (name and ID must both match), hence refused.
    impostor = Signer(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(NoteError, match="not signed by any known key"):
        open_checkpoint(sign_note(format_checkpoint(ORIGIN, 5, ROOT), impostor), signer.verifier())


def test_tampered_checkpoint_is_refused(signer: Signer) -> None:
    note = sign_note(format_checkpoint(ORIGIN, 5, ROOT), signer)
    with pytest.raises(NoteError, match="invalid signature"):
        open_checkpoint(note.replace("\n5\n", "\n6\n"), signer.verifier())


B64_ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"{ORIGIN}\n5\n", "needs origin, size and root"),
        (f"\n5\n{B64_ROOT}\n", "origin line is empty"),
        (f"{ORIGIN}\n05\n{B64_ROOT}\n", "leading zeros"),
        (f"{ORIGIN}\n-5\n{B64_ROOT}\n", "decimal"),
        (f"{ORIGIN}\n+5\n{B64_ROOT}\n", "decimal"),
        (f"{ORIGIN}\n 5\n{B64_ROOT}\n", "decimal"),
        (f"{ORIGIN}\n5 \n{B64_ROOT}\n", "decimal"),
        (f"{ORIGIN}\n\n{B64_ROOT}\n", "decimal"),
        (f"{ORIGIN}\n1e3\n{B64_ROOT}\n", "decimal"),
        (f"{ORIGIN}\n\u0665\n{B64_ROOT}\n", "decimal"),  # ARABIC-INDIC DIGIT FIVE
        (f"{ORIGIN}\n{2**64}\n{B64_ROOT}\n", "64 bits"),
        (f"{ORIGIN}\n5\n{B64_ROOT[:-1]}\n", "not valid base64"),
        (f"{ORIGIN}\n5\n{B64_ROOT.rstrip('=')}\n", "not valid base64"),
        (f"{ORIGIN}\n5\n{base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()}\n", "base64"),
        (f"{ORIGIN}\n5\n{B64_ROOT[:-2]}9=\n", "canonical"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"{ORIGIN}\n5\n{B64_ROOT}\nextension\n", "unexpected extension"),
        (f"{ORIGIN}\n5\n{B64_ROOT}\n\nafter blank\n", "empty extension"),
    ],
)
def test_malformed_checkpoints_are_rejected_with_a_reason(
    signer: Signer, text: str, reason: str
) -> None:
    with pytest.raises(NoteError, match=reason):
        open_checkpoint(sign_note(text, signer), signer.verifier())


def test_extension_lines_only_when_asked(signer: Signer) -> None:
    note = sign_note(format_checkpoint(ORIGIN, 5, ROOT, ["ext one", "ext two"]), signer)
    cp = open_checkpoint(note, signer.verifier(), allow_extensions=True)
    assert cp.extensions == ("ext one", "ext two")


def test_signed_note_structure_errors_reach_checkpoints(signer: Signer) -> None:
    note = sign_note(format_checkpoint(ORIGIN, 5, ROOT), signer)
    for bad, reason in (
        (note.replace("\n\n", "\n"), "no blank line"),
        (note + "trailing junk\n", "does not start"),
        (note + "x", "does not end with a newline"),
        (note.replace(f"{EM} ", f"{EM}  "), "invalid key name"),
    ):
        with pytest.raises(NoteError, match=reason):
            open_checkpoint(bad, signer.verifier())


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("", 1, ROOT), "non-empty"),
        (("a\nb", 1, ROOT), "single line"),
        (("a\tb", 1, ROOT), "control character"),
        ((ORIGIN, -1, ROOT), "size"),
        ((ORIGIN, 2**64, ROOT), "size"),
        ((ORIGIN, True, ROOT), "size"),
        ((ORIGIN, 1, ROOT[:31]), "32 bytes"),
        ((ORIGIN, 1, ROOT, [""]), "extension"),
        ((ORIGIN, 1, ROOT, ["a\nb"]), "extension"),
    ],
)
def test_format_checkpoint_validates(args: tuple[Any, ...], reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        format_checkpoint(*args)
