"""The circuit breaker: closed/open/half-open, the run and rate rules, trials, staleness and its log."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from resilience_fakes import PLAIN_BREAKER, record, trip

from aggregator.errors import CircuitOpen
from aggregator.resilience.breaker import CircuitBreaker, Outcome
from aggregator.testing import FakeClock

OUTCOME: dict[str, Outcome] = {"F": "failure", "S": "success", "I": "ignored"}


def play(breaker: CircuitBreaker, pattern: str) -> None:
    """Record one outcome per letter: F failure, S success, I ignored."""
    record(breaker, *(OUTCOME[letter] for letter in pattern))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(PLAIN_BREAKER, clock, name="users")


@pytest.fixture
def rate_only(clock: FakeClock) -> CircuitBreaker:
    """A breaker with the run rule off: only the window's failure rate opens it."""
    return CircuitBreaker(replace(PLAIN_BREAKER, consecutive_failures=None), clock)


def half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(PLAIN_BREAKER.reset_after)
    assert breaker.state == "half_open"


def test_starts_closed_and_admits_attempts(breaker: CircuitBreaker) -> None:
    """A new breaker is closed, counts nothing and admits attempts."""
    assert (breaker.state, breaker.failures, breaker.opened_at, breaker.retry_after()) == (
        "closed",
        0,
        None,
        None,
    )
    breaker.acquire().record("success")


def test_opens_when_threshold_failures_reached(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """threshold failures in a row open it, and opened_at is the wall time it happened."""
    play(breaker, "FFFFF")
    assert breaker.state == "open"
    assert breaker.opened_at == clock.wall()


def test_stays_closed_below_threshold(breaker: CircuitBreaker) -> None:
    """Fewer failures than threshold never open it, even at a 100% failure rate."""
    play(breaker, "FFFF")
    assert breaker.state == "closed"
    assert breaker.failures == 4


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("SF" * 5, "open", id="every-other-call-fails-50%"),
        pytest.param("FSSFS" * 4, "closed", id="40%-failures"),
        pytest.param("SSSSSSFFFFF", "closed", id="threshold-met-rate-not"),
    ],
)
def test_rate_rule_with_interleaved_successes(rate_only: CircuitBreaker, pattern: str, expected: str) -> None:
    """Successes dilute the failure rate but never wipe the window: 50% trips it, 40% does not."""
    play(rate_only, pattern)
    assert rate_only.state == expected


# --- the run rule ------------------------------------------------------------------------------------


def test_a_run_of_failures_opens_it_whatever_the_window_holds(breaker: CircuitBreaker) -> None:
    """consecutive_failures failures in a row open it after a thousand successes (a 0.5% rate)."""
    play(breaker, "S" * 1000 + "FFFF")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 4)
    play(breaker, "F")
    assert breaker.state == "open"


@pytest.mark.parametrize("run", [1, 3, 8])
def test_the_run_length_is_the_policys(clock: FakeClock, run: int) -> None:
    """A run one short of consecutive_failures leaves it closed; the next failure opens it."""
    breaker = CircuitBreaker(replace(PLAIN_BREAKER, consecutive_failures=run, threshold=100), clock)
    play(breaker, "S" * 50 + "F" * (run - 1))
    assert breaker.state == "closed"
    play(breaker, "F")
    assert breaker.state == "open"


def test_a_success_ends_the_run(breaker: CircuitBreaker) -> None:
    """Four failures, a success, four failures: no run of five, and the rate stays under 50%."""
    play(breaker, "S" * 20 + "FFFFSFFFF")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 4)


def test_ignored_outcomes_neither_end_nor_extend_the_run(breaker: CircuitBreaker) -> None:
    """429s and cancellations between failures leave the run as it was."""
    play(breaker, "S" * 100 + "FFIIFIF")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 4)
    play(breaker, "F")
    assert breaker.state == "open"


def test_the_run_rule_can_be_turned_off(rate_only: CircuitBreaker) -> None:
    """consecutive_failures None: a long run against a window of successes leaves it closed."""
    play(rate_only, "S" * 1000 + "F" * 50)
    assert rate_only.state == "closed"


def test_the_run_starts_afresh_when_it_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """After a successful trial closes it, the run is zero: four failures do not reopen it."""
    half_open(breaker, clock)
    play(breaker, "S")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
    play(breaker, "S" * 10 + "FFFF")
    assert breaker.state == "closed"


# --- its log -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        pytest.param("S" * 100 + "FFFFF", "5 failed attempts in a row", id="run-rule"),
        pytest.param("FSFSFSFSF", "5 of 9 attempts failed in the last 60s", id="rate-rule"),
    ],
)
def test_opening_is_logged_with_the_rule_that_tripped(
    breaker: CircuitBreaker, caplog: pytest.LogCaptureFixture, pattern: str, reason: str
) -> None:
    """A WARNING names the circuit, both states and which rule opened it, also as record fields."""
    caplog.set_level(logging.INFO, logger="aggregator.breaker")
    play(breaker, pattern)
    [entry] = caplog.records
    assert entry.levelno == logging.WARNING
    assert entry.getMessage() == f"circuit users: closed -> open ({reason})"
    assert (entry.circuit, entry.previous_state, entry.state, entry.reason) == (
        "users",
        "closed",
        "open",
        reason,
    )


def test_closing_is_logged_at_info(
    breaker: CircuitBreaker, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The trial that closes it logs one INFO line with the circuit and the states as fields."""
    half_open(breaker, clock)
    caplog.set_level(logging.INFO, logger="aggregator.breaker")
    play(breaker, "S")
    [entry] = [r for r in caplog.records if r.state == "closed"]
    assert entry.levelno == logging.INFO
    assert entry.getMessage() == "circuit users: half_open -> closed (1 trial call(s) succeeded)"
    assert (entry.circuit, entry.previous_state) == ("users", "half_open")


def test_ignored_outcomes_count_neither_way(breaker: CircuitBreaker) -> None:
    """Ignored attempts (429, cancellations) neither add failures nor dilute the rate."""
    play(breaker, "SSSSFFFF" + "I" * 50)
    assert breaker.state == "closed"
    play(breaker, "F")
    assert breaker.state == "open"


def test_old_failures_slide_out_of_the_window(rate_only: CircuitBreaker, clock: FakeClock) -> None:
    """Failures older than the window no longer count."""
    play(rate_only, "FFFF")
    clock.advance(PLAIN_BREAKER.window)
    assert rate_only.failures == 0
    play(rate_only, "F")
    assert rate_only.state == "closed"


def test_failures_inside_the_window_still_count(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Failures spread over most of the window add up."""
    play(breaker, "FFFF")
    clock.advance(PLAIN_BREAKER.window * 0.9)
    play(breaker, "F")
    assert breaker.state == "open"


def test_window_slides_bucket_by_bucket(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Each failure expires on its own schedule, not all at once."""
    play(breaker, "FF")
    clock.advance(PLAIN_BREAKER.window / 2)
    play(breaker, "FF")
    clock.advance(PLAIN_BREAKER.window / 2)
    assert breaker.failures == 2


def test_open_refuses_with_retry_after(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Open refuses every attempt with CircuitOpen carrying the seconds until the next trial."""
    trip(breaker)
    clock.advance(10)
    with pytest.raises(CircuitOpen) as refused:
        breaker.acquire()
    assert refused.value.retry_after == pytest.approx(20)
    assert breaker.retry_after() == pytest.approx(20)


def test_turns_half_open_after_reset_after(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Open stays open until reset_after has passed, then admits a trial."""
    trip(breaker)
    clock.advance(PLAIN_BREAKER.reset_after - 0.001)
    assert breaker.state == "open"
    clock.advance(0.001)
    assert breaker.state == "half_open"
    assert breaker.retry_after() is None
    breaker.acquire()


@pytest.mark.parametrize("trials", [1, 3])
def test_half_open_admits_at_most_max_calls_trials(clock: FakeClock, trials: int) -> None:
    """Half-open admits half_open_max_calls concurrent trials and refuses the next one."""
    policy = replace(PLAIN_BREAKER, half_open_max_calls=trials)
    breaker = CircuitBreaker(policy, clock)
    trip(breaker, policy)
    clock.advance(policy.reset_after)
    permits = [breaker.acquire() for _ in range(trials)]
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    assert breaker.trials_in_flight == len(permits)


def test_all_trials_succeeding_closes_with_a_fresh_window(clock: FakeClock) -> None:
    """It closes only once every admitted trial has succeeded, and forgets the old failures."""
    policy = replace(PLAIN_BREAKER, half_open_max_calls=2)
    breaker = CircuitBreaker(policy, clock)
    trip(breaker, policy)
    clock.advance(policy.reset_after)
    first, second = breaker.acquire(), breaker.acquire()
    first.record("success")
    assert breaker.state == "half_open"
    second.record("success")
    assert breaker.state == "closed"
    assert breaker.failures == 0
    play(breaker, "FFFF")
    assert breaker.state == "closed"


def test_trials_may_run_one_after_another(clock: FakeClock) -> None:
    """A finished trial makes room for the next, so a lone caller can close a multi-trial breaker."""
    policy = replace(PLAIN_BREAKER, half_open_max_calls=3)
    breaker = CircuitBreaker(policy, clock)
    trip(breaker, policy)
    clock.advance(policy.reset_after)
    play(breaker, "SS")
    assert breaker.state == "half_open"
    play(breaker, "S")
    assert breaker.state == "closed"


def test_failed_trial_reopens_and_restarts_the_wait(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """The first failed trial reopens at once; the full reset_after starts again from then."""
    half_open(breaker, clock)
    breaker.acquire().record("failure")
    assert breaker.state == "open"
    assert breaker.opened_at == clock.wall()
    assert breaker.retry_after() == pytest.approx(PLAIN_BREAKER.reset_after)


@pytest.mark.parametrize("give_back", ["release", "ignored", "context-manager"])
def test_trial_given_back_frees_its_slot(breaker: CircuitBreaker, clock: FakeClock, give_back: str) -> None:
    """A trial given back without a verdict (cancelled, 429, hung and abandoned) frees its slot."""
    half_open(breaker, clock)
    if give_back == "context-manager":
        with breaker.acquire():
            pass
    elif give_back == "release":
        breaker.acquire().release()
    else:
        breaker.acquire().record("ignored")
    assert (breaker.state, breaker.trials_in_flight) == ("half_open", 0)
    breaker.acquire().record("success")
    assert breaker.state == "closed"


def test_only_the_first_report_on_a_permit_counts(breaker: CircuitBreaker) -> None:
    """record() after record() or release() is a no-op."""
    permit = breaker.acquire()
    permit.record("failure")
    permit.record("success")
    permit.release()
    play(breaker, "SFFF")
    assert breaker.failures == 4
    play(breaker, "F")
    assert breaker.state == "open"  # 5 failures of 6 calls: the repeated success did not count


def test_stale_success_from_before_opening_changes_nothing(breaker: CircuitBreaker) -> None:
    """A success admitted while closed but reported after the breaker opened is ignored."""
    slow = breaker.acquire()
    trip(breaker)
    slow.record("success")
    assert breaker.state == "open"


def test_stale_trial_result_after_reopening_changes_nothing(clock: FakeClock) -> None:
    """A trial reporting after another trial already reopened the breaker changes nothing."""
    policy = replace(PLAIN_BREAKER, half_open_max_calls=2)
    breaker = CircuitBreaker(policy, clock)
    trip(breaker, policy)
    clock.advance(policy.reset_after)
    failing, late = breaker.acquire(), breaker.acquire()
    failing.record("failure")
    late.record("success")
    assert breaker.state == "open"
    assert breaker.retry_after() == pytest.approx(policy.reset_after)


def test_stale_failure_after_closing_again_changes_nothing(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Failures admitted under an old closed period do not count in the new window."""
    old = [breaker.acquire() for _ in range(PLAIN_BREAKER.threshold)]
    trip(breaker)
    clock.advance(PLAIN_BREAKER.reset_after)
    breaker.acquire().record("success")
    for permit in old:
        permit.record("failure")
    assert (breaker.state, breaker.failures) == ("closed", 0)


def test_counts_stay_exact_over_many_windows(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """A hundred thousand calls across several windows keep exact counts of the last window only."""
    for _ in range(100_000):
        breaker.acquire().record("success")
        clock.advance(0.003)
    play(breaker, "FFFF")
    assert breaker.failures == 4
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    "bad",
    [{"window": 0.0}, {"half_open_max_calls": 0}, {"reset_after": -1.0}],
    ids=["no-window", "no-trials", "negative-reset"],
)
def test_refuses_an_unusable_policy(bad: dict[str, float]) -> None:
    """A policy it cannot run fails at construction, not on the first call."""
    with pytest.raises(ValueError, match="unusable breaker policy"):
        CircuitBreaker(replace(PLAIN_BREAKER, **bad))  # type: ignore[arg-type]
