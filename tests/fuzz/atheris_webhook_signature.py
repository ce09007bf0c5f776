"""atheris (coverage-guided) target: the Standard Webhooks signature parser and verifier,
``frostgate.security.webhook_signature``.

``verify`` is documented to return the signed headers or raise ``SignatureRejected``;
``decode_secret`` to return key bytes or raise ``ValueError``. Any other exception escapes
to libFuzzer as a crash. Half the inputs carry a correct signature over the fuzzed id,
timestamp and body, so the fuzzer reaches the comparison as well as the header parsing;
those must verify exactly when the id and timestamp are well-formed and within the
tolerance, and a verified result must name the id and timestamp that were sent.

Run: ``python tests/fuzz/atheris_webhook_signature.py -max_total_time=60`` (``make fuzz``).
"""

from __future__ import annotations

import contextlib
import re
import sys

import atheris

from frostgate.security.webhook_signature import (
    SignatureRejected,
    decode_secret,
    sign,
    verify,
)

# Instrument the functions under test only: instrumenting every module they import
# (sqlalchemy, pydantic, ...) costs half a minute at start and adds nothing to the search.
verify = atheris.instrument_func(verify)
decode_secret = atheris.instrument_func(decode_secret)
sign = atheris.instrument_func(sign)

KEY = b"\x07" * 32
TOLERANCE = 300
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def check_one(data: bytes) -> None:
    """One input; raises only when a property does not hold (a crash to libFuzzer)."""
    provider = atheris.FuzzedDataProvider(data)
    signed = provider.ConsumeBool()
    msg_id = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 140))
    stamp_text = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 16))
    now = provider.ConsumeIntInRange(0, 10**13)
    signature = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 200))
    secret = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 80))
    body = provider.ConsumeBytes(provider.remaining_bytes())
    if signed:
        stamp = now + provider.ConsumeIntInRange(-2 * TOLERANCE, 2 * TOLERANCE)
        stamp_text = str(max(stamp, 0))
        signature = sign(KEY, msg_id, int(stamp_text), body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp_text,
        "webhook-signature": signature,
    }
    try:
        verified = verify([KEY], headers, body, now=now, tolerance=TOLERANCE)
    except SignatureRejected:
        verified = None
    if verified is not None and (
        verified.webhook_id != msg_id or str(verified.webhook_timestamp) != stamp_text
    ):
        raise AssertionError(f"verified headers differ from those sent: {headers!r}")
    if signed:
        expected = bool(_WELL_FORMED_ID.fullmatch(msg_id)) and (
            abs(now - int(stamp_text)) <= TOLERANCE
        )
        if (verified is not None) != expected:
            raise AssertionError(f"a correctly signed message was judged wrongly: {headers!r}")
    with contextlib.suppress(ValueError):  # the documented refusal
        decode_secret(secret)


def main() -> None:
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
