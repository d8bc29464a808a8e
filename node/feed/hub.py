"""Wakes the event readers of this process: after a commit that appended to the feed, when
tokens change (so open streams re-check theirs at once), and on shutdown.

Readers take a waiter *before* they read, then wait on it: a notification that lands between
their read and their wait is not lost. Other processes' writes are seen by polling.
"""

from __future__ import annotations

import asyncio

__all__ = ["FeedHub"]


class FeedHub:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.tokens_version = 0
        self.closed = False

    def waiter(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def tokens_changed(self) -> None:
        self.tokens_version += 1
        self.notify()

    def close(self) -> None:
        self.closed = True
        self.notify()

    @staticmethod
    async def wait(waiter: asyncio.Event, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(max(0.0, timeout_s)):
                await waiter.wait()
        except TimeoutError:
            pass
