"""The resilient executor: one per integration, it runs every upstream call.

Layers, outer to inner: bulkhead -> deadline -> retry loop -> circuit breaker -> attempt timeout ->
the attempt. ``attempt()`` makes ONE upstream attempt (request and body read) and returns the result
or raises an ``UpstreamError``; anything else it raises is a bug and propagates untouched.

- The bulkhead admits ``max_concurrency`` calls at once; the next ``max_queue`` wait in line for a slot,
  each for at most ``queue_timeout``; a call finding the line full, or still waiting then, fails with
  BULKHEAD_FULL. The wait is not part of the deadline.
- The deadline (``retry.deadline``) covers every attempt and wait: an attempt gets at most the time
  left, and a wait that would reach the deadline is not started (the last error is raised instead).
- The breaker sees every attempt; a refusal ends the call with CIRCUIT_OPEN, never retried.
- Retries follow ``retry.is_retryable``, the backoff and jitter, ``Retry-After`` as a minimum wait
  (too long for ``max_wait`` or the deadline: stop now and raise it), and the integration's retry
  budget. A 429 drains the budget like a failure: it is the upstream saying it is overloaded.
- Cancellation by the caller gives the breaker permit back (ignored) and propagates.

The error finally raised carries the integration, the operation and the number of attempts made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

from aggregator.config.models import BreakerPolicy, RetryPolicy
from aggregator.errors import (
    BulkheadFull,
    CircuitOpen,
    UpstreamAuthError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from aggregator.resilience.breaker import CircuitBreaker, Outcome
from aggregator.resilience.budget import RetryThrottle
from aggregator.resilience.bulkhead import Bulkhead
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.resilience.retry import backoff, classify, is_retryable
from aggregator.resilience.stats import CallStats, IntegrationStats, IntegrationStatsSnapshot

__all__ = ["Executor", "attempt_deadline"]

T = TypeVar("T")

# When the running attempt is cut off, on its executor's clock (see attempt_deadline).
_ATTEMPT_DEADLINE: ContextVar[float | None] = ContextVar("attempt_deadline", default=None)


def attempt_deadline() -> float | None:
    """The monotonic time at which the executor cuts off the attempt being made (the smaller of the
    attempt timeout and what is left of the call's deadline), for protocols that tell the upstream
    its deadline (gRPC's ``grpc-timeout``); None outside an attempt."""
    return _ATTEMPT_DEADLINE.get()


class Executor:
    """Bulkhead, deadline, retries, breaker and timeouts around one integration's attempts."""

    __slots__ = ("_bulkhead", "_clock", "_retry", "_stats", "_throttle", "breaker", "integration_id")

    def __init__(
        self,
        integration_id: str,
        *,
        retry: RetryPolicy,
        breaker: BreakerPolicy,
        max_concurrency: int,
        max_queue: int,
        queue_timeout: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.integration_id = integration_id
        self.breaker = CircuitBreaker(breaker, clock, name=integration_id)
        self._retry = retry
        self._clock = clock
        self._bulkhead = Bulkhead(
            max_concurrency, max_queue=max_queue, queue_timeout=queue_timeout, clock=clock
        )
        self._throttle = RetryThrottle(retry.budget) if retry.budget is not None else None
        self._stats = IntegrationStats(integration_id)

    @property
    def in_flight(self) -> int:
        return self._bulkhead.in_flight

    def snapshot(self) -> IntegrationStatsSnapshot:
        return self._stats.snapshot(self.breaker, self._bulkhead)

    def refusal(self, operation: str) -> CircuitOpen | None:
        """The CIRCUIT_OPEN a call of ``operation`` would end with now, counted as that refused call;
        None when the breaker may admit it (then ``run`` decides). A caller that checks first skips
        building a request that could not be sent: refusals come in floods while an upstream is down."""
        error = self.breaker.refusal()
        if error is not None:
            op = self._stats.begin(operation)
            error.integration, error.operation, error.attempts = self.integration_id, operation, 0
            self._stats.circuit_rejected(op)
        return error

    async def run(
        self,
        operation: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        timeout: float,
        idempotent: bool,
    ) -> T:
        """Run ``attempt`` under every resilience rule and return its result, or raise the
        ``UpstreamError`` that ended the call."""
        op = self._stats.begin(operation)
        bulkhead = self._bulkhead
        if not bulkhead.try_acquire():
            refused = await bulkhead.acquire()
            if refused is not None:
                self._stats.bulkhead_rejected(op)
                raise BulkheadFull(refused, integration=self.integration_id, operation=operation)
        try:
            return await self._call(op, operation, attempt, timeout, idempotent)
        finally:
            self._bulkhead.release()

    async def _call(
        self,
        op: CallStats,
        operation: str,
        attempt: Callable[[], Awaitable[T]],
        timeout: float,
        idempotent: bool,
    ) -> T:
        clock, stats = self._clock, self._stats
        started = clock.monotonic()
        deadline = None if self._retry.deadline is None else started + self._retry.deadline
        attempts = 0
        try:
            while True:
                permit = self.breaker.acquire()
                attempts += 1
                now = clock.monotonic()
                attempt_timeout = timeout if deadline is None else min(timeout, deadline - now)
                ends = _ATTEMPT_DEADLINE.set(now + attempt_timeout)
                try:
                    async with clock.timeout(attempt_timeout):
                        result = await attempt()
                except TimeoutError:
                    reason = "the call's deadline ran out" if attempt_timeout < timeout else "no answer"
                    error: UpstreamError = UpstreamTimeout(f"{reason} within {attempt_timeout:.3f}s")
                except UpstreamError as exc:
                    error = exc
                except BaseException:
                    permit.release()
                    raise
                else:
                    permit.record("success")
                    if self._throttle is not None:
                        self._throttle.on_success()
                    stats.succeeded(op, clock.wall())
                    return result
                finally:
                    _ATTEMPT_DEADLINE.reset(ends)
                outcome = classify(error)
                permit.record(outcome)
                if isinstance(error, UpstreamTimeout):
                    stats.timed_out(op)
                wait = self._retry_wait(error, outcome, attempts, idempotent, deadline)
                if wait is None:
                    raise error
                await clock.sleep(wait)
                if deadline is not None and clock.monotonic() >= deadline:
                    raise error  # the sleep overshot: no attempt may start past the deadline
        except UpstreamError as exc:
            exc.integration, exc.operation, exc.attempts = self.integration_id, operation, attempts
            if isinstance(exc, CircuitOpen):
                stats.circuit_rejected(op)
            elif classify(exc) == "success" and not isinstance(exc, UpstreamAuthError):
                stats.client_error(op)  # the upstream answered, healthy; the caller gets the error
            else:
                stats.failed(op, clock.wall())
            raise
        except asyncio.CancelledError:
            stats.cancelled(op)
            raise
        except BaseException:
            stats.failed(op, clock.wall())  # a bug: the caller gets no result either
            raise
        finally:
            stats.ended(op, attempts, (clock.monotonic() - started) * 1000.0)

    def _retry_wait(
        self,
        error: UpstreamError,
        outcome: Outcome,
        attempts: int,
        idempotent: bool,
        deadline: float | None,
    ) -> float | None:
        """Account the failed attempt in the budget and return the wait before the next one, or None
        to stop and raise ``error``."""
        throttle, policy = self._throttle, self._retry
        if throttle is not None:
            if outcome == "failure" or (isinstance(error, UpstreamHTTPError) and error.status == 429):
                throttle.on_failure()
            elif outcome == "success":
                throttle.on_success()
        if attempts >= policy.max_attempts or not is_retryable(error, idempotent=idempotent, policy=policy):
            return None
        if throttle is not None and not throttle.allow_retry():
            return None
        wait = backoff(attempts, policy, self._clock.random())
        if error.retry_after is not None:
            if error.retry_after > policy.max_wait:
                return None
            wait = max(wait, error.retry_after)
        if deadline is not None and self._clock.monotonic() + wait >= deadline:
            return None
        return wait
