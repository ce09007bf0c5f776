"""Standard Webhooks signatures, checked against the independent reference library."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from frostgate.security.webhook_signature import (
    SignatureRejected,
    decode_secret,
    new_secret,
    sign,
    signed_headers,
    verify,
)


def test_our_signatures_verify_with_the_reference_library() -> None:
    secret = new_secret()
    body = b'{"type":"decision.alert","data":{"score":95}}'
    now = int(time.time())
    headers = signed_headers(decode_secret(secret), "msg_01", now, body)
    payload = Webhook(secret).verify(body, headers)
    assert payload["data"]["score"] == 95


def test_a_tampered_body_fails_the_reference_library() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signed_headers(decode_secret(secret), "msg_01", now, b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)


def test_reference_library_signatures_verify_with_ours() -> None:
    secret = new_secret()
    now = int(time.time())
    signature = Webhook(secret).sign("msg_02", datetime.fromtimestamp(now, UTC), '{"x":1}')
    headers = {
        "webhook-id": "msg_02",
        "webhook-timestamp": str(now),
        "webhook-signature": signature,
    }
    assert verify([decode_secret(secret)], headers, b'{"x":1}', now=now).webhook_id == "msg_02"


def test_any_active_secret_verifies_rotation() -> None:
    old, new = decode_secret(new_secret()), decode_secret(new_secret())
    now = int(time.time())
    headers = signed_headers(new, "m", now, b"{}")
    assert verify([old, new], headers, b"{}", now=now).key_index == 1
    headers["webhook-signature"] = f"v1,bogus {sign(old, 'm', now, b'{}')}"
    assert verify([new, old], headers, b"{}", now=now).key_index == 1
    # The signer is reported wherever the matching signature sits in the header.
    headers["webhook-signature"] = f"{sign(old, 'm', now, b'{}')} v1,bogus"
    assert verify([old, new], headers, b"{}", now=now).key_index == 0


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.pop("webhook-signature"), "missing"),
        (lambda h: h.pop("webhook-id"), "missing"),
        (lambda h: h.update({"webhook-timestamp": "12ab"}), "malformed"),
        (lambda h: h.update({"webhook-id": "a b"}), "malformed"),
        (lambda h: h.update({"webhook-signature": "v2,abc"}), "no v1"),
        (lambda h: h.update({"webhook-signature": "v1," + "A" * 44}), "mismatch"),
        (lambda h: h.update({"webhook-signature": "v1,x " * 2000}), "too long"),
    ],
)
def test_malformed_or_wrong_headers_are_rejected(mutate: object, reason: str) -> None:
    key = decode_secret(new_secret())
    now = int(time.time())
    headers = signed_headers(key, "m1", now, b"{}")
    mutate(headers)  # type: ignore[operator]
    with pytest.raises(SignatureRejected, match=reason):
        verify([key], headers, b"{}", now=now)


@pytest.mark.parametrize("skew", [-301, 301, -100_000])
def test_timestamps_outside_five_minutes_are_rejected(skew: int) -> None:
    key = decode_secret(new_secret())
    now = int(time.time())
    headers = signed_headers(key, "m1", now + skew, b"{}")
    with pytest.raises(SignatureRejected, match="tolerance"):
        verify([key], headers, b"{}", now=now)


def test_the_wrong_secret_is_rejected() -> None:
    now = int(time.time())
    headers = signed_headers(decode_secret(new_secret()), "m1", now, b"{}")
    with pytest.raises(SignatureRejected, match="mismatch"):
        verify([decode_secret(new_secret())], headers, b"{}", now=now)


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_" + base64.b64encode(b"x" * 31).decode(),
        "whsec_" + base64.b64encode(b"x" * 24).decode(),
        base64.b64encode(b"x" * 32).decode(),
        "whsec_not base64!",
        "whsec_",
    ],
)
def test_short_or_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        decode_secret(secret)


@given(
    msg_id=st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True),
    body=st.binary(max_size=512),
    stamp=st.integers(min_value=0, max_value=10**11),
)
def test_sign_then_verify_roundtrips(msg_id: str, body: bytes, stamp: int) -> None:
    key = b"k" * 32
    headers = signed_headers(key, msg_id, stamp, body)
    assert verify([key], headers, body, now=stamp).webhook_timestamp == stamp


@given(header=st.text(max_size=300))
def test_arbitrary_signature_headers_never_crash(header: str) -> None:
    key = b"k" * 32
    headers = {"webhook-id": "m", "webhook-timestamp": "100", "webhook-signature": header}
    with pytest.raises(SignatureRejected):
        verify([key], headers, b"{}", now=100)


KEY = b"k" * 32


@pytest.mark.parametrize(
    "stamp", ["0100", "00", "+100", " 100", "100 ", "1_00", "\uff11\uff10\uff10"]
)
def test_a_timestamp_not_in_canonical_decimal_is_refused(stamp: str) -> None:
    """The signed content must be the header as received: "0100" once verified against
    a signature over "100" (found by the mutation property below)."""
    headers = signed_headers(KEY, "m1", 100, b"{}")
    headers["webhook-timestamp"] = stamp
    with pytest.raises(SignatureRejected, match="malformed webhook-timestamp"):
        verify([KEY], headers, b"{}", now=100)


# --- properties (issue 7, part 4): mutations, arbitrary headers, the tolerance window -----

ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
header_names = st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"])


def _mutated(data: bytes, position: int, insert: bytes, delete: bool) -> bytes:
    at = position % (len(data) + 1)
    if delete:
        return data[:at] + data[at + 1 :]
    return data[:at] + insert + data[at:]


@given(
    msg_id=ids,
    body=st.binary(max_size=256),
    now=st.integers(min_value=10**6, max_value=10**11),
    field=st.sampled_from(["webhook-id", "webhook-timestamp", "body", "mac"]),
    position=st.integers(min_value=0, max_value=300),
    insert=st.text(min_size=1, max_size=3).map(str.encode),
    delete=st.booleans(),
)
def test_any_mutation_of_id_timestamp_body_or_mac_is_refused(
    msg_id: str, body: bytes, now: int, field: str, position: int, insert: bytes, delete: bool
) -> None:
    headers = signed_headers(KEY, msg_id, now, body)
    mac = headers["webhook-signature"].removeprefix("v1,")
    parts = {"webhook-id": msg_id, "webhook-timestamp": str(now), "mac": mac}
    if field == "body":
        new = _mutated(body, position, insert, delete)
        assume(new != body)
        body = new
    else:
        new_text = _mutated(parts[field].encode(), position, insert, delete).decode()
        assume(new_text != parts[field])
        if field == "mac":
            headers["webhook-signature"] = "v1," + new_text
        else:
            headers[field] = new_text
    with pytest.raises(SignatureRejected):
        verify([KEY], headers, body, now=now)


@given(
    headers=st.dictionaries(
        header_names | st.text(max_size=20),
        st.text(max_size=200) | st.from_regex(r"v1,[A-Za-z0-9+/=]{40,48}( v1,[ -~]{0,50})?"),
        max_size=5,
    ),
    body=st.binary(max_size=64),
    now=st.integers(min_value=0, max_value=10**13),
    tolerance=st.integers(min_value=0, max_value=10**6),
)
def test_arbitrary_headers_are_refused_with_the_documented_error_only(
    headers: dict[str, str], body: bytes, now: int, tolerance: int
) -> None:
    with pytest.raises(SignatureRejected):
        verify([KEY], headers, body, now=now, tolerance=tolerance)


@given(
    stamp=st.integers(min_value=0, max_value=10**12 - 1),
    skew=st.integers(min_value=-(10**7), max_value=10**7),
    tolerance=st.integers(min_value=0, max_value=10**6),
)
def test_a_timestamp_is_accepted_exactly_inside_the_tolerance_window(
    stamp: int, skew: int, tolerance: int
) -> None:
    headers = signed_headers(KEY, "m1", stamp, b"{}")
    now = stamp + skew
    if abs(skew) <= tolerance:
        assert (
            verify([KEY], headers, b"{}", now=now, tolerance=tolerance).webhook_timestamp == stamp
        )
    else:
        with pytest.raises(SignatureRejected, match="tolerance"):
            verify([KEY], headers, b"{}", now=now, tolerance=tolerance)
