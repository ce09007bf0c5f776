"""atheris (coverage-guided) target: the API key parser, ``frostgate.security.keys``.

``parse_key`` is documented to return the key's parts or None for anything malformed;
it must never raise. This target lets any exception escape, which libFuzzer reports as a
crash with the input that caused it, and checks that an accepted key is exactly its
parts (no normalisation: what is hashed is what was presented). The peppers parser
(``Peppers.parse``) rides along: its documented refusal is ``ValueError``.

Run: ``python tests/fuzz/atheris_key_parser.py -max_total_time=60`` (``make fuzz``).
"""

from __future__ import annotations

import contextlib
import sys

import atheris

from frostgate.security.keys import KEY_PREFIX, Peppers, hash_secret, parse_key

# Instrument the functions under test only: instrumenting every module they import
# (sqlalchemy, pydantic, ...) costs half a minute at start and adds nothing to the search.
parse_key = atheris.instrument_func(parse_key)
hash_secret = atheris.instrument_func(hash_secret)
atheris.instrument_func(Peppers.parse.__func__)  # a classmethod: instrumented in place


def check_one(data: bytes) -> None:
    """One input; raises only when a property does not hold (a crash to libFuzzer)."""
    provider = atheris.FuzzedDataProvider(data)
    text = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 128))
    parsed = parse_key(text)
    if parsed is not None:
        if text != f"{KEY_PREFIX}{parsed.key_id}_{parsed.secret}":
            raise AssertionError(f"parse_key accepted a key that is not its parts: {text!r}")
        hash_secret(b"\x00" * 32, parsed.secret)  # an accepted secret must be hashable
    spec = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
    with contextlib.suppress(ValueError):  # the documented refusal
        Peppers.parse(spec)


def main() -> None:
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
