"""SingleFlight in isolation: calls of one key made while it runs share it, and nothing outlives it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from aggregator.errors import UpstreamHTTPError, UpstreamUnavailable
from aggregator.resilience.singleflight import SingleFlight


class Gated:
    """A call that counts its runs and finishes when the test opens the gate."""

    def __init__(self, result: object = "result", error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.runs = 0
        self.gate = asyncio.Event()

    async def __call__(self) -> object:
        self.runs += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def settle() -> None:
    """Let every ready task run until it waits (a few loop turns; no wall-clock time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def started(
    flights: SingleFlight[object], key: str, call: Callable[[], Awaitable[object]], count: int = 1
) -> list[asyncio.Task[object]]:
    """``count`` callers of ``key``, each run up to the point where it waits."""
    tasks = [asyncio.create_task(flights.run(key, call)) for _ in range(count)]
    await settle()
    return tasks


async def test_callers_of_a_key_in_flight_share_one_run_and_its_result() -> None:
    """Three callers while the first runs: one run, the same result object for all."""
    flights: SingleFlight[object] = SingleFlight()
    call = Gated(result={"id": "1"})
    tasks = await started(flights, "k", call, count=3)
    call.gate.set()
    results = await asyncio.gather(*tasks)
    assert call.runs == 1
    assert all(result is results[0] for result in results)


async def test_different_keys_run_separately() -> None:
    """Only equal keys share: two keys, two runs."""
    flights: SingleFlight[object] = SingleFlight()
    call = Gated()
    tasks = [*await started(flights, "a", call), *await started(flights, "b", call)]
    call.gate.set()
    await asyncio.gather(*tasks)
    assert call.runs == 2


async def test_a_finished_call_is_not_reused() -> None:
    """Nothing is cached: a caller arriving after the run ended makes a fresh run."""
    flights: SingleFlight[object] = SingleFlight()
    call = Gated()
    call.gate.set()
    await flights.run("k", call)
    await flights.run("k", call)
    assert call.runs == 2
    assert flights.in_flight == 0


@pytest.mark.parametrize(
    "error",
    [
        UpstreamHTTPError("upstream answered HTTP 503", status=503, integration="i", attempts=2),
        UpstreamUnavailable("connection broke", sent=True),
    ],
)
async def test_every_caller_gets_the_error_as_its_own_copy(error: Exception) -> None:
    """A failed run fails every caller with an equal error; joiners get copies, so no two tasks
    raise (and grow the traceback of) one exception object."""
    flights: SingleFlight[object] = SingleFlight()
    call = Gated(error=error)
    leader, joiner = await started(flights, "k", call, count=2)
    call.gate.set()
    outcomes = await asyncio.gather(leader, joiner, return_exceptions=True)
    assert outcomes[0] is error
    assert type(outcomes[1]) is type(error)
    assert outcomes[1] is not error
    assert vars(outcomes[1]) == vars(error)
    assert str(outcomes[1]) == str(error)


async def test_a_cancelled_joiner_leaves_the_call_running_for_the_others() -> None:
    """Cancelling one waiting caller neither cancels the run nor the other callers."""
    flights: SingleFlight[object] = SingleFlight()
    call = Gated()
    leader, quitter, stayer = await started(flights, "k", call, count=3)
    quitter.cancel()
    await settle()
    call.gate.set()
    assert await asyncio.gather(leader, stayer) == ["result", "result"]
    assert quitter.cancelled()
    assert call.runs == 1


async def test_when_the_leader_is_cancelled_its_joiners_start_over() -> None:
    """The cancelled leader's run stops as it would alone; a joiner becomes the new leader and the
    others share its run."""
    flights: SingleFlight[object] = SingleFlight()
    first, second = Gated(), Gated(result="second run")
    (leader,) = await started(flights, "k", first)
    joiners = await started(flights, "k", second, count=2)
    leader.cancel()
    await settle()
    second.gate.set()
    assert await asyncio.gather(*joiners) == ["second run", "second run"]
    assert leader.cancelled()
    assert (first.runs, second.runs) == (1, 1)
