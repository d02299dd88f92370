"""The per-integration bulkhead: a cap on calls in flight that fails fast instead of queueing, so a
slow upstream cannot soak up every task and socket the process has."""

from __future__ import annotations

__all__ = ["Bulkhead"]


class Bulkhead:
    """A non-blocking counting semaphore; single event loop, so a plain int is enough."""

    __slots__ = ("_in_flight", "_max")

    def __init__(self, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self._max = max_concurrency
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def max_concurrency(self) -> int:
        return self._max

    def try_acquire(self) -> bool:
        """Take a slot if one is free; never waits."""
        if self._in_flight >= self._max:
            return False
        self._in_flight += 1
        return True

    def release(self) -> None:
        if self._in_flight == 0:
            raise RuntimeError("bulkhead released more often than acquired")
        self._in_flight -= 1
