"""The executor: bulkhead -> deadline -> retry -> breaker -> attempt timeout, and its stats."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from resilience_fakes import (
    PLAIN_BREAKER,
    PLAIN_RETRY,
    CountingBreaker,
    Hanging,
    OversleepingClock,
    RecordingClock,
    Scripted,
    Taking,
    always,
    http_error,
    make_executor,
    record,
    trip,
    unavailable,
    upstream_timeout,
)

from aggregator.config.models import BreakerPolicy, RetryBudget
from aggregator.errors import (
    BulkheadFull,
    CircuitOpen,
    RateLimited,
    UpstreamAuthError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamGraphQLError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.resilience.executor import Executor
from aggregator.resilience.retry import classify, parse_retry_after
from aggregator.resilience.stats import LatencyReservoir, LatencySnapshot
from aggregator.testing import FakeClock

RETRY_3 = replace(PLAIN_RETRY, max_attempts=3)


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def executor(clock: RecordingClock) -> Executor:
    return make_executor(clock, retry=RETRY_3)


def half_open(executor: Executor, clock: FakeClock) -> None:
    trip(executor.breaker)
    clock.advance(PLAIN_BREAKER.reset_after)
    assert executor.breaker.state == "half_open"


Attempt = Callable[[], Awaitable[object]]


async def call(
    executor: Executor, attempt: Attempt, *, timeout: float = 5.0, idempotent: bool = True
) -> object:
    return await executor.run("getUser", attempt, timeout=timeout, idempotent=idempotent)


async def failure_of(
    executor: Executor, attempt: Attempt, *, timeout: float = 5.0, idempotent: bool = True
) -> UpstreamError:
    """The UpstreamError a call ends with."""
    with pytest.raises(UpstreamError) as failed:
        await call(executor, attempt, timeout=timeout, idempotent=idempotent)
    return failed.value


# --- the happy path and the final error -------------------------------------------------------------


async def test_returns_the_result_of_one_attempt(executor: Executor) -> None:
    """A successful attempt's result is returned and nothing else is sent."""
    attempt = Scripted({"id": 1})
    assert await call(executor, attempt) == {"id": 1}
    assert attempt.calls == 1


async def test_final_error_names_integration_operation_and_attempts(executor: Executor) -> None:
    """The error that ends a call says where it happened and how many attempts were made."""
    error = await failure_of(executor, always(http_error(503)))
    assert (type(error), error.integration, error.operation, error.attempts) == (
        UpstreamHTTPError,
        "users",
        "getUser",
        3,
    )


async def test_a_bug_in_the_attempt_propagates_untouched(executor: Executor) -> None:
    """A non-upstream exception is neither retried nor wrapped."""
    attempt = Scripted(KeyError("oops"), "ok")
    with pytest.raises(KeyError, match="oops"):
        await call(executor, attempt)
    assert attempt.calls == 1


# --- the breaker seen through the executor ----------------------------------------------------------


async def test_open_breaker_fails_fast_without_sending(executor: Executor, clock: FakeClock) -> None:
    """An open breaker ends the call with CIRCUIT_OPEN at once, carrying the time to the next trial."""
    trip(executor.breaker)
    clock.advance(10)
    attempt = Scripted()
    error = await failure_of(executor, attempt)
    assert isinstance(error, CircuitOpen)
    assert (error.retry_after, error.attempts, error.operation) == (pytest.approx(20), 0, "getUser")
    assert attempt.calls == 0


async def test_refusal_is_the_open_breakers_error_counted_as_a_refused_call(
    executor: Executor, clock: FakeClock
) -> None:
    """refusal() while open: the CIRCUIT_OPEN run() would raise, named, with 0 attempts, counted once."""
    trip(executor.breaker)
    clock.advance(10)
    error = executor.refusal("getUser")
    assert isinstance(error, CircuitOpen)
    assert (error.retry_after, error.attempts, error.operation, error.integration) == (
        pytest.approx(20),
        0,
        "getUser",
        "users",
    )
    stats = executor.snapshot()
    assert (stats.calls, stats.rejected) == (1, 1)


@pytest.mark.parametrize("state", ["closed", "half_open"])
async def test_refusal_is_none_unless_open_and_counts_nothing(
    executor: Executor, clock: FakeClock, state: str
) -> None:
    """refusal() admits nothing and counts nothing when closed or half-open: run() decides those."""
    if state == "half_open":
        half_open(executor, clock)
    assert executor.refusal("getUser") is None
    assert executor.breaker.trials_in_flight == 0
    assert executor.snapshot().calls == 0


async def test_breaker_opening_mid_call_ends_it_without_retrying(clock: FakeClock) -> None:
    """Once the breaker opens, the next attempt is refused and the call ends with CIRCUIT_OPEN."""
    executor = make_executor(clock, retry=RETRY_3, breaker=replace(PLAIN_BREAKER, threshold=1))
    attempt = Scripted(http_error(503))
    error = await failure_of(executor, attempt)
    assert isinstance(error, CircuitOpen)
    assert (error.attempts, attempt.calls) == (1, 1)


async def test_attempt_timeout_is_an_upstream_timeout_and_a_failure(
    executor: Executor, clock: FakeClock
) -> None:
    """An attempt outliving its timeout is cut off, raised as UPSTREAM_TIMEOUT and counted a failure."""
    error = await failure_of(executor, Taking(clock, 6), timeout=5, idempotent=False)
    assert isinstance(error, UpstreamTimeout)
    assert executor.breaker.failures == 1


@pytest.mark.parametrize(
    ("error", "state_after_trial"),
    [
        pytest.param(unavailable(), "open", id="unavailable-fails"),
        pytest.param(upstream_timeout(), "open", id="timeout-fails"),
        pytest.param(http_error(408), "open", id="408-fails"),
        pytest.param(http_error(500), "open", id="500-fails"),
        pytest.param(UpstreamBadResponse("not JSON"), "open", id="bad-response-fails"),
        pytest.param(http_error(404), "closed", id="404-succeeds"),
        pytest.param(http_error(422), "closed", id="422-succeeds"),
        pytest.param(UpstreamGraphQLError("errors"), "closed", id="graphql-errors-succeed"),
        pytest.param(UpstreamAuthError("token"), "closed", id="auth-error-succeeds"),
        pytest.param(http_error(429), "half_open", id="429-ignored"),
        pytest.param(KeyError("bug"), "half_open", id="bug-ignored"),
    ],
)
async def test_each_outcome_class_drives_the_trial(
    clock: FakeClock, error: BaseException, state_after_trial: str
) -> None:
    """A trial ending in a failure reopens, a success closes, an ignored one frees its slot."""
    executor = make_executor(clock)
    half_open(executor, clock)
    with pytest.raises(type(error)):
        await call(executor, Scripted(error), idempotent=False)
    assert executor.breaker.state == state_after_trial
    assert executor.breaker.trials_in_flight == 0


async def test_calls_during_a_trial_are_refused(executor: Executor, clock: FakeClock) -> None:
    """While the one trial is in flight, other calls get CIRCUIT_OPEN without being sent."""
    half_open(executor, clock)
    trial = Hanging()
    task = asyncio.create_task(call(executor, trial))
    await trial.started.wait()
    other = Scripted()
    assert isinstance(await failure_of(executor, other), CircuitOpen)
    assert other.calls == 0
    trial.finish("ok")
    assert await task == "ok"
    assert executor.breaker.state == "closed"


async def test_a_hung_trial_times_out_and_reopens(executor: Executor, clock: FakeClock) -> None:
    """A trial that never answers is cut at its timeout, reopens the breaker, and the next trial runs."""
    half_open(executor, clock)
    trial = Hanging()
    task = asyncio.create_task(call(executor, trial, timeout=5, idempotent=False))
    await trial.started.wait()
    clock.advance(5)
    with pytest.raises(UpstreamTimeout):
        await task
    assert (executor.breaker.state, trial.calls) == ("open", 1)
    clock.advance(PLAIN_BREAKER.reset_after)
    assert await call(executor, Scripted("ok")) == "ok"
    assert executor.breaker.state == "closed"


async def test_a_cancelled_trial_gives_its_slot_back(executor: Executor, clock: FakeClock) -> None:
    """Cancelling the caller during a trial re-raises CancelledError and the next trial is admitted."""
    half_open(executor, clock)
    trial = Hanging()
    task = asyncio.create_task(call(executor, trial))
    await trial.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (executor.breaker.state, executor.breaker.trials_in_flight) == ("half_open", 0)
    assert await call(executor, Scripted("ok")) == "ok"


# --- retries ---------------------------------------------------------------------------------------


async def test_waits_grow_by_backoff_between_attempts(clock: RecordingClock) -> None:
    """Waits before attempts 2, 3, 4 are initial_wait * multiplier**(n-1): 1s, 2s, 4s."""
    executor = make_executor(clock, retry=replace(PLAIN_RETRY, max_attempts=4))
    attempt = Scripted(*[http_error(503)] * 3, "ok")
    assert await call(executor, attempt) == "ok"
    assert clock.sleeps == [1.0, 2.0, 4.0]


async def test_waits_are_jittered_with_the_clocks_random() -> None:
    """Full jitter scales each capped wait by the injected random source."""
    clock = FakeClock(randoms=[0.25])
    executor = make_executor(clock, retry=replace(RETRY_3, jitter="full"))
    await failure_of(executor, always(http_error(503)))
    assert clock.sleeps == [0.25, 0.5]


async def test_max_attempts_counts_the_first_attempt(clock: RecordingClock) -> None:
    """max_attempts: 1 means no retry at all."""
    executor = make_executor(clock, retry=replace(PLAIN_RETRY, max_attempts=1))
    attempt = Scripted(http_error(503))
    assert (await failure_of(executor, attempt)).attempts == 1


def http_date_in(clock: FakeClock, seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(clock.wall() + seconds, UTC), usegmt=True)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_a_minimum_wait(
    executor: Executor, clock: RecordingClock, form: str, status: int
) -> None:
    """A Retry-After of 3s (either form) beats the 1s backoff."""
    header = "3" if form == "seconds" else http_date_in(clock, 3)
    attempt = Scripted(http_error(status, retry_after=parse_retry_after(header, clock.wall())), "ok")
    assert await call(executor, attempt) == "ok"
    assert clock.sleeps == [3.0]


async def test_backoff_wins_over_a_shorter_retry_after(executor: Executor, clock: RecordingClock) -> None:
    """Retry-After is only a minimum: a longer backoff is still waited."""
    attempt = Scripted(http_error(503, retry_after=0.5), "ok")
    await call(executor, attempt)
    assert clock.sleeps == [1.0]


async def test_retry_after_longer_than_max_wait_stops_at_once(
    executor: Executor, clock: RecordingClock
) -> None:
    """A Retry-After beyond max_wait ends the call now with that error and its retry_after."""
    attempt = Scripted(http_error(429, retry_after=11), "ok")
    error = await failure_of(executor, attempt)
    assert isinstance(error, RateLimited)
    assert (error.retry_after, error.attempts, clock.sleeps) == (11, 1, [])


async def test_retry_after_past_the_deadline_stops_at_once(clock: RecordingClock) -> None:
    """A Retry-After the deadline cannot fit ends the call now with that error."""
    executor = make_executor(clock, retry=replace(RETRY_3, deadline=5.0))
    error = await failure_of(executor, Scripted(http_error(503, retry_after=6), "ok"))
    assert (error.retry_after, error.attempts, clock.sleeps) == (6, 1, [])


@pytest.mark.parametrize(
    ("first", "idempotent", "retried"),
    [
        pytest.param(upstream_timeout(), False, False, id="POST-timeout"),
        pytest.param(http_error(503), False, False, id="POST-503"),
        pytest.param(unavailable(sent=True), False, False, id="POST-connection-broken"),
        pytest.param(unavailable(sent=False), False, True, id="POST-not-sent"),
        pytest.param(upstream_timeout(), True, True, id="idempotent-timeout"),
        pytest.param(http_error(503), True, True, id="idempotent-503"),
        pytest.param(unavailable(sent=True), True, True, id="idempotent-connection-broken"),
    ],
)
async def test_idempotency_decides_what_is_retried(
    executor: Executor, first: UpstreamError, idempotent: bool, retried: bool
) -> None:
    """Non-idempotent calls are retried only when the request was never sent."""
    attempt = Scripted(first, "ok")
    if retried:
        assert await call(executor, attempt, idempotent=idempotent) == "ok"
    else:
        assert await failure_of(executor, attempt, idempotent=idempotent) is first
    assert attempt.calls == (2 if retried else 1)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_a_4xx_is_never_retried(clock: FakeClock, status: int) -> None:
    """Even listed in retry_on, a 4xx other than 408/429 is raised after one attempt."""
    executor = make_executor(clock, retry=replace(RETRY_3, retry_on=frozenset({status, 503})))
    error = await failure_of(executor, Scripted(http_error(status), "ok"))
    assert (error.attempts, getattr(error, "status", None)) == (1, status)


@pytest.mark.parametrize(
    "error",
    [UpstreamBadResponse("garbage"), UpstreamGraphQLError("errors"), UpstreamAuthError("no token")],
    ids=["bad-response", "graphql-errors", "auth-error"],
)
async def test_unusable_answers_are_never_retried(executor: Executor, error: UpstreamError) -> None:
    """A garbage answer, GraphQL errors or an auth failure would only repeat: one attempt."""
    assert (await failure_of(executor, Scripted(error, "ok"))).attempts == 1


# --- the deadline ----------------------------------------------------------------------------------


async def test_no_wait_is_started_that_would_pass_the_deadline(clock: RecordingClock) -> None:
    """With 1s of the deadline left, the 8s wait is not started: the last error is raised."""
    policy = replace(RETRY_3, initial_wait=4.0, max_wait=10.0, deadline=5.0)
    executor = make_executor(clock, retry=policy)
    error = await failure_of(executor, always(http_error(503)))
    assert isinstance(error, UpstreamHTTPError)
    assert (error.attempts, clock.sleeps) == (2, [4.0])


async def test_attempt_timeout_shrinks_to_the_time_left(clock: RecordingClock) -> None:
    """An attempt gets min(its timeout, what is left of the deadline)."""
    executor = make_executor(clock, retry=replace(RETRY_3, initial_wait=4.0, deadline=5.0))
    await failure_of(executor, always(http_error(503)), timeout=10)
    assert clock.timeouts == [5.0, 1.0]


async def test_an_attempt_cut_by_the_deadline_says_so(clock: RecordingClock) -> None:
    """When the deadline, not the attempt timeout, runs out the error says it was the deadline."""
    executor = make_executor(clock, retry=replace(PLAIN_RETRY, deadline=3.0))
    error = await failure_of(executor, Taking(clock, 4), timeout=10)
    assert isinstance(error, UpstreamTimeout)
    assert "deadline" in str(error)


async def test_no_attempt_starts_after_an_oversleep_past_the_deadline() -> None:
    """If a wait overruns (a busy loop), the deadline still forbids another attempt."""
    clock = OversleepingClock(extra=2.0)
    executor = make_executor(clock, retry=replace(RETRY_3, initial_wait=4.0, deadline=5.0))
    attempt = Scripted(http_error(503), "ok")
    error = await failure_of(executor, attempt)
    assert (error.attempts, attempt.calls) == (1, 1)


# --- the retry budget ------------------------------------------------------------------------------


# The breaker would end an outage long before the budget matters: keep it out of the way.
TOLERANT_BREAKER = replace(PLAIN_BREAKER, threshold=1000, consecutive_failures=None)


def budgeted(clock: FakeClock) -> Executor:
    retry = replace(RETRY_3, budget=RetryBudget(max_tokens=10, token_ratio=0.1))
    return make_executor(clock, retry=retry, breaker=TOLERANT_BREAKER)


async def attempts_of(executor: Executor, attempt: Attempt) -> int:
    """How many attempts a call that fails made."""
    return (await failure_of(executor, attempt)).attempts


@pytest.mark.parametrize("status", [503, 429])
async def test_budget_stops_retries_during_an_outage(clock: FakeClock, status: int) -> None:
    """After a few failing calls the budget is spent and calls make one attempt each."""
    executor = budgeted(clock)
    outage = always(http_error(status))
    assert [await attempts_of(executor, outage) for _ in range(6)] == [3, 2, 1, 1, 1, 1]


async def test_budget_refills_on_successes(clock: FakeClock) -> None:
    """Successful calls earn tokens back until retries are allowed again."""
    executor = budgeted(clock)
    outage = always(http_error(503))
    for _ in range(10):
        await attempts_of(executor, outage)
    for _ in range(70):
        await call(executor, always("ok"))
    assert await attempts_of(executor, outage) == 2


async def test_no_budget_means_no_limit(clock: FakeClock) -> None:
    """budget: None leaves every call all its attempts."""
    executor = make_executor(clock, retry=replace(RETRY_3, budget=None), breaker=TOLERANT_BREAKER)
    outage = always(http_error(503))
    assert [await attempts_of(executor, outage) for _ in range(10)] == [3] * 10


# --- the bulkhead ----------------------------------------------------------------------------------


async def test_bulkhead_refuses_excess_calls_at_once(clock: FakeClock) -> None:
    """Past max_concurrency a call fails fast with BULKHEAD_FULL, unsent, and the breaker ignores it."""
    executor = make_executor(clock, max_concurrency=2)
    hung = [Hanging(), Hanging()]
    tasks = [asyncio.create_task(call(executor, h)) for h in hung]
    for h in hung:
        await h.started.wait()
    extra = Scripted()
    error = await failure_of(executor, extra)
    assert isinstance(error, BulkheadFull)
    assert (error.integration, error.operation, error.attempts, extra.calls) == ("users", "getUser", 0, 0)
    assert executor.breaker.failures == 0
    for h in hung:
        h.finish()
    await asyncio.gather(*tasks)
    assert executor.in_flight == 0


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("ok", id="success"),
        pytest.param(http_error(503), id="upstream-error"),
        pytest.param(KeyError("bug"), id="bug"),
        pytest.param(asyncio.CancelledError(), id="cancelled"),
    ],
)
async def test_bulkhead_slot_is_released_however_the_call_ends(executor: Executor, answer: object) -> None:
    """Success, error, bug or cancellation: the slot always comes back."""
    await asyncio.gather(call(executor, always(answer)), return_exceptions=True)
    assert executor.in_flight == 0


async def test_bulkhead_slot_is_released_when_the_breaker_refuses(executor: Executor) -> None:
    """A call refused by the breaker gives its bulkhead slot back."""
    trip(executor.breaker)
    await failure_of(executor, Scripted())
    assert executor.in_flight == 0


async def test_a_call_waits_in_line_for_a_slot_then_runs(clock: FakeClock) -> None:
    """With every slot taken, a call waits (counted as queued) and runs once a slot frees."""
    executor = make_executor(clock, max_concurrency=1, max_queue=1, queue_timeout=5.0)
    hung = Hanging()
    first = asyncio.create_task(call(executor, hung))
    await hung.started.wait()
    second = asyncio.create_task(call(executor, always("second")))
    await turns(3)
    assert (executor.snapshot().in_flight, executor.snapshot().queued) == (1, 1)
    hung.finish()
    assert await asyncio.gather(first, second) == ["ok", "second"]
    stats = executor.snapshot()
    assert (stats.in_flight, stats.queued, stats.queued_peak, stats.successes) == (0, 0, 1, 2)


async def test_a_call_that_waits_past_queue_timeout_is_refused_unsent(clock: FakeClock) -> None:
    """No slot within queue_timeout: BULKHEAD_FULL, nothing sent, the breaker ignores it."""
    executor = make_executor(clock, max_concurrency=1, max_queue=1, queue_timeout=2.0)
    hung = Hanging()
    first = asyncio.create_task(call(executor, hung))
    await hung.started.wait()
    extra = Scripted()
    waiting = asyncio.create_task(failure_of(executor, extra))
    await turns(3)
    clock.advance(2.0)
    error = await waiting
    assert isinstance(error, BulkheadFull)
    assert str(error) == "users.getUser: no slot of 1 came free within 2s (queue_timeout)"
    assert (error.attempts, extra.calls, executor.breaker.calls) == (0, 0, 0)
    hung.finish()
    await first
    assert executor.snapshot().bulkhead_rejected == 1


# --- a hard outage under steady traffic ------------------------------------------------------------


async def steady_traffic(
    executor: Executor, clock: FakeClock, attempt: Attempt, *, rate: float, seconds: float
) -> list[object]:
    """One call every 1/rate seconds of fake time for ``seconds``: each call's result or error."""
    outcomes: list[object] = []
    for _ in range(round(rate * seconds)):
        try:
            outcomes.append(await call(executor, attempt, timeout=0.5))
        except UpstreamError as error:
            outcomes.append(error)
        clock.advance(1 / rate)
    return outcomes


@pytest.mark.parametrize(
    "cut",
    [pytest.param("refused", id="connection-refused"), pytest.param("hanging", id="hanging-upstream")],
)
async def test_a_hard_outage_opens_the_default_breaker_within_five_failures(
    clock: FakeClock, cut: str
) -> None:
    """After a minute of successes at 100 calls/s, the default breaker opens on the 5th failed call."""
    executor = make_executor(clock, breaker=BreakerPolicy())
    history = await steady_traffic(executor, clock, always("ok"), rate=100, seconds=60)
    assert history == ["ok"] * 6000
    assert executor.snapshot().window_calls > 900  # about 10 s of successes: a rate of 0.5% at 5 failures
    # A hanging attempt: its 0.5 s attempt timeout fires as fake time reaches it.
    broken = always(unavailable()) if cut == "refused" else Taking(clock, 0.5)
    outage = await steady_traffic(executor, clock, broken, rate=100, seconds=1)
    failed = [type(o) for o in outage[:5]]
    assert failed == [UpstreamUnavailable if cut == "refused" else UpstreamTimeout] * 5
    assert all(isinstance(o, CircuitOpen) for o in outage[5:])


@pytest.mark.parametrize("rate", [1, 10, 1000])
async def test_the_rate_rule_alone_opens_within_half_the_default_window(clock: FakeClock, rate: int) -> None:
    """Run rule off, a total outage after a minute of successes opens it within 5 s at any call rate."""
    executor = make_executor(clock, breaker=BreakerPolicy(consecutive_failures=None))
    await steady_traffic(executor, clock, always("ok"), rate=rate, seconds=60)
    outage = await steady_traffic(executor, clock, always(unavailable()), rate=rate, seconds=8)
    first_refusal = next(n for n, o in enumerate(outage) if isinstance(o, CircuitOpen))
    assert first_refusal / rate <= BreakerPolicy().window / 2 + BreakerPolicy().window / 60


# --- concurrency -----------------------------------------------------------------------------------


async def turns(n: int) -> None:
    """Let the event loop go round ``n`` times (no wall time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)


OUTAGE: list[object] = [http_error(503), unavailable(sent=False), "ok", upstream_timeout(), http_error(429)]
RECOVERY: list[object] = ["ok", http_error(404), "ok", http_error(429), "ok"]


def mixed_attempt(index: int, clock: FakeClock) -> Attempt:
    """Attempt of call ``index`` in the storm: the first 200 calls meet an outage, the rest a
    mostly healthy upstream; each attempt takes a few loop turns and 2ms."""
    answers = OUTAGE if index < 200 else RECOVERY

    async def attempt() -> object:
        await turns(1 + index % 4)
        clock.advance(0.002)
        answer = answers[index % len(answers)]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return attempt


async def test_hundreds_of_concurrent_calls_leak_nothing(clock: FakeClock) -> None:
    """500 overlapping calls with mixed outcomes, retries, trips, trials and cancellations: no bulkhead
    slot, breaker trial or count is lost."""
    retry = replace(RETRY_3, initial_wait=0.005, budget=RetryBudget())
    breaker = replace(PLAIN_BREAKER, threshold=10, failure_rate=0.3, reset_after=0.02, half_open_max_calls=3)
    executor = make_executor(clock, retry=retry, breaker=breaker, max_concurrency=8)
    executor.breaker = counting = CountingBreaker(breaker, clock)
    calls_made = 0

    async def caller(i: int) -> object:
        nonlocal calls_made
        await turns(i // 5)  # five new calls per loop turn
        clock.advance(0.001)
        calls_made += 1
        return await executor.run(f"op{i % 3}", mixed_attempt(i, clock), timeout=1.0, idempotent=i % 2 == 0)

    tasks = [asyncio.create_task(caller(i)) for i in range(500)]
    for turn in range(110):
        await asyncio.sleep(0)
        for task in tasks[turn * 5 : turn * 5 + 5][turn % 4 :: 4]:
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert executor.in_flight == 0
    assert counting.reported == counting.issued > 0
    assert counting.trials_in_flight == 0
    assert all(r == "ok" or isinstance(r, UpstreamError | asyncio.CancelledError) for r in results)
    stats = executor.snapshot()
    assert stats.calls == calls_made
    assert stats.bulkhead_rejected == sum(isinstance(r, BulkheadFull) for r in results) > 0
    assert stats.rejected == sum(isinstance(r, CircuitOpen) for r in results) > 0
    assert stats.successes == results.count("ok") > 0
    assert stats.cancelled == sum(isinstance(r, asyncio.CancelledError) for r in results) > 0
    assert stats.client_errors == sum(
        isinstance(r, UpstreamError) and classify(r) == "success" for r in results
    )
    assert stats.calls == (
        stats.successes
        + stats.failures
        + stats.client_errors
        + stats.rejected
        + stats.bulkhead_rejected
        + stats.cancelled
    )
    assert sum(op.calls for op in stats.operations) == stats.calls


# --- stats -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "counter"),
    [
        pytest.param("ok", "successes", id="result"),
        pytest.param(http_error(503), "failures", id="5xx"),
        pytest.param(unavailable(), "failures", id="refused"),
        pytest.param(http_error(429), "failures", id="429"),
        pytest.param(UpstreamAuthError("no token"), "failures", id="auth-error"),
        pytest.param(KeyError("bug"), "failures", id="bug"),
        pytest.param(http_error(404), "client_errors", id="404"),
        pytest.param(UpstreamGraphQLError("errors"), "client_errors", id="graphql-errors"),
        pytest.param(asyncio.CancelledError(), "cancelled", id="cancelled"),
    ],
)
async def test_every_call_ends_in_exactly_one_class(executor: Executor, answer: object, counter: str) -> None:
    """However a call ends, exactly one of the six classes counts it, per operation too."""
    classes = ("successes", "failures", "client_errors", "rejected", "bulkhead_rejected", "cancelled")
    await asyncio.gather(call(executor, always(answer)), return_exceptions=True)
    stats = executor.snapshot()
    [op] = stats.operations
    expected = {name: int(name == counter) for name in classes}
    assert {name: getattr(stats, name) for name in classes} == expected
    assert {name: getattr(op, name) for name in classes} == expected
    assert stats.calls == op.calls == 1


async def test_calls_add_up_while_some_run_and_some_wait(clock: FakeClock) -> None:
    """Mid-flight, calls = the six classes + in_flight + queued."""
    executor = make_executor(clock, max_concurrency=2, max_queue=2, queue_timeout=5.0)
    hung = [Hanging(), Hanging()]
    running = [asyncio.create_task(call(executor, h)) for h in hung]
    await turns(3)
    waiting = [asyncio.create_task(call(executor, always("ok"))) for _ in range(2)]
    await turns(3)
    await failure_of(executor, always("ok"))  # the line is full
    await turns(3)
    stats = executor.snapshot()
    ended = stats.successes + stats.failures + stats.client_errors + stats.rejected
    ended += stats.bulkhead_rejected + stats.cancelled
    assert (stats.calls, ended, stats.in_flight, stats.queued) == (5, 1, 2, 2)
    for h in hung:
        h.finish()
    await asyncio.gather(*running, *waiting)
    assert executor.snapshot().successes == 4


async def test_fresh_stats_are_empty(executor: Executor) -> None:
    """Before any call every counter is zero, times are None and there are no percentiles."""
    stats = executor.snapshot()
    assert (stats.integration_id, stats.circuit_state, stats.calls, stats.in_flight) == (
        "users",
        "closed",
        0,
        0,
    )
    assert (stats.last_success, stats.last_failure, stats.opened_at, stats.retry_after) == (None,) * 4
    assert stats.latency_ms == LatencySnapshot(None, None, None)
    assert stats.operations == ()


async def test_success_and_failure_are_counted_with_their_time(executor: Executor, clock: FakeClock) -> None:
    """A success sets last_success, a failed call failures and last_failure (wall times)."""
    await call(executor, always("ok"))
    success_at = clock.wall()
    clock.advance(7)
    await failure_of(executor, always(unavailable()))
    stats = executor.snapshot()
    assert (stats.calls, stats.successes, stats.failures) == (2, 1, 1)
    assert (stats.last_success, stats.last_failure) == (success_at, clock.wall())


async def test_an_answered_4xx_is_a_client_error(executor: Executor) -> None:
    """A 404 is not a success for the caller and not a failure of the upstream: a client error."""
    await failure_of(executor, always(http_error(404)))
    stats = executor.snapshot()
    assert (stats.calls, stats.successes, stats.failures, stats.client_errors) == (1, 0, 0, 1)
    assert stats.last_failure is None


async def test_retries_and_timeouts_are_counted_per_attempt(executor: Executor, clock: FakeClock) -> None:
    """retries counts attempts beyond the first; timeouts counts every attempt that timed out."""
    await call(executor, Scripted(http_error(503), Taking(clock, 10), "ok"), timeout=5)
    stats = executor.snapshot()
    assert (stats.retries, stats.timeouts) == (2, 1)
    await failure_of(executor, Taking(clock, 10), timeout=5)
    stats = executor.snapshot()
    assert (stats.calls, stats.retries, stats.timeouts, stats.failures) == (2, 4, 4, 1)


async def test_refusals_are_counted_apart(clock: FakeClock) -> None:
    """Calls refused by the breaker count as rejected, by the bulkhead as bulkhead_rejected."""
    executor = make_executor(clock, max_concurrency=1)
    hung = Hanging()
    task = asyncio.create_task(call(executor, hung))
    await hung.started.wait()
    await failure_of(executor, Scripted())
    hung.finish()
    await task
    trip(executor.breaker)
    await failure_of(executor, Scripted())
    stats = executor.snapshot()
    assert (stats.calls, stats.rejected, stats.bulkhead_rejected, stats.successes) == (3, 1, 1, 1)


async def test_snapshot_shows_the_breaker(executor: Executor, clock: FakeClock) -> None:
    """The snapshot carries circuit state, the window's counts, the run, opened_at and retry_after."""
    record(executor.breaker, "success", "failure", "failure")
    stats = executor.snapshot()
    assert (stats.window_calls, stats.window_failures, stats.consecutive_failures) == (3, 2, 2)
    record(executor.breaker, "failure", "failure", "failure")
    opened = clock.wall()
    clock.advance(10)
    stats = executor.snapshot()
    assert (stats.circuit_state, stats.window_failures, stats.opened_at) == ("open", 5, opened)
    assert stats.retry_after == pytest.approx(20)


async def test_stats_are_kept_per_operation(executor: Executor) -> None:
    """Each operation has its own counters; the integration sums them."""
    await executor.run("getUser", always("ok"), timeout=5, idempotent=True)
    await executor.run("getUser", always("ok"), timeout=5, idempotent=True)
    with pytest.raises(UpstreamUnavailable):
        await executor.run("createUser", always(unavailable(sent=True)), timeout=5, idempotent=False)
    ops = {op.operation_id: op for op in executor.snapshot().operations}
    assert (ops["getUser"].calls, ops["getUser"].successes, ops["getUser"].failures) == (2, 2, 0)
    assert (ops["createUser"].calls, ops["createUser"].successes, ops["createUser"].failures) == (1, 0, 1)


async def test_latency_percentiles_of_whole_calls(executor: Executor, clock: FakeClock) -> None:
    """p50/p95/p99 are nearest-rank percentiles of call latencies in milliseconds."""
    for ms in range(1, 101):
        await call(executor, Taking(clock, ms / 1000))
    latency = executor.snapshot().latency_ms
    assert (latency.p50, latency.p95, latency.p99) == (
        pytest.approx(50),
        pytest.approx(95),
        pytest.approx(99),
    )


async def test_latency_includes_retry_waits(executor: Executor) -> None:
    """A call's latency runs from start to end, waits included (here 1s + 2s of backoff)."""
    await failure_of(executor, always(http_error(503)))
    assert executor.snapshot().latency_ms.p50 == pytest.approx(3000)


def test_reservoir_keeps_only_the_latest_samples() -> None:
    """After more than 1024 samples only the newest 1024 count."""
    reservoir = LatencyReservoir()
    for ms in range(1, 2049):
        reservoir.add(float(ms))
    assert reservoir.snapshot() == LatencySnapshot(p50=1536.0, p95=1997.0, p99=2038.0)
