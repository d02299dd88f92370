"""The bulkhead: a cap on calls in flight, and a bounded line (length and wait) for a slot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aggregator.resilience.bulkhead import Bulkhead
from aggregator.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def lined(clock: FakeClock, *, max_concurrency: int = 1, max_queue: int = 2, wait: float = 5.0) -> Bulkhead:
    return Bulkhead(max_concurrency, max_queue=max_queue, queue_timeout=wait, clock=clock)


async def turns(n: int = 3) -> None:
    """Let the event loop go round ``n`` times (no fake time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_admits_up_to_the_limit_then_refuses() -> None:
    """try_acquire succeeds max_concurrency times, then answers False at once."""
    bulkhead = Bulkhead(2)
    assert [bulkhead.try_acquire() for _ in range(3)] == [True, True, False]
    assert bulkhead.in_flight == 2


def test_release_makes_room_again() -> None:
    """A released slot is available to the next caller."""
    bulkhead = Bulkhead(1)
    bulkhead.try_acquire()
    bulkhead.release()
    assert bulkhead.in_flight == 0
    assert bulkhead.try_acquire()


def test_releasing_more_than_acquired_is_a_bug() -> None:
    """An extra release raises instead of silently raising the limit."""
    with pytest.raises(RuntimeError, match="released more often"):
        Bulkhead(1).release()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        pytest.param({"max_concurrency": 0}, "at least 1", id="no-slot"),
        pytest.param(
            {"max_concurrency": 1, "max_queue": -1, "queue_timeout": 1.0}, "unusable", id="negative-queue"
        ),
        pytest.param({"max_concurrency": 1, "max_queue": 5}, "unusable queue", id="queue-without-wait"),
    ],
)
def test_refuses_an_unusable_limit(limits: dict[str, Any], message: str) -> None:
    """A bulkhead that could admit nothing, or a line nobody could wait in, is a config mistake."""
    with pytest.raises(ValueError, match=message):
        Bulkhead(**limits)


async def test_without_a_queue_excess_calls_are_refused_at_once() -> None:
    """max_queue 0: acquire answers why at once when every slot is taken."""
    bulkhead = Bulkhead(1)
    assert await bulkhead.acquire() is None
    assert await bulkhead.acquire() == "all 1 slots are taken (max_concurrency)"
    assert bulkhead.queued == 0


async def test_a_waiting_call_gets_the_next_freed_slot(clock: FakeClock) -> None:
    """A call that finds every slot taken waits, and takes the slot the next release frees."""
    bulkhead = lined(clock)
    assert await bulkhead.acquire() is None
    waiting = asyncio.create_task(bulkhead.acquire())
    await turns()
    assert (bulkhead.in_flight, bulkhead.queued, waiting.done()) == (1, 1, False)
    bulkhead.release()
    assert await waiting is None
    assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)


async def test_waiting_calls_are_served_in_arrival_order(clock: FakeClock) -> None:
    """Freed slots go to the waiters first come, first served, and a newcomer cannot jump the line."""
    bulkhead = lined(clock, max_queue=3)
    await bulkhead.acquire()
    served: list[int] = []

    async def wait(n: int) -> None:
        assert await bulkhead.acquire() is None
        served.append(n)

    tasks = [asyncio.create_task(wait(n)) for n in range(3)]
    await turns()
    bulkhead.release()
    assert not bulkhead.try_acquire()  # the slot went to the first waiter, not to whoever asks now
    for _ in range(2):
        await turns()
        bulkhead.release()
    await asyncio.gather(*tasks)
    assert served == [0, 1, 2]


async def test_a_full_line_refuses_at_once(clock: FakeClock) -> None:
    """With max_queue calls already waiting, the next one is refused without waiting."""
    bulkhead = lined(clock, max_queue=2)
    await bulkhead.acquire()
    waiting = [asyncio.create_task(bulkhead.acquire()) for _ in range(2)]
    await turns()
    assert await bulkhead.acquire() == "all 1 slots are taken and 2 calls already wait (max_queue)"
    for _ in waiting:
        bulkhead.release()
    assert await asyncio.gather(*waiting) == [None, None]


async def test_a_wait_longer_than_queue_timeout_is_refused(clock: FakeClock) -> None:
    """A waiter still without a slot after queue_timeout leaves the line with the reason."""
    bulkhead = lined(clock, wait=5.0)
    await bulkhead.acquire()
    waiting = asyncio.create_task(bulkhead.acquire())
    await turns()
    clock.advance(4.9)
    await turns()
    assert not waiting.done()
    clock.advance(0.1)
    assert await waiting == "no slot of 1 came free within 5s (queue_timeout)"
    assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)
    bulkhead.release()
    assert bulkhead.in_flight == 0


async def test_a_cancelled_waiter_leaves_the_line(clock: FakeClock) -> None:
    """Cancelling a waiting call takes it out of the line; the freed slot goes to the next one."""
    bulkhead = lined(clock)
    await bulkhead.acquire()
    first, second = asyncio.create_task(bulkhead.acquire()), asyncio.create_task(bulkhead.acquire())
    await turns()
    first.cancel()
    await turns()
    assert bulkhead.queued == 1
    bulkhead.release()
    assert await second is None
    assert bulkhead.in_flight == 1


async def test_a_slot_handed_to_a_cancelled_waiter_passes_on(clock: FakeClock) -> None:
    """A waiter cancelled after it was handed a slot, before it ran, gives the slot to the next."""
    bulkhead = lined(clock)
    await bulkhead.acquire()
    first, second = asyncio.create_task(bulkhead.acquire()), asyncio.create_task(bulkhead.acquire())
    await turns()
    bulkhead.release()  # hands the slot to `first`, which has not run since
    first.cancel()
    assert await second is None
    assert first.cancelled()
    bulkhead.release()
    assert bulkhead.in_flight == 0


async def test_the_peak_of_the_line_is_kept(clock: FakeClock) -> None:
    """queued_peak is the most calls that ever waited at once."""
    bulkhead = lined(clock, max_queue=5)
    await bulkhead.acquire()
    waiting = [asyncio.create_task(bulkhead.acquire()) for _ in range(3)]
    await turns()
    for _ in waiting:
        bulkhead.release()
    await asyncio.gather(*waiting)
    assert (bulkhead.queued, bulkhead.queued_peak) == (0, 3)
