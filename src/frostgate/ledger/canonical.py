"""Canonical JSON encoding: RFC 8785, JSON Canonicalization Scheme (JCS).

Everything FrostGate hashes or signs is encoded with :func:`encode`, which returns
exactly the bytes of RFC 8785 (https://www.rfc-editor.org/rfc/rfc8785):

* §3.2.2.2 strings: ``"`` and ``\\`` escaped, ``\\b \\t \\n \\f \\r`` in their short
  form, every other C0 control character as lowercase ``\\u00xx``, and every other code
  point (including U+007F, U+2028, U+2029 and all non-ASCII text) as raw UTF-8;
* §3.2.2.3 numbers: the ECMAScript ``Number.prototype.toString`` form; integers are
  only representable up to ±(2**53 - 1) (I-JSON, RFC 7493 §2.2);
* §3.2.3 object members sorted by the UTF-16 code units of their names;
* no insignificant whitespace.

Two encoders produce these bytes:

* the *fast path* ``orjson.dumps(value, option=OPT_SORT_KEYS | OPT_STRICT_INTEGER)``
  (≈0.5 µs for a flat 15-key entry, ≈1.1 µs more for the domain walk). It is
  byte-identical to JCS on a restricted domain, checked by one recursive walk
  (:func:`_fast_path_ok`): values of exact type ``dict``, ``list``, ``str``,
  ``bool``, ``None`` and ``int`` with ``|i| <= 2**53 - 1`` (the range is enforced by
  ``OPT_STRICT_INTEGER``), where every object member name is an ASCII ``str``. On
  that domain orjson's string escaping is the JCS escaping (verified code point by
  code point and with a hypothesis property in ``tests/ledger/test_canonical.py``),
  its integers are plain decimal, and for ASCII names the UTF-8 byte order orjson
  sorts by equals the UTF-16 code-unit order JCS requires;
* the reference implementation ``rfc8785.dumps`` for everything else (floats,
  non-ASCII member names, subclasses such as ``str`` enums, tuples, integers out of
  range — which it rejects — and strings holding lone surrogates, which orjson
  rejects and ``rfc8785`` reports as :class:`CanonicalizationError`).

Unrepresentable input raises :class:`CanonicalizationError` (a ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import orjson
import rfc8785
from rfc8785 import CanonicalizationError

__all__ = ["MAX_SAFE_INTEGER", "CanonicalizationError", "encode"]

#: Largest integer magnitude JCS can represent exactly (2**53 - 1).
MAX_SAFE_INTEGER: Final = 2**53 - 1

_OPT: Final = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
#: Exact types whose orjson encoding is their JCS encoding (``bool`` is listed
#: separately from ``int`` because ``type(True) is bool``).
_LEAF_TYPES: Final[frozenset[type]] = frozenset({str, int, bool, type(None)})
_dumps = orjson.dumps
_JSONEncodeError = orjson.JSONEncodeError


def _fast_path_ok(value: Any, _leaf: frozenset[type] = _LEAF_TYPES) -> bool:
    """True if orjson's sorted encoding of ``value`` is its JCS encoding.

    One walk over the containers; the integer range is left to orjson's
    ``OPT_STRICT_INTEGER`` (which rejects exactly the integers beyond ±(2**53 - 1)),
    so scalars cost one set lookup each and a flat entry one Python-level call.
    Member names are checked in bulk: ``"".join(d)`` raises ``TypeError`` for a
    non-``str`` name and ``str.isascii`` is O(1) in CPython.
    """
    t = type(value)
    if t is dict:
        try:
            if not "".join(value).isascii():
                return False
        except TypeError:
            return False
        items: Iterable[Any] = value.values()
    elif t is list:
        items = value
    else:
        return t in _leaf
    for item in items:
        ti = type(item)
        if ti in _leaf:
            continue
        if (ti is dict or ti is list) and _fast_path_ok(item):
            continue
        return False
    return True


def _slow(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    except RecursionError:
        raise CanonicalizationError("value is nested too deeply to canonicalize") from None
    except UnicodeError:
        # rfc8785 reports lone surrogates in strings itself, but not in member names
        # (it sorts by ``name.encode("utf-16be")`` first).
        raise CanonicalizationError("value contains a lone surrogate") from None


def encode(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) encoding of ``value`` as UTF-8 bytes.

    Raises :class:`CanonicalizationError` for values JCS cannot represent (NaN or
    infinite floats, integers beyond ±(2**53 - 1), non-``str`` member names, lone
    surrogates, unsupported types, cyclic or absurdly deep nesting).
    """
    try:
        fast = _fast_path_ok(value)
    except RecursionError:
        fast = False
    if fast:
        try:
            return _dumps(value, option=_OPT)
        except _JSONEncodeError:
            # An integer beyond ±(2**53 - 1), a lone surrogate, a ``str`` subclass
            # used as a member name, or nesting deeper than orjson's limit: let the
            # reference implementation encode it or name the problem.
            pass
    return _slow(value)
