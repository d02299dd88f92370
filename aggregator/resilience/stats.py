"""Call statistics of one integration and of each of its operations.

Counters are plain ints bumped by the executor (single event loop, no locks); latencies go into a
fixed ring of the last ``RESERVOIR_SIZE`` calls, and percentiles are computed only when a snapshot
is asked for, so the hot path never sorts or allocates. Snapshots are frozen value objects.

What counts: ``calls`` every call made, refused ones included; ``successes`` calls that returned a
result; ``failures`` calls that ended in an error the breaker counts as a failure (a 404 is neither
a success nor a failure); ``retries`` attempts beyond the first; ``rejected`` calls refused by the
breaker; ``bulkhead_rejected`` calls refused by the concurrency limit; ``timeouts`` attempts that
timed out. Latency is that of the whole call, waits included, for calls that made an attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aggregator.resilience.breaker import CircuitBreaker, CircuitState

__all__ = [
    "RESERVOIR_SIZE",
    "CallStats",
    "IntegrationStats",
    "IntegrationStatsSnapshot",
    "LatencyReservoir",
    "LatencySnapshot",
    "OperationStatsSnapshot",
]

RESERVOIR_SIZE = 1024


@dataclass(frozen=True)
class LatencySnapshot:
    """Percentiles of recent call latencies in milliseconds; None when there is no call yet."""

    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class OperationStatsSnapshot:
    operation_id: str
    calls: int
    successes: int
    failures: int
    retries: int
    rejected: int
    timeouts: int
    latency_ms: LatencySnapshot


@dataclass(frozen=True)
class IntegrationStatsSnapshot:
    integration_id: str
    circuit_state: CircuitState
    failures: int
    last_failure: float | None
    last_success: float | None
    opened_at: float | None
    retry_after: float | None
    calls: int
    successes: int
    failures_total: int
    retries: int
    rejected: int
    bulkhead_rejected: int
    timeouts: int
    in_flight: int
    latency_ms: LatencySnapshot
    operations: tuple[OperationStatsSnapshot, ...]


class LatencyReservoir:
    """The latencies of the last ``RESERVOIR_SIZE`` calls, in a preallocated ring."""

    __slots__ = ("_count", "_next", "_samples")

    def __init__(self) -> None:
        self._samples = [0.0] * RESERVOIR_SIZE
        self._next = 0
        self._count = 0

    def add(self, ms: float) -> None:
        self._samples[self._next] = ms
        self._next = (self._next + 1) % RESERVOIR_SIZE
        if self._count < RESERVOIR_SIZE:
            self._count += 1

    def snapshot(self) -> LatencySnapshot:
        """Nearest-rank percentiles of the samples held."""
        if self._count == 0:
            return LatencySnapshot(None, None, None)
        ordered = sorted(self._samples[: self._count])
        n = len(ordered)

        def rank(p: float) -> float:
            return ordered[max(1, math.ceil(p * n)) - 1]

        return LatencySnapshot(p50=rank(0.50), p95=rank(0.95), p99=rank(0.99))


class CallStats:
    """The counters of one scope: a whole integration or one operation."""

    __slots__ = (
        "bulkhead_rejected",
        "calls",
        "failures",
        "latency",
        "rejected",
        "retries",
        "successes",
        "timeouts",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.successes = 0
        self.failures = 0
        self.retries = 0
        self.rejected = 0
        self.bulkhead_rejected = 0
        self.timeouts = 0
        self.latency = LatencyReservoir()

    def snapshot(self, operation_id: str) -> OperationStatsSnapshot:
        return OperationStatsSnapshot(
            operation_id=operation_id,
            calls=self.calls,
            successes=self.successes,
            failures=self.failures,
            retries=self.retries,
            rejected=self.rejected,
            timeouts=self.timeouts,
            latency_ms=self.latency.snapshot(),
        )


class IntegrationStats:
    """The integration's totals plus one ``CallStats`` per operation; every event updates both."""

    __slots__ = ("_operations", "integration_id", "last_failure", "last_success", "total")

    def __init__(self, integration_id: str) -> None:
        self.integration_id = integration_id
        self.total = CallStats()
        self._operations: dict[str, CallStats] = {}
        self.last_success: float | None = None
        self.last_failure: float | None = None

    def begin(self, operation_id: str) -> CallStats:
        """Count a new call and return its operation's counters for the events that follow."""
        op = self._operations.get(operation_id)
        if op is None:
            op = self._operations[operation_id] = CallStats()
        op.calls += 1
        self.total.calls += 1
        return op

    def bulkhead_rejected(self, op: CallStats) -> None:
        op.bulkhead_rejected += 1
        self.total.bulkhead_rejected += 1

    def circuit_rejected(self, op: CallStats) -> None:
        op.rejected += 1
        self.total.rejected += 1

    def timed_out(self, op: CallStats) -> None:
        op.timeouts += 1
        self.total.timeouts += 1

    def succeeded(self, op: CallStats, wall: float) -> None:
        op.successes += 1
        self.total.successes += 1
        self.last_success = wall

    def failed(self, op: CallStats, wall: float) -> None:
        op.failures += 1
        self.total.failures += 1
        self.last_failure = wall

    def ended(self, op: CallStats, attempts: int, latency_ms: float) -> None:
        """Close a call: its extra attempts, and its latency if it reached the upstream at all."""
        if attempts == 0:
            return
        op.retries += attempts - 1
        self.total.retries += attempts - 1
        op.latency.add(latency_ms)
        self.total.latency.add(latency_ms)

    def snapshot(self, breaker: CircuitBreaker, in_flight: int) -> IntegrationStatsSnapshot:
        total = self.total
        return IntegrationStatsSnapshot(
            integration_id=self.integration_id,
            circuit_state=breaker.state,
            failures=breaker.failures,
            last_failure=self.last_failure,
            last_success=self.last_success,
            opened_at=breaker.opened_at,
            retry_after=breaker.retry_after(),
            calls=total.calls,
            successes=total.successes,
            failures_total=total.failures,
            retries=total.retries,
            rejected=total.rejected,
            bulkhead_rejected=total.bulkhead_rejected,
            timeouts=total.timeouts,
            in_flight=in_flight,
            latency_ms=total.latency.snapshot(),
            operations=tuple(op.snapshot(op_id) for op_id, op in sorted(self._operations.items())),
        )
