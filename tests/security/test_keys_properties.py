"""Properties of the API key parser and its use by the authenticator (issue 7, part 4).

``parse_key`` is documented to return the key's parts or None, never to raise; the
authenticator answers every key it cannot accept with ``AUTH_REQUIRED``. Hypothesis
checks both over minted keys, every single-character mutation of them, and arbitrary
text; the authenticator runs against the real store (SQLite, or PostgreSQL under
``FG_TEST_DB_URL``).
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frostgate.config import Settings
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security import TENANT_SCOPES, KeyAuthenticator, admin
from frostgate.security.keys import KEY_PREFIX, Peppers, hash_secret, new_key, parse_key
from frostgate.security.peppers import load_peppers
from frostgate.store import Database

PEPPERS = Peppers({"p1": b"\x01" * 32}, "p1")
KEY_ALPHABET = "0123456789abcdefABCDEF_-fgkxyz"


def _mutate(token: str, position: int, kind: str, char: str) -> str:
    at = position % (len(token) + 1)
    if kind == "insert":
        return token[:at] + char + token[at:]
    at = min(at, len(token) - 1)
    if kind == "delete":
        return token[:at] + token[at + 1 :]
    return token[:at] + char + token[at + 1 :]


mutations = st.tuples(
    st.integers(min_value=0, max_value=200),
    st.sampled_from(["insert", "delete", "replace"]),
    st.sampled_from(KEY_ALPHABET) | st.characters(),
)


@given(pepper=st.binary(min_size=32, max_size=64))
def test_minted_keys_parse_back_to_their_id_and_secret(pepper: bytes) -> None:
    peppers = Peppers({"p": pepper}, "p")
    minted = new_key(peppers)
    parsed = parse_key(minted.token)
    assert parsed is not None
    assert parsed.key_id == minted.key_id
    assert minted.token == f"{KEY_PREFIX}{parsed.key_id}_{parsed.secret}"
    assert hash_secret(pepper, parsed.secret) == minted.secret_hash


@given(mutation=mutations)
def test_any_mutation_of_a_minted_key_is_refused_or_names_another_secret(
    mutation: tuple[int, str, str],
) -> None:
    minted = new_key(PEPPERS)
    mutated = _mutate(minted.token, *mutation)
    if mutated == minted.token:
        return  # replacing a character with itself is no mutation
    parsed = parse_key(mutated)
    if parsed is None:
        return
    # Still well-formed: then it names another key, or its secret hashes differently.
    assert (
        parsed.key_id != minted.key_id
        or hash_secret(PEPPERS.current, parsed.secret) != minted.secret_hash
    )


@given(text=st.text(max_size=120) | st.from_regex(r"fgk_[0-9a-fA-F]{14,18}_[ -~]{40,46}"))
def test_arbitrary_text_parses_exactly_or_not_at_all(text: str) -> None:
    parsed = parse_key(text)  # documented: never raises
    if parsed is not None:
        assert text == f"{KEY_PREFIX}{parsed.key_id}_{parsed.secret}"
        assert len(parsed.key_id) == 16
        assert len(parsed.secret) == 43


@pytest.fixture
def minted_token(db: Database, settings: Settings) -> tuple[KeyAuthenticator, str]:
    admin.create_tenant(db, "props")
    peppers = load_peppers(settings)
    token = admin.mint_key(db, peppers, tenant_id="props", scopes=TENANT_SCOPES).token
    return KeyAuthenticator(db, peppers, cache_seconds=0.0), token


def _authenticate(authenticator: KeyAuthenticator, token: str) -> ErrorCode | None:
    try:
        asyncio.run(authenticator.authenticate(token))
    except FrostGateError as exc:
        return exc.code
    return None


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations)
def test_the_store_refuses_every_mutated_key(
    minted_token: tuple[KeyAuthenticator, str], mutation: tuple[int, str, str]
) -> None:
    authenticator, token = minted_token
    assert _authenticate(authenticator, token) is None
    mutated = _mutate(token, *mutation)
    if mutated != token:
        assert _authenticate(authenticator, mutated) is ErrorCode.AUTH_REQUIRED


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=100) | st.from_regex(r"fgk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}"))
def test_arbitrary_presented_keys_get_only_auth_required(
    minted_token: tuple[KeyAuthenticator, str], text: str
) -> None:
    authenticator, token = minted_token
    if text != token:
        assert _authenticate(authenticator, text) is ErrorCode.AUTH_REQUIRED
