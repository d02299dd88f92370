"""`integrationStats`: the module's own stats, shown to admin UIs. No second bookkeeping here."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import strawberry

from aggregator.resilience.stats import IntegrationStatsSnapshot, LatencySnapshot, OperationStatsSnapshot
from aggregator.schema.scalars import DateTime, from_epoch


@strawberry.enum
class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@strawberry.type(description="Latency of recent calls in milliseconds; null until a call has completed.")
class Latency:
    p50: float | None
    p95: float | None
    p99: float | None


def _counter(description: str) -> Any:
    return strawberry.field(description=description)


# One text per counter, shared by IntegrationStats and OperationStats.
_CALLS = (
    "Calls made since start, refused ones included. Every call that has ended counts in exactly one "
    "of successes, failures, clientErrors, rejected, bulkheadRejected and cancelled."
)
_SUCCESSES = "Calls that returned a result."
_FAILURES = (
    "Calls that ended in an upstream failure: connection errors, timeouts, 408, 429, 5xx, unusable "
    "answers, GraphQL errors-only answers with a code in graphql_error_codes, credentials that could "
    "not be obtained."
)
_CLIENT_ERRORS = (
    "Calls the upstream answered with an error that is not its own failure: a 4xx other than 408 "
    "and 429, a redirect, a GraphQL errors-only answer with another code. The caller got the error; "
    "the breaker counts the upstream as healthy."
)
_REJECTED = "Calls refused by the open (or full half-open) breaker: CIRCUIT_OPEN, nothing sent."
_BULKHEAD_REJECTED = (
    "Calls refused by the bulkhead (BULKHEAD_FULL): no slot within queue_timeout, or the queue full."
)
_CANCELLED = "Calls whose caller went away before they ended."
_RETRIES = "Attempts beyond the first of each call (attempts, not calls)."
_TIMEOUTS = "Attempts that timed out (attempts, not calls)."


@strawberry.type(description="The counters an integration and each of its operations share.")
class CallCounters:
    calls: int = _counter(_CALLS)
    successes: int = _counter(_SUCCESSES)
    client_errors: int = _counter(_CLIENT_ERRORS)
    rejected: int = _counter(_REJECTED)
    bulkhead_rejected: int = _counter(_BULKHEAD_REJECTED)
    cancelled: int = _counter(_CANCELLED)
    retries: int = _counter(_RETRIES)
    timeouts: int = _counter(_TIMEOUTS)


# The counters' names, the same in both snapshots and in CallCounters.
_SHARED = (
    "calls",
    "successes",
    "client_errors",
    "rejected",
    "bulkhead_rejected",
    "cancelled",
    "retries",
    "timeouts",
)


def _shared(snapshot: OperationStatsSnapshot | IntegrationStatsSnapshot) -> dict[str, Any]:
    return {name: getattr(snapshot, name) for name in _SHARED}


@strawberry.type(description="Counters of one operation since start; see IntegrationStats for the rules.")
class OperationStats(CallCounters):
    operation_id: str
    failures: int = _counter(_FAILURES)
    latency_ms: Latency = strawberry.field(description="Latency of the operation's recent calls.")


@strawberry.type(
    description=(
        "Health and counters of one integration, as its executor sees them, since start. calls = "
        "successes + failures + clientErrors + rejected + bulkheadRejected + cancelled + inFlight + queued."
    )
)
class IntegrationStats(CallCounters):
    integration_id: str = strawberry.field(description="The integration's id in the config.")
    type: str = strawberry.field(description="rest or graphql.")
    circuit_state: CircuitState = strawberry.field(description="The breaker's state now.")
    failures_total: int = _counter(_FAILURES)
    in_flight: int = _counter("Calls holding a bulkhead slot now (at most max_concurrency).")
    queued: int = _counter("Calls waiting for a bulkhead slot now (at most max_queue).")
    queued_peak: int = _counter("The most calls that waited for a slot at once since start.")
    window_calls: int = _counter(
        "Attempts (retries included) the breaker counts now in its sliding window, successes and failures."
    )
    window_failures: int = _counter(
        "Failed attempts the breaker counts now in its sliding window (at most windowCalls)."
    )
    consecutive_failures: int = _counter(
        "Failed attempts in a row since the last success; circuit_breaker.consecutive_failures opens it."
    )
    failures: int = strawberry.field(
        deprecation_reason=(
            "The failed attempts in the breaker's window: read windowFailures (the same number), "
            "or failuresTotal for failed calls."
        )
    )
    last_failure: DateTime | None = strawberry.field(description="When a call last ended in a failure.")
    last_success: DateTime | None = strawberry.field(description="When a call last returned a result.")
    opened_at: DateTime | None = strawberry.field(description="When the breaker last opened.")
    retry_after: float | None = strawberry.field(description="Seconds until the next trial call when OPEN.")
    latency_ms: Latency = strawberry.field(
        description="Latency of recent calls that reached the upstream, waits and retries included."
    )
    operations: list[OperationStats] = strawberry.field(description="The same counters per operation.")


def _latency(snapshot: LatencySnapshot) -> Latency:
    return Latency(p50=snapshot.p50, p95=snapshot.p95, p99=snapshot.p99)


def _operation(snapshot: OperationStatsSnapshot) -> OperationStats:
    return OperationStats(
        **_shared(snapshot),
        operation_id=snapshot.operation_id,
        failures=snapshot.failures,
        latency_ms=_latency(snapshot.latency_ms),
    )


def to_graphql(snapshot: IntegrationStatsSnapshot, integration_type: str) -> IntegrationStats:
    return IntegrationStats(
        integration_id=snapshot.integration_id,
        type=integration_type,
        circuit_state=CircuitState(snapshot.circuit_state),
        **_shared(snapshot),
        failures_total=snapshot.failures,
        in_flight=snapshot.in_flight,
        queued=snapshot.queued,
        queued_peak=snapshot.queued_peak,
        window_calls=snapshot.window_calls,
        window_failures=snapshot.window_failures,
        consecutive_failures=snapshot.consecutive_failures,
        failures=snapshot.window_failures,
        last_failure=from_epoch(snapshot.last_failure),
        last_success=from_epoch(snapshot.last_success),
        opened_at=from_epoch(snapshot.opened_at),
        retry_after=snapshot.retry_after,
        latency_ms=_latency(snapshot.latency_ms),
        operations=[_operation(op) for op in snapshot.operations],
    )
