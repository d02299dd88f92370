"""Time and chance, injectable: every timed decision (breaker waits, backoff, jitter, attempt
timeouts) goes through a Clock so that tests can drive it with ``aggregator.testing.FakeClock``."""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps people read (last failure, opened at)."""

    async def sleep(self, seconds: float) -> None: ...

    def random(self) -> float:
        """A number in [0, 1), for jitter."""

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        """Cancel the enclosed block after ``seconds`` and raise TimeoutError (None: never)."""


class SystemClock:
    """The real clock: monotonic time, asyncio sleeps and timeouts, a private random generator."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def random(self) -> float:
        return self._rng.random()

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(seconds)


SYSTEM_CLOCK = SystemClock()
