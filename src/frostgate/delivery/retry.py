"""When to try a failed delivery again: exponential backoff, full jitter, Retry-After.

Backoff doubles from ``base`` per attempt up to ``cap``, then a random factor in
[0.5, 1] spreads retries of many messages apart (so a receiver that comes back is not
hit by a synchronised wave). A ``Retry-After`` from the receiver (RFC 9110 §10.2.3:
delay-seconds or an HTTP-date) is honoured as a lower bound, itself capped so a hostile
receiver cannot park a message beyond reason.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["MAX_RETRY_AFTER", "backoff", "retry_after"]

MAX_RETRY_AFTER = timedelta(hours=1)


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random) -> timedelta:
    """The delay after the ``attempt``-th failure (1-based)."""
    exponential = min(cap, base * (2 ** min(attempt - 1, 30)))
    return timedelta(seconds=exponential * rng.uniform(0.5, 1.0))


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """The delay a ``Retry-After`` header asks for, capped; None when absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        delay = timedelta(seconds=int(text[:7]))
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        delay = when - now
    return max(timedelta(0), min(delay, MAX_RETRY_AFTER))
