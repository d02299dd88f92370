"""`integrationStats`: the module's own stats, shown to admin UIs. No second bookkeeping here."""

from __future__ import annotations

from enum import StrEnum

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


@strawberry.type
class OperationStats:
    operation_id: str
    calls: int
    successes: int
    failures: int
    retries: int
    rejected: int
    timeouts: int
    latency_ms: Latency


@strawberry.type(description="Health and counters of one integration, as its executor sees them.")
class IntegrationStats:
    integration_id: str
    type: str
    circuit_state: CircuitState
    failures: int = strawberry.field(description="Failures counted now in the breaker's sliding window.")
    failures_total: int = strawberry.field(description="Calls that ended in a failure since start.")
    last_failure: DateTime | None
    last_success: DateTime | None
    opened_at: DateTime | None
    retry_after: float | None = strawberry.field(description="Seconds until the next trial call when OPEN.")
    calls: int
    successes: int
    retries: int
    rejected: int = strawberry.field(description="Calls refused by the open breaker.")
    bulkhead_rejected: int
    timeouts: int
    in_flight: int
    latency_ms: Latency
    operations: list[OperationStats]


def _latency(snapshot: LatencySnapshot) -> Latency:
    return Latency(p50=snapshot.p50, p95=snapshot.p95, p99=snapshot.p99)


def _operation(snapshot: OperationStatsSnapshot) -> OperationStats:
    return OperationStats(
        operation_id=snapshot.operation_id,
        calls=snapshot.calls,
        successes=snapshot.successes,
        failures=snapshot.failures,
        retries=snapshot.retries,
        rejected=snapshot.rejected,
        timeouts=snapshot.timeouts,
        latency_ms=_latency(snapshot.latency_ms),
    )


def to_graphql(snapshot: IntegrationStatsSnapshot, integration_type: str) -> IntegrationStats:
    return IntegrationStats(
        integration_id=snapshot.integration_id,
        type=integration_type,
        circuit_state=CircuitState(snapshot.circuit_state),
        failures=snapshot.failures,
        failures_total=snapshot.failures_total,
        last_failure=from_epoch(snapshot.last_failure),
        last_success=from_epoch(snapshot.last_success),
        opened_at=from_epoch(snapshot.opened_at),
        retry_after=snapshot.retry_after,
        calls=snapshot.calls,
        successes=snapshot.successes,
        retries=snapshot.retries,
        rejected=snapshot.rejected,
        bulkhead_rejected=snapshot.bulkhead_rejected,
        timeouts=snapshot.timeouts,
        in_flight=snapshot.in_flight,
        latency_ms=_latency(snapshot.latency_ms),
        operations=[_operation(op) for op in snapshot.operations],
    )
