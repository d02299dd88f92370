"""Call statistics of one integration and of each of its operations.

Counters are plain ints bumped by the executor (single event loop, no locks); latencies go into a
fixed ring of the last ``RESERVOIR_SIZE`` calls, and percentiles are computed only when a snapshot
is asked for, so the hot path never sorts or allocates. Snapshots are frozen value objects.

Every call counts once in ``calls`` when it starts and, when it ends, in exactly one class:

- ``successes``: it returned a result;
- ``failures``: an upstream failure ended it (connection errors, timeouts, 408, 429, 5xx, unusable
  answers, GraphQL errors-only answers with a code in ``graphql_error_codes``, the token endpoint
  failing), or a bug did;
- ``client_errors``: the upstream answered an error that is not its own failure (a 4xx other than
  408/429, a redirect, other GraphQL errors-only answers);
- ``rejected``: the breaker refused it, nothing sent; ``bulkhead_rejected``: the bulkhead refused it;
- ``cancelled``: its caller went away before it ended.

So ``calls`` = the six classes + the calls still running (``in_flight`` + ``queued``, integration-wide).
``retries`` (attempts beyond the first) and ``timeouts`` (attempts that timed out) count attempts, not
calls. Latency is that of the whole call, waits included, for calls that made an attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aggregator.resilience.breaker import CircuitBreaker, CircuitState
from aggregator.resilience.bulkhead import Bulkhead

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
    client_errors: int
    rejected: int
    bulkhead_rejected: int
    cancelled: int
    retries: int
    timeouts: int
    latency_ms: LatencySnapshot


@dataclass(frozen=True)
class IntegrationStatsSnapshot:
    integration_id: str
    circuit_state: CircuitState
    calls: int
    successes: int
    failures: int
    client_errors: int
    rejected: int
    bulkhead_rejected: int
    cancelled: int
    retries: int
    timeouts: int
    in_flight: int
    queued: int
    queued_peak: int
    # The breaker's view: attempts in its sliding window, and the current run of failed attempts.
    window_calls: int
    window_failures: int
    consecutive_failures: int
    last_failure: float | None
    last_success: float | None
    opened_at: float | None
    retry_after: float | None
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
        "cancelled",
        "client_errors",
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
        self.client_errors = 0
        self.rejected = 0
        self.bulkhead_rejected = 0
        self.cancelled = 0
        self.retries = 0
        self.timeouts = 0
        self.latency = LatencyReservoir()

    def snapshot(self, operation_id: str) -> OperationStatsSnapshot:
        return OperationStatsSnapshot(
            operation_id=operation_id,
            calls=self.calls,
            successes=self.successes,
            failures=self.failures,
            client_errors=self.client_errors,
            rejected=self.rejected,
            bulkhead_rejected=self.bulkhead_rejected,
            cancelled=self.cancelled,
            retries=self.retries,
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

    def client_error(self, op: CallStats) -> None:
        op.client_errors += 1
        self.total.client_errors += 1

    def cancelled(self, op: CallStats) -> None:
        op.cancelled += 1
        self.total.cancelled += 1

    def ended(self, op: CallStats, attempts: int, latency_ms: float) -> None:
        """Close a call: its extra attempts, and its latency if it reached the upstream at all."""
        if attempts == 0:
            return
        op.retries += attempts - 1
        self.total.retries += attempts - 1
        op.latency.add(latency_ms)
        self.total.latency.add(latency_ms)

    def snapshot(self, breaker: CircuitBreaker, bulkhead: Bulkhead) -> IntegrationStatsSnapshot:
        total = self.total
        return IntegrationStatsSnapshot(
            integration_id=self.integration_id,
            circuit_state=breaker.state,
            calls=total.calls,
            successes=total.successes,
            failures=total.failures,
            client_errors=total.client_errors,
            rejected=total.rejected,
            bulkhead_rejected=total.bulkhead_rejected,
            cancelled=total.cancelled,
            retries=total.retries,
            timeouts=total.timeouts,
            in_flight=bulkhead.in_flight,
            queued=bulkhead.queued,
            queued_peak=bulkhead.queued_peak,
            window_calls=breaker.calls,
            window_failures=breaker.failures,
            consecutive_failures=breaker.consecutive_failures,
            last_failure=self.last_failure,
            last_success=self.last_success,
            opened_at=breaker.opened_at,
            retry_after=breaker.retry_after(),
            latency_ms=total.latency.snapshot(),
            operations=tuple(op.snapshot(op_id) for op_id, op in sorted(self._operations.items())),
        )
