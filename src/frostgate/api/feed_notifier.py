"""Wakes live-feed streams when this process commits new decisions.

Streams also poll on a short interval, so decisions written by other processes reach
them too; the notifier only removes the poll delay for local writes.
"""

from __future__ import annotations

import asyncio

__all__ = ["FeedNotifier"]


class FeedNotifier:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return
