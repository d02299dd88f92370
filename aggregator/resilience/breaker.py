"""The per-integration circuit breaker: closed, open, half-open, over a sliding time window.

Every attempt asks for a ``Permit`` and reports exactly one outcome on it:

- ``closed``: every attempt is admitted. It opens on either of two rules:
  - the run rule: ``consecutive_failures`` failed attempts in a row (a success ends the run; ignored
    outcomes neither end nor extend it), whatever the window holds. A hard outage (refused
    connections, an upstream that hangs) trips it within a handful of attempts at any traffic level,
    where the rate rule would first have to outweigh the window's successes.
  - the rate rule: inside a sliding time window (a ring of buckets, so memory stays bounded however
    high the call rate), failures >= ``threshold`` and failures/calls >= ``failure_rate``. Successes
    are counted as calls, never as a reset: an upstream failing every other call still trips it.
- ``open``: every attempt is refused with ``CircuitOpen`` carrying the seconds left until the next
  trial. Once ``reset_after`` has passed the breaker is seen as half-open (lazily, on the next look).
- ``half_open``: at most ``half_open_max_calls`` trials at once. It closes, with a fresh window, once
  ``half_open_max_calls`` trials have succeeded; the first failed trial reopens it and restarts the
  wait. A trial that ends ignored (cancelled, 429) gives its slot back to the next caller.

Every state change bumps a generation number; a permit reports only into the generation it was
issued in, so a late result from an earlier state changes nothing.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Literal

from aggregator.config.models import BreakerPolicy
from aggregator.errors import CircuitOpen
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = ["CircuitBreaker", "CircuitState", "Outcome", "Permit"]

log = logging.getLogger("aggregator.breaker")

Outcome = Literal["success", "failure", "ignored"]
CircuitState = Literal["closed", "open", "half_open"]

# The window is kept as this many buckets: a failure is forgotten between (1 - 1/BUCKETS) * window
# and window after it happened.
BUCKETS = 60


class Permit:
    """Leave to make one attempt; report its outcome once with ``record`` or give it back with
    ``release``. As a context manager it releases on exit, so no path can keep a trial slot."""

    __slots__ = ("_breaker", "_done", "_generation")

    def __init__(self, breaker: CircuitBreaker, generation: int) -> None:
        self._breaker = breaker
        self._generation = generation
        self._done = False

    def record(self, outcome: Outcome) -> None:
        """Report the attempt's outcome; only the first report (or release) counts."""
        if self._done:
            return
        self._done = True
        self._breaker._on_result(self._generation, outcome)

    def release(self) -> None:
        """Give the permit back without an outcome (the same as recording ``ignored``)."""
        self.record("ignored")

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class CircuitBreaker:
    """One breaker per integration; single event loop, so plain counters need no lock."""

    __slots__ = (
        "_call_buckets",
        "_calls",
        "_clock",
        "_consecutive",
        "_failure_buckets",
        "_failures",
        "_generation",
        "_head",
        "_name",
        "_opened_at",
        "_opened_wall",
        "_policy",
        "_state",
        "_trial_successes",
        "_trials",
        "_width",
    )

    def __init__(self, policy: BreakerPolicy, clock: Clock = SYSTEM_CLOCK, *, name: str = "") -> None:
        if policy.window <= 0 or policy.reset_after < 0 or policy.half_open_max_calls < 1:
            raise ValueError(f"unusable breaker policy: {policy}")
        self._policy = policy
        self._clock = clock
        self._name = name
        self._state: CircuitState = "closed"
        self._generation = 0
        self._width = policy.window / BUCKETS
        self._call_buckets = [0] * BUCKETS
        self._failure_buckets = [0] * BUCKETS
        self._calls = 0
        self._failures = 0
        self._consecutive = 0
        self._head = self._bucket(clock.monotonic())
        self._opened_at = 0.0
        self._opened_wall: float | None = None
        self._trials = 0
        self._trial_successes = 0

    @property
    def state(self) -> CircuitState:
        self._refresh()
        return self._state

    @property
    def failures(self) -> int:
        """Failed attempts counted now in the sliding window."""
        self._roll(self._clock.monotonic())
        return self._failures

    @property
    def calls(self) -> int:
        """Attempts (successes and failures) counted now in the sliding window."""
        self._roll(self._clock.monotonic())
        return self._calls

    @property
    def consecutive_failures(self) -> int:
        """Failed attempts in a row since the last success (or since it last closed)."""
        return self._consecutive

    @property
    def opened_at(self) -> float | None:
        """Wall-clock time (epoch seconds) it last opened; None if it never has."""
        return self._opened_wall

    @property
    def trials_in_flight(self) -> int:
        """Half-open trials admitted and not yet reported."""
        return self._trials

    def retry_after(self) -> float | None:
        """Seconds until the next trial while open; None in any other state."""
        self._refresh()
        if self._state != "open":
            return None
        return self._opened_at + self._policy.reset_after - self._clock.monotonic()

    def refusal(self) -> CircuitOpen | None:
        """What ``acquire`` would raise now because the breaker is open; None in any other state
        (nothing is admitted either way: half-open trial slots are ``acquire``'s to give)."""
        if self._state == "closed":
            return None
        self._refresh()
        return self._refusal() if self._state == "open" else None

    def _refusal(self) -> CircuitOpen:
        wait = self._opened_at + self._policy.reset_after - self._clock.monotonic()
        return CircuitOpen(f"circuit breaker is open; next trial in {wait:.3f}s", retry_after=wait)

    def acquire(self) -> Permit:
        """Admit one attempt, or raise ``CircuitOpen`` (nothing may be sent)."""
        if self._state == "closed":
            return Permit(self, self._generation)
        self._refresh()
        if self._state == "open":
            raise self._refusal()
        if self._trials + self._trial_successes >= self._policy.half_open_max_calls:
            raise CircuitOpen("circuit breaker is half-open and its trial calls are taken")
        self._trials += 1
        return Permit(self, self._generation)

    def _on_result(self, generation: int, outcome: Outcome) -> None:
        if generation != self._generation:
            return  # admitted under a state that has since changed
        if self._state == "closed":
            if outcome == "failure":
                self._consecutive += 1
                self._count(True)
            elif outcome == "success":
                self._consecutive = 0
                self._count(False)
            return
        self._trials -= 1
        if outcome == "failure":
            self._open("a trial call failed")
        elif outcome == "success":
            self._trial_successes += 1
            if self._trial_successes >= self._policy.half_open_max_calls:
                self._close()

    def _count(self, failed: bool) -> None:
        self._roll(self._clock.monotonic())
        slot = self._head % BUCKETS
        self._call_buckets[slot] += 1
        self._calls += 1
        if failed:
            self._failure_buckets[slot] += 1
            self._failures += 1
            policy, run = self._policy, self._policy.consecutive_failures
            if run is not None and self._consecutive >= run:
                self._open(f"{self._consecutive} failed attempts in a row")
            elif self._failures >= policy.threshold and self._failures >= policy.failure_rate * self._calls:
                self._open(
                    f"{self._failures} of {self._calls} attempts failed in the last {policy.window:g}s"
                )

    def _bucket(self, now: float) -> int:
        return int(now / self._width)

    def _roll(self, now: float) -> None:
        """Forget the buckets that slid out of the window since the last look."""
        head = self._bucket(now)
        behind = head - self._head
        if behind <= 0:
            return
        if behind >= BUCKETS:
            self._clear_window()
        else:
            calls, failures = self._call_buckets, self._failure_buckets
            for index in range(self._head + 1, head + 1):
                slot = index % BUCKETS
                self._calls -= calls[slot]
                self._failures -= failures[slot]
                calls[slot] = failures[slot] = 0
        self._head = head

    def _clear_window(self) -> None:
        self._call_buckets = [0] * BUCKETS
        self._failure_buckets = [0] * BUCKETS
        self._calls = self._failures = 0

    def _refresh(self) -> None:
        if self._state == "open" and self._clock.monotonic() >= self._opened_at + self._policy.reset_after:
            self._enter("half_open", f"{self._policy.reset_after:g}s passed since it opened")

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock.monotonic()
        self._opened_wall = self._clock.wall()
        self._enter("open", reason)

    def _close(self) -> None:
        self._clear_window()
        self._head = self._bucket(self._clock.monotonic())
        self._enter("closed", f"{self._trial_successes} trial call(s) succeeded")

    def _enter(self, state: CircuitState, reason: str) -> None:
        # Transitions are rare and what an operator wants to see; the refusals in between are not logged.
        level = logging.WARNING if state == "open" else logging.INFO
        log.log(
            level,
            "circuit %s: %s -> %s (%s)",
            self._name or "-",
            self._state,
            state,
            reason,
            extra={"circuit": self._name, "previous_state": self._state, "state": state, "reason": reason},
        )
        self._consecutive = 0
        self._state = state
        self._generation += 1
        self._trials = 0
        self._trial_successes = 0
