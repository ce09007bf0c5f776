"""Regular expressions for rule conditions: RE2, so matching is linear in the input.

Rule files come from operators and from the Sigma community; event payloads come from
whoever can reach a sensor. A backtracking engine (Python's ``re``) lets a pattern such as
``(a+)+$`` take exponential time on a crafted string, so one hostile event could stall the
decision path. We do not try to recognise "dangerous" patterns (any such list is
incomplete); we use Google's RE2 (the ``google-re2`` package), whose automaton runs in
time linear in the input whatever the pattern. What RE2 cannot do in linear time it
refuses to compile: backreferences (``\\1``), lookahead and lookbehind, possessive and
atomic groups. Those patterns are refused at load with RE2's reason.

Memory is bounded too: a pattern whose compiled program would exceed ``MAX_PROGRAM_BYTES``
(e.g. ``(x{1000}){1000}``) is refused rather than allowed to grow the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeAlias

import re2

__all__ = ["MAX_PATTERN_CHARS", "MAX_PROGRAM_BYTES", "Regex", "compile_linear", "escape"]

#: Longest pattern accepted (a pattern is rule data, not a payload).
MAX_PATTERN_CHARS: Final = 4096
#: RE2's memory budget for one compiled pattern.
MAX_PROGRAM_BYTES: Final = 1 << 20

if TYPE_CHECKING:
    Regex: TypeAlias = re2._Regexp[str]
else:  # the runtime class is not generic; only the stubs are
    Regex = re2._Regexp


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    options.log_errors = False  # the reason goes into our message, not onto stderr
    return options


_OPTIONS: Final = _options()


def compile_linear(pattern: str) -> Regex:
    """Compile ``pattern`` with RE2 or raise ValueError saying why it is refused."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"pattern longer than {MAX_PATTERN_CHARS} characters")
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(
            f"regex {pattern!r} refused: {reason} (RE2 syntax: no backreferences or "
            "lookaround, so matching stays linear-time)"
        ) from None


def escape(text: str) -> str:
    """``text`` as an RE2 pattern that matches it literally."""
    return re2.escape(text)
