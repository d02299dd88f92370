"""The bulkhead: a concurrency cap that fails fast and never queues."""

from __future__ import annotations

import pytest

from aggregator.resilience.bulkhead import Bulkhead


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


def test_refuses_a_limit_below_one() -> None:
    """A bulkhead that could admit nothing is a config mistake."""
    with pytest.raises(ValueError, match="at least 1"):
        Bulkhead(0)
