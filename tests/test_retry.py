"""The retry rules: backoff and jitter, Retry-After parsing, outcome classes, what may be retried."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from resilience_fakes import PLAIN_RETRY, http_error, unavailable, upstream_timeout

from aggregator.config.models import Jitter, RetryPolicy
from aggregator.errors import (
    BulkheadFull,
    CircuitOpen,
    UpstreamAuthError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamGraphQLError,
)
from aggregator.resilience.breaker import Outcome
from aggregator.resilience.retry import backoff, classify, is_retryable, parse_retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("attempt", "cap"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (60, 10.0)])
def test_backoff_grows_exponentially_up_to_max_wait(attempt: int, cap: float) -> None:
    """Without jitter the wait is initial_wait * multiplier**(n-1), capped at max_wait."""
    assert backoff(attempt, PLAIN_RETRY, 0.5) == cap


def test_backoff_survives_huge_attempt_numbers() -> None:
    """An exponent too big for a float still gives max_wait."""
    assert backoff(5000, PLAIN_RETRY, 0.5) == PLAIN_RETRY.max_wait


@pytest.mark.parametrize(
    ("jitter", "random", "wait"),
    [
        ("full", 0.0, 0.0),
        ("full", 0.999, 3.996),
        ("equal", 0.0, 2.0),
        ("equal", 0.999, 3.998),
        ("none", 0.0, 4.0),
        ("none", 0.999, 4.0),
    ],
)
def test_jitter_stays_within_its_bounds(jitter: Jitter, random: float, wait: float) -> None:
    """With cap = 4s (third attempt): full is random*cap, equal cap/2 + random*cap/2, none the cap."""
    assert backoff(3, replace(PLAIN_RETRY, jitter=jitter), random) == pytest.approx(wait)


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + seconds_from_now, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param("3", 3.0, id="delay-seconds"),
        pytest.param(" 120 ", 120.0, id="padded"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param(http_date(7), 7.0, id="http-date"),
        pytest.param("Tue, 14 Nov 2023 22:13:27 -0000", 7.0, id="http-date-naive-zone"),
        pytest.param(http_date(-60), 0.0, id="http-date-in-the-past"),
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(header: str, seconds: float) -> None:
    """Both forms give the seconds to wait from now; a past date means no wait."""
    assert parse_retry_after(header, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "nan", "inf", "Tue, 99 Foo 2023"])
def test_parse_retry_after_ignores_what_it_cannot_read(header: str | None) -> None:
    """An absent or unreadable header gives None, never an exception."""
    assert parse_retry_after(header, NOW) is None


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        pytest.param(unavailable(sent=False), "failure", id="connect-refused"),
        pytest.param(unavailable(sent=True), "failure", id="connection-broken"),
        pytest.param(upstream_timeout(), "failure", id="timeout"),
        pytest.param(http_error(408), "failure", id="408"),
        pytest.param(http_error(500), "failure", id="500"),
        pytest.param(http_error(503), "failure", id="503"),
        pytest.param(UpstreamBadResponse("not JSON"), "failure", id="bad-response"),
        pytest.param(http_error(400), "success", id="400"),
        pytest.param(http_error(404), "success", id="404"),
        pytest.param(http_error(409), "success", id="409"),
        pytest.param(UpstreamGraphQLError("field error"), "success", id="graphql-errors"),
        pytest.param(UpstreamAuthError("token endpoint down"), "success", id="auth-error"),
        pytest.param(http_error(429), "ignored", id="429"),
        pytest.param(asyncio.CancelledError(), "ignored", id="cancelled"),
        pytest.param(CircuitOpen("nested breaker"), "ignored", id="circuit-open"),
        pytest.param(BulkheadFull("full"), "ignored", id="bulkhead-full"),
        pytest.param(KeyError("bug"), "ignored", id="bug"),
    ],
)
def test_each_error_has_its_outcome_class(error: BaseException, outcome: Outcome) -> None:
    """Failure: unreachable or unhealthy; success: the upstream answered; ignored: says nothing."""
    assert classify(error) == outcome


RETRY_ALL = replace(PLAIN_RETRY, retry_on=frozenset({400, 404, 408, 409, 422, 429, 500, 502, 503, 504}))


@pytest.mark.parametrize(
    ("error", "idempotent", "retryable"),
    [
        pytest.param(unavailable(sent=False), False, True, id="not-sent-POST"),
        pytest.param(unavailable(sent=False), True, True, id="not-sent-GET"),
        pytest.param(unavailable(sent=True), False, False, id="broken-POST"),
        pytest.param(unavailable(sent=True), True, True, id="broken-GET"),
        pytest.param(upstream_timeout(), False, False, id="timeout-POST"),
        pytest.param(upstream_timeout(), True, True, id="timeout-GET"),
        pytest.param(http_error(503), False, False, id="503-POST"),
        pytest.param(http_error(503), True, True, id="503-GET"),
        pytest.param(http_error(408), True, True, id="408-GET"),
        pytest.param(http_error(429), True, True, id="429-GET"),
        pytest.param(http_error(429), False, False, id="429-POST"),
        pytest.param(UpstreamBadResponse("garbage"), True, False, id="bad-response"),
        pytest.param(UpstreamGraphQLError("errors"), True, False, id="graphql-errors"),
        pytest.param(UpstreamAuthError("no token"), True, False, id="auth-error"),
        pytest.param(CircuitOpen("nested"), True, False, id="circuit-open"),
    ],
)
def test_what_may_be_retried(error: UpstreamError, idempotent: bool, retryable: bool) -> None:
    """Unsent requests are retried for any method; everything else only when idempotent."""
    assert is_retryable(error, idempotent=idempotent, policy=RETRY_ALL) is retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_a_4xx_is_never_retried_even_if_listed(status: int) -> None:
    """Only 408 and 429 among the 4xx are transient, whatever retry_on says."""
    assert not is_retryable(http_error(status), idempotent=True, policy=RETRY_ALL)


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_a_status_missing_from_retry_on_is_not_retried(status: int) -> None:
    """retry_on is the list of statuses that may be retried."""
    policy = RetryPolicy(retry_on=frozenset({502}))
    assert not is_retryable(http_error(status), idempotent=True, policy=policy)
