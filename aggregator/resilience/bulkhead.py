"""The per-integration bulkhead: at most ``max_concurrency`` calls in flight, and a bounded wait for a
slot (at most ``max_queue`` calls, each for at most ``queue_timeout``) before BULKHEAD_FULL.

Why a queue and not only a cap: on a busy gateway a call to a fast upstream stays "in flight" while
its answer waits for the event loop, so the in-flight count measures the gateway's own CPU as much as
the upstream. A five-field fan-out from 256 clients keeps up to about 1,200 such calls going at once;
with a cap of 100 that failed fast, most of them were refused (bench/fanout_load.py). Waiting a little
for a slot costs a future each; the cap still bounds sockets, and the line's length and wait still
bound what a slow upstream can hold: beyond them calls fail fast with BULKHEAD_FULL.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress

from aggregator.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = ["Bulkhead"]


class Bulkhead:
    """A counting semaphore with a bounded FIFO of waiters; single event loop, so plain ints suffice.

    A released slot is handed to the oldest waiter directly (``in_flight`` does not drop), so a call
    arriving later can never overtake one that waits.
    """

    __slots__ = ("_clock", "_in_flight", "_max", "_max_queue", "_queue_timeout", "_queued_peak", "_waiters")

    def __init__(
        self,
        max_concurrency: int,
        *,
        max_queue: int = 0,
        queue_timeout: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        if max_queue < 0 or (max_queue > 0 and queue_timeout <= 0):
            raise ValueError(f"unusable queue: max_queue {max_queue}, queue_timeout {queue_timeout}")
        self._max = max_concurrency
        self._max_queue = max_queue
        self._queue_timeout = queue_timeout
        self._clock = clock
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._queued_peak = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        """Calls waiting for a slot now."""
        return len(self._waiters)

    @property
    def queued_peak(self) -> int:
        """The most calls that waited at once since start: how close the line came to ``max_queue``."""
        return self._queued_peak

    @property
    def max_concurrency(self) -> int:
        return self._max

    @property
    def max_queue(self) -> int:
        return self._max_queue

    @property
    def queue_timeout(self) -> float:
        return self._queue_timeout

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for one; never waits."""
        if self._in_flight >= self._max or self._waiters:
            return False
        self._in_flight += 1
        return True

    async def acquire(self) -> str | None:
        """Take a slot, waiting in line for at most ``queue_timeout``: None once it holds one, else why
        not (the line was full, or the wait ran out), and then the caller holds no slot."""
        if self.try_acquire():
            return None
        if len(self._waiters) >= self._max_queue:
            if self._max_queue == 0:
                return f"all {self._max} slots are taken (max_concurrency)"
            return f"all {self._max} slots are taken and {self._max_queue} calls already wait (max_queue)"
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if len(self._waiters) > self._queued_peak:
            self._queued_peak = len(self._waiters)
        try:
            async with self._clock.timeout(self._queue_timeout):
                await waiter
        except TimeoutError:
            pass
        except BaseException:
            self._leave(waiter)
            raise
        if waiter.done() and not waiter.cancelled():
            return None  # handed a slot, possibly in the same turn as the timeout fired
        self._leave(waiter)
        return f"no slot of {self._max} came free within {self._queue_timeout:g}s (queue_timeout)"

    def _leave(self, waiter: asyncio.Future[None]) -> None:
        """Step out of line; a slot already handed to this waiter goes to the next one."""
        if waiter.done() and not waiter.cancelled():
            self.release()
            return
        waiter.cancel()
        with suppress(ValueError):  # already popped by a release that found it cancelled
            self._waiters.remove(waiter)

    def release(self) -> None:
        """Give a slot back: to the oldest waiter if there is one, else to the pool."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        if self._in_flight == 0:
            raise RuntimeError("bulkhead released more often than acquired")
        self._in_flight -= 1
