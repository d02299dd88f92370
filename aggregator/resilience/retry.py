"""The retry rules as pure functions: how long to wait, what an error means to the breaker, and
whether it may be retried. The executor owns the loop; these only decide."""

from __future__ import annotations

import math
from datetime import UTC
from email.utils import parsedate_to_datetime

from aggregator.config.models import RetryPolicy
from aggregator.errors import (
    BulkheadFull,
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamGraphQLError,
    UpstreamGrpcError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.resilience.breaker import Outcome

__all__ = ["backoff", "classify", "is_retryable", "parse_retry_after"]

# Statuses that say "try again later" rather than "your request is wrong".
_TRANSIENT_4XX = frozenset({408, 429})


def backoff(attempt: int, policy: RetryPolicy, random: float) -> float:
    """The wait before attempt ``attempt + 1``: ``initial_wait * multiplier**(attempt-1)`` capped at
    ``max_wait``, then jittered by ``random`` in [0, 1)."""
    try:
        cap = min(policy.max_wait, policy.initial_wait * policy.multiplier ** (attempt - 1))
    except OverflowError:
        cap = policy.max_wait
    if policy.jitter == "full":
        return random * cap
    if policy.jitter == "equal":
        return cap / 2 + random * cap / 2
    return cap


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date); None if absent
    or unreadable. A date in the past means no wait."""
    if value is None or not (text := value.strip()):
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT; a "-0000" zone comes back naive
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now_wall)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def classify(error: BaseException) -> Outcome:
    """What an attempt's exception means for the upstream's health.

    failure: it could not be reached or answered unhealthily (connection errors, timeouts, 408, 5xx,
    a garbage answer; gRPC's INTERNAL, UNKNOWN, DATA_LOSS). success: the upstream itself answered
    (other 4xx, GraphQL errors, other gRPC statuses; an auth error belongs to the auth server,
    which has its own breaker). ignored: 429 (and RESOURCE_EXHAUSTED), cancellation, refusals made
    on our side, and anything that is not an UpstreamError (a bug says nothing about upstream).
    """
    if isinstance(error, UpstreamHTTPError):
        if error.status == 429:
            return "ignored"
        return "failure" if error.status == 408 or error.status >= 500 else "success"
    if isinstance(error, UpstreamUnavailable | UpstreamTimeout | UpstreamBadResponse):
        return "failure"
    if isinstance(error, UpstreamGraphQLError | UpstreamGrpcError):
        return "failure" if error.counts_as_failure else "success"
    if isinstance(error, UpstreamError) and not isinstance(error, CircuitOpen | BulkheadFull):
        return "success"
    return "ignored"


def is_retryable(error: UpstreamError, *, idempotent: bool, policy: RetryPolicy) -> bool:
    """May the attempt that raised ``error`` be made again (budget and waits aside)?

    A connection that failed before anything was sent is safe for any method; anything else only
    for idempotent calls, and then only timeouts, broken connections, and 408/429/5xx listed in
    ``policy.retry_on``.
    """
    if isinstance(error, UpstreamUnavailable):
        return idempotent or not error.sent
    if not idempotent:
        return False
    if isinstance(error, UpstreamTimeout):
        return True
    if isinstance(error, UpstreamHTTPError):
        status = error.status
        return status in policy.retry_on and (status in _TRANSIENT_4XX or status >= 500)
    return False
