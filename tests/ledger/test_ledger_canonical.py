"""RFC 8785 (JCS) encoding: the orjson fast path is byte-identical to the reference.

The reference is the ``rfc8785`` package (trailofbits/rfc8785.py). The sample inputs
and outputs of RFC 8785 §3.2.2 and §3.2.3 are quoted from the RFC
(https://www.rfc-editor.org/rfc/rfc8785).
"""

from __future__ import annotations

import datetime
import enum
import json
import uuid
from types import MappingProxyType
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from frostgate.ledger import MAX_SAFE_INTEGER, CanonicalizationError, encode
from frostgate.ledger.canonical import _fast_path_ok

# ------------------------------------------------------------------ JCS string rules


def _jcs_string(s: str) -> bytes:
    """RFC 8785 §3.2.2.2 written out independently of both encoders."""
    short = {
        '"': '\\"',
        "\\": "\\\\",
        "\b": "\\b",
        "\t": "\\t",
        "\n": "\\n",
        "\f": "\\f",
        "\r": "\\r",
    }
    out = []
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return ('"' + "".join(out) + '"').encode("utf-8")


INTERESTING = [chr(c) for c in range(0x80)] + [
    "\x80",
    "\x9f",
    "\xa0",
    "\xe9",
    "\u07ff",
    "\u0800",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ud7ff",
    "\ue000",
    "\uffff",
    "\U00010000",
    "\U0001f600",
    "\U0010ffff",
]


@pytest.mark.parametrize("ch", INTERESTING, ids=lambda c: f"U+{ord(c):04X}")
def test_every_ascii_and_edge_code_point_escapes_as_jcs(ch: str) -> None:
    for value in (ch, f"a{ch}b", {"k": ch}, [ch, ch]):
        assert _fast_path_ok(value)
        assert encode(value) == rfc8785.dumps(value)
    assert encode(ch) == _jcs_string(ch)


def test_short_escapes_and_lowercase_hex() -> None:
    assert encode("\b\t\n\f\r") == b'"\\b\\t\\n\\f\\r"'
    assert encode("\x00\x01\x0b\x0e\x1f") == b'"\\u0000\\u0001\\u000b\\u000e\\u001f"'
    assert encode('"\\/') == b'"\\"\\\\/"'  # solidus is not escaped
    assert encode("\x7f\u2028\u2029\u00e9") == '"\x7f\u2028\u2029\u00e9"'.encode()


# ------------------------------------------------------------------- RFC 8785 samples


def test_rfc8785_section_3_2_2_sample() -> None:
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        r'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        r'"string":"€$\u000f\nA'
        "'"
        r'B\"\\\\\"/"}'
    )
    assert encode(json.loads(source)) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_utf16_member_order() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    assert not _fast_path_ok(value)  # non-ASCII names take the reference path
    decoded = json.loads(encode(value))
    assert list(decoded.values()) == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


def test_utf16_order_differs_from_code_point_order_and_is_respected() -> None:
    # U+E000 < U+1F600 as code points, but 0xD83D (high surrogate) < 0xE000 in UTF-16.
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert encode(value) == '{"a":3,"\U0001f600":2,"\ue000":1}'.encode()
    # orjson alone would get this wrong, which is why such names leave the fast path.
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) != encode(value)


# -------------------------------------------------------------------- number domain


def test_integer_domain_boundaries() -> None:
    for n in (0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER):
        assert _fast_path_ok({"n": n})
        assert encode({"n": n}) == f'{{"n":{n}}}'.encode()
    for n in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**63, -(2**64)):
        with pytest.raises(CanonicalizationError):
            encode({"n": n})
        with pytest.raises(CanonicalizationError):
            encode([n])


def test_floats_use_the_reference_number_format() -> None:
    value = {"score": 0.87, "one": 1.0, "big": 1e21, "small": 1e-7, "neg0": -0.0}
    assert not _fast_path_ok(value)
    assert encode(value) == b'{"big":1e+21,"neg0":0,"one":1,"score":0.87,"small":1e-7}'
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(CanonicalizationError):
            encode({"x": bad})


# ----------------------------------------------------------- types outside the domain


class _Color(enum.StrEnum):
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


def test_subclasses_and_tuples_match_the_reference() -> None:
    for value in ({"c": _Color.RED}, {"l": _Level.HIGH}, {"t": (1, "a")}, (1, 2), [True, False]):
        assert encode(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"when": datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)},
        {"id": uuid.UUID(int=1)},
        {"raw": b"bytes"},
        {"set": {1, 2}},
        {1: "non-str key"},
        {"lone": "\ud800"},
        {"\udfff": "lone surrogate key"},
        object(),
    ],
    ids=["datetime", "uuid", "bytes", "set", "int-key", "surrogate", "surrogate-key", "object"],
)
def test_values_jcs_cannot_represent_are_rejected(value: Any) -> None:
    # orjson would happily serialize several of these; the ledger must not.
    with pytest.raises(CanonicalizationError):
        encode(value)


def test_str_subclass_member_name_falls_back() -> None:
    class Name(str):
        pass

    value = {Name("b"): 1, "a": 2}
    assert encode(value) == b'{"a":2,"b":1}'


def test_deep_nesting_and_cycles() -> None:
    deep: Any = "x"
    for _ in range(300):  # deeper than orjson's limit of 254: reference path
        deep = [deep]
    assert encode(deep) == rfc8785.dumps(deep)
    very_deep: Any = "x"
    for _ in range(100_000):
        very_deep = {"a": very_deep}
    with pytest.raises(CanonicalizationError):
        encode(very_deep)
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(CanonicalizationError):
        encode(cyclic)


def test_mapping_proxy_is_not_silently_accepted() -> None:
    with pytest.raises(CanonicalizationError):
        encode(MappingProxyType({"a": 1}))


# ------------------------------------------------------------------------ properties

ascii_names = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=12)
any_text = st.text(
    alphabet=st.sampled_from(INTERESTING) | st.characters(exclude_categories=["Cs"]), max_size=24
)
safe_ints = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
fast_domain = st.recursive(
    st.none() | st.booleans() | safe_ints | any_text,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(ascii_names, children, max_size=8)
    ),
    max_leaves=40,
)
any_json = st.recursive(
    st.none()
    | st.booleans()
    | safe_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(any_text, children, max_size=8)
    ),
    max_leaves=40,
)


@settings(max_examples=2000, deadline=None)
@given(fast_domain)
def test_fast_path_is_byte_identical_to_rfc8785(value: Any) -> None:
    assert _fast_path_ok(value)
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == rfc8785.dumps(value)
    assert encode(value) == rfc8785.dumps(value)
    assert json.loads(encode(value)) == value


@settings(max_examples=600, deadline=None)
@given(any_json)
def test_encode_equals_rfc8785_on_all_json(value: Any) -> None:
    assert encode(value) == rfc8785.dumps(value)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(ascii_names, fast_domain, min_size=1, max_size=8), st.integers(min_value=2**53)
)
def test_an_unsafe_integer_anywhere_is_rejected(value: dict[str, Any], big: int) -> None:
    value = dict(value)
    value["zz_big"] = [big]
    with pytest.raises(CanonicalizationError):
        encode(value)
