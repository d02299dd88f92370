"""Fakes for the resilience tests: scripted attempts, attempts that hang until released, clocks that
record or oversleep, error builders, and an executor factory with test-friendly policies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from aggregator.config.models import BreakerPolicy, RetryPolicy
from aggregator.errors import (
    RateLimited,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.resilience.breaker import CircuitBreaker, Outcome, Permit
from aggregator.resilience.executor import Executor
from aggregator.testing import FakeClock

# Waits that are easy to read in assertions: 1s, 2s, 4s, ... capped at 10s, no jitter, no deadline,
# no budget; tests that exercise one of those turn it on explicitly.
PLAIN_RETRY = RetryPolicy(
    max_attempts=1, initial_wait=1.0, max_wait=10.0, jitter="none", deadline=None, budget=None
)
PLAIN_BREAKER = BreakerPolicy(threshold=5, failure_rate=0.5, window=60.0, reset_after=30.0)


def http_error(status: int, *, retry_after: float | None = None) -> UpstreamHTTPError:
    """The error the REST layer raises for ``status`` (RateLimited for 429)."""
    cls = RateLimited if status == 429 else UpstreamHTTPError
    return cls(f"HTTP {status}", status=status, retry_after=retry_after)


def unavailable(*, sent: bool = False) -> UpstreamUnavailable:
    return UpstreamUnavailable("connection refused" if not sent else "connection reset", sent=sent)


def upstream_timeout() -> UpstreamTimeout:
    return UpstreamTimeout("read timed out")


class Scripted:
    """An attempt that plays a script: each call returns the next value, raises it if it is an
    exception, or delegates to it if it is itself an attempt (e.g. ``Taking``). Calling it more often
    than scripted fails the test: it proves nothing more was sent."""

    def __init__(self, *steps: object) -> None:
        self._steps = steps
        self.calls = 0

    async def __call__(self) -> object:
        if self.calls >= len(self._steps):
            raise AssertionError(f"attempt made {self.calls + 1} times, only {len(self._steps)} scripted")
        step = self._steps[self.calls]
        self.calls += 1
        await asyncio.sleep(0)
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return await step()
        return step


def always(step: object) -> Callable[[], Awaitable[object]]:
    """An attempt that gives the same answer (value or exception) every time."""

    async def attempt() -> object:
        await asyncio.sleep(0)
        if isinstance(step, BaseException):
            raise step
        return step

    return attempt


class Hanging:
    """An attempt that waits until ``finish`` is called; ``started`` is set once it is running."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self._done = asyncio.Event()
        self._answer: object = "ok"

    async def __call__(self) -> object:
        self.calls += 1
        self.started.set()
        await self._done.wait()
        if isinstance(self._answer, BaseException):
            raise self._answer
        return self._answer

    def finish(self, answer: object = "ok") -> None:
        self._answer = answer
        self._done.set()


class Taking:
    """An attempt that takes ``seconds`` of fake time and then answers."""

    def __init__(self, clock: FakeClock, seconds: float, answer: object = "ok") -> None:
        self._clock = clock
        self._seconds = seconds
        self._answer = answer

    async def __call__(self) -> object:
        self._clock.advance(self._seconds)
        await asyncio.sleep(0)  # where a timeout that has just fired cancels the attempt
        if isinstance(self._answer, BaseException):
            raise self._answer
        return self._answer


class RecordingClock(FakeClock):
    """A FakeClock that also records every attempt timeout it is asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts: list[float | None] = []

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        self.timeouts.append(seconds)
        return super().timeout(seconds)


class OversleepingClock(FakeClock):
    """A FakeClock whose sleeps last ``extra`` seconds longer than asked, like a busy event loop."""

    def __init__(self, extra: float) -> None:
        super().__init__()
        self._extra = extra

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self._extra)


class CountingBreaker(CircuitBreaker):
    """A breaker that counts the permits it issued and the reports it got back: equal counts prove
    that no permit leaked, whatever state the breaker ended in."""

    __slots__ = ("issued", "reported")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.issued = 0
        self.reported = 0

    def acquire(self) -> Permit:
        permit = super().acquire()
        self.issued += 1
        return permit

    def _on_result(self, generation: int, outcome: Outcome) -> None:
        self.reported += 1
        super()._on_result(generation, outcome)


def make_executor(
    clock: FakeClock,
    *,
    retry: RetryPolicy = PLAIN_RETRY,
    breaker: BreakerPolicy = PLAIN_BREAKER,
    max_concurrency: int = 100,
    max_queue: int = 0,
    queue_timeout: float = 1.0,
) -> Executor:
    return Executor(
        "users",
        retry=retry,
        breaker=breaker,
        max_concurrency=max_concurrency,
        max_queue=max_queue,
        queue_timeout=queue_timeout,
        clock=clock,
    )


def record(breaker: CircuitBreaker, *outcomes: Outcome) -> None:
    """Admit one attempt per outcome and report it."""
    for outcome in outcomes:
        breaker.acquire().record(outcome)


def trip(breaker: CircuitBreaker, policy: BreakerPolicy = PLAIN_BREAKER) -> None:
    """Open a closed breaker with ``threshold`` failures in a row."""
    failures: list[Outcome] = ["failure"] * policy.threshold
    record(breaker, *failures)
    assert breaker.state == "open"
