"""Test helpers shipped with the package, like ``structlog.testing``: a clock the test drives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager


class FakeClock:
    """A Clock that only moves when told to.

    ``sleep`` advances time by the slept amount at once (and records it), so retry loops run
    instantly; ``advance`` moves time explicitly, e.g. past a breaker's reset. ``timeout`` blocks are
    cancelled, raising TimeoutError, when fake time passes their deadline. ``random`` replays the
    given values in a cycle (default 0.5).
    """

    def __init__(self, start: float = 1000.0, randoms: Iterable[float] = (0.5,)) -> None:
        self._now = start
        self._wall_offset = 1_700_000_000.0 - start
        self._randoms = list(randoms) or [0.5]
        self._next_random = 0
        self.sleeps: list[float] = []
        self._deadlines: list[tuple[float, asyncio.Timeout]] = []

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

    def random(self) -> float:
        value = self._randoms[self._next_random % len(self._randoms)]
        self._next_random += 1
        return value

    def advance(self, seconds: float) -> None:
        """Move time forward and fire every timeout whose deadline has now passed."""
        self._now += max(0.0, seconds)
        due = [t for deadline, t in self._deadlines if deadline <= self._now]
        self._deadlines = [(d, t) for d, t in self._deadlines if d > self._now]
        loop_now = asyncio.get_running_loop().time() if due else 0.0
        for t in due:
            if t.expired() is False:
                t.reschedule(loop_now)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return self._timeout(seconds)

    @asynccontextmanager
    async def _timeout(self, seconds: float | None) -> AsyncIterator[object]:
        async with asyncio.timeout(None) as cm:
            entry = (self._now + seconds, cm) if seconds is not None else None
            if entry is not None:
                self._deadlines.append(entry)
            try:
                yield cm
            finally:
                if entry is not None and entry in self._deadlines:
                    self._deadlines.remove(entry)
