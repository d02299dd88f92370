"""In-flight deduplication ("singleflight"): identical calls made while one is running share it.

The first caller of a key (the leader) runs the call; callers of the same key arriving before it ends
(joiners) wait for its outcome instead of calling again: the same result object, or a copy of the
same error. Nothing is cached: the key is forgotten as soon as the call ends, so a later caller
makes a fresh call.

Cancellation: a joiner that is cancelled leaves alone (the call goes on for the others). When the
leader is cancelled its call stops, as it would without joiners, and the joiners start over: the first
of them to get there becomes the new leader. Only the caller decides what may share a key; see
``IntegrationModule`` for which calls do (idempotent queries, keyed by what reaches the upstream).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Abandoned(Exception):
    """The leader was cancelled: its joiners must start over."""


class _Flight(Generic[T]):
    __slots__ = ("outcome",)

    def __init__(self) -> None:
        # Made when the first joiner arrives: most calls have none and pay nothing for it.
        self.outcome: asyncio.Future[tuple[bool, T | BaseException]] | None = None


class SingleFlight(Generic[T]):
    """The calls in flight by key; one per integration (a single event loop, so no lock)."""

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[T]] = {}

    @property
    def in_flight(self) -> int:
        """Keys with a call running now."""
        return len(self._flights)

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``'s outcome, shared with every other caller of ``key`` while it runs."""
        while True:
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, call)
            try:
                return await self._join(flight)
            except _Abandoned:
                continue

    async def _lead(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        flight: _Flight[T] = _Flight()
        self._flights[key] = flight
        try:
            result = await call()
        except asyncio.CancelledError:
            self._end(key, flight, (False, _Abandoned()))
            raise
        except BaseException as error:
            self._end(key, flight, (False, error))
            raise
        self._end(key, flight, (True, result))
        return result

    def _end(self, key: Hashable, flight: _Flight[T], outcome: tuple[bool, T | BaseException]) -> None:
        del self._flights[key]
        if flight.outcome is not None and not flight.outcome.done():
            flight.outcome.set_result(outcome)

    @staticmethod
    async def _join(flight: _Flight[T]) -> T:
        if flight.outcome is None:
            flight.outcome = asyncio.get_running_loop().create_future()
        # Shielded: a joiner's cancellation must not cancel the outcome the others wait for.
        ok, value = await asyncio.shield(flight.outcome)
        if ok:
            return cast("T", value)
        assert isinstance(value, BaseException)
        if isinstance(value, _Abandoned):
            raise _Abandoned
        raise _copy(value)


def _copy(error: BaseException) -> BaseException:
    """A fresh instance with the same attributes: an exception raised in several tasks would collect
    the traceback of every raise. Not ``copy.copy``: our errors' constructors take keyword-only
    arguments it cannot pass."""
    clone = type(error).__new__(type(error))
    clone.args = error.args
    clone.__dict__.update(error.__dict__)
    return clone
