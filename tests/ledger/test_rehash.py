"""The batch re-hashing path gives exactly what the one-entry-at-a-time path gives.

Values are generated as JSON text and parsed with orjson (the module's precondition),
then encoded both ways; the reference is :func:`frostgate.ledger.canonical.encode`,
itself checked against ``rfc8785`` in ``test_ledger_canonical.py``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frostgate.ledger import GENESIS, MemoryTree, chain_hashes, encode, entry_leaf_hash
from frostgate.ledger.rehash import (
    LevelTree,
    RehashError,
    chain_links,
    encode_parsed,
    first_mismatch,
    leaf_hashes,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["1.5,", "v1.2]", "one-time", "x e+1", "12:00:00.5Z", "é", "\U0001f600"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from(["a", "\ue000", "\U0001f600", "é"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=6), json_values, max_size=6)


def parsed(value: Any) -> Any:
    """The value as a verifier receives it: JSON text parsed by orjson."""
    return orjson.loads(orjson.dumps(value))


def reference(value: Any) -> bytes | None:
    try:
        return encode(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(objects, min_size=1, max_size=8))
def test_encode_parsed_is_encode(batch: list[dict[str, Any]]) -> None:
    values = [parsed(v) for v in batch]
    expected = [reference(v) for v in values]
    if None in expected:
        with pytest.raises(RehashError) as err:
            encode_parsed(values)
        assert err.value.offset == expected.index(None)
    else:
        assert encode_parsed(values) == expected


@pytest.mark.parametrize(
    ("value", "jcs"),
    [
        ({"a": 1.0}, b'{"a":1}'),  # orjson writes 1.0
        ({"a": 1e16}, b'{"a":10000000000000000}'),  # orjson writes 1e+16
        ({"a": [0.5, 2]}, b'{"a":[0.5,2]}'),
        ({"b": 1, "\U0001f600": 2, "\ue000": 3}, None),  # UTF-16 order, not UTF-8
        ({"a": "one-time", "b": "v1.2,x"}, b'{"a":"one-time","b":"v1.2,x"}'),  # false alarms
    ],
)
def test_the_cases_orjson_gets_wrong_go_the_exact_way(value: Any, jcs: bytes | None) -> None:
    values = [parsed({"pad": "x"}), parsed(value)]
    got = encode_parsed(values)
    assert got == [encode(v) for v in values] == [rfc8785.dumps(v) for v in values]
    if jcs is not None:
        assert got[1] == jcs


def test_integers_beyond_the_safe_range_are_refused_with_their_offset() -> None:
    values = [parsed({"a": 1}), parsed({"a": 2**53}), parsed({"a": 3})]
    with pytest.raises(RehashError) as err:
        encode_parsed(values)
    assert err.value.offset == 1


def test_leaves_and_chain_match_the_one_at_a_time_functions() -> None:
    entries = [parsed({"index": i, "score": i % 7, "ip": f"203.0.113.{i}"}) for i in range(50)]
    leaves = leaf_hashes(encode_parsed(entries))
    assert leaves == [entry_leaf_hash(e) for e in entries]
    assert chain_links(GENESIS, leaves) == chain_hashes(GENESIS, leaves)
    middle = chain_links(GENESIS, leaves[:20])[-1]
    assert chain_links(middle, leaves[20:]) == chain_hashes(GENESIS, leaves)[20:]
    with pytest.raises(ValueError, match="32 bytes"):
        chain_links(b"short", leaves)


def test_first_mismatch() -> None:
    ours = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    theirs: list[object] = [h.hex() for h in ours]
    assert first_mismatch(ours, theirs) is None
    assert first_mismatch(ours, [*theirs[:3], "00" * 32, theirs[4]]) == 3
    assert first_mismatch(ours, [*theirs[:2], 7, *theirs[3:]]) == 2
    assert first_mismatch(ours, [t.upper() for t in theirs]) == 0  # type: ignore[attr-defined]
    assert first_mismatch(ours, theirs[:4]) == 4
    shifted = [theirs[0][:63], theirs[0][63:] + theirs[1], *theirs[2:]]  # type: ignore[index, operator]
    assert "".join(shifted) == "".join(theirs)  # type: ignore[arg-type]
    assert first_mismatch(ours, shifted) == 0
    assert first_mismatch(ours[:4], theirs) == 4


@pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 300])
def test_level_tree_is_memory_tree(size: int) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    fast, slow = LevelTree(leaves), MemoryTree(leaves)
    assert fast.size == size
    for n in range(size + 1):
        assert fast.root(n) == slow.root(n)
    for level in range(10):
        for index in range(size + 1):
            try:
                expected: bytes | None = slow.node(level, index)
            except LookupError:
                expected = None
            if expected is None:
                with pytest.raises(LookupError):
                    fast.node(level, index)
            else:
                assert fast.node(level, index) == expected
    with pytest.raises(ValueError, match="beyond"):
        fast.root(size + 1)
