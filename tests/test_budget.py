"""The retry budget: gRPC-style token bucket that stops retries during an outage."""

from __future__ import annotations

import pytest

from aggregator.config.models import RetryBudget
from aggregator.resilience.budget import RetryThrottle


@pytest.fixture
def throttle() -> RetryThrottle:
    return RetryThrottle(RetryBudget(max_tokens=10, token_ratio=0.1))


def test_starts_full_and_allows_retries(throttle: RetryThrottle) -> None:
    """A fresh budget holds max_tokens and allows retries."""
    assert throttle.tokens == 10
    assert throttle.allow_retry()


def test_failures_drain_it_to_half_and_retries_stop(throttle: RetryThrottle) -> None:
    """Each failure takes a token; at max_tokens/2 or below retries are refused."""
    for _ in range(4):
        throttle.on_failure()
    assert throttle.allow_retry()
    throttle.on_failure()
    assert throttle.tokens == 5
    assert not throttle.allow_retry()


def test_it_never_goes_below_zero(throttle: RetryThrottle) -> None:
    """A long outage floors the tokens at zero, so recovery does not take forever."""
    for _ in range(100):
        throttle.on_failure()
    assert throttle.tokens == 0


def test_successes_refill_it_by_token_ratio(throttle: RetryThrottle) -> None:
    """Each success gives back token_ratio; retries resume once above half."""
    for _ in range(5):
        throttle.on_failure()
    throttle.on_success()
    assert throttle.tokens == pytest.approx(5.1)
    assert throttle.allow_retry()


def test_successes_never_overfill_it(throttle: RetryThrottle) -> None:
    """Tokens are capped at max_tokens."""
    for _ in range(50):
        throttle.on_success()
    assert throttle.tokens == 10
