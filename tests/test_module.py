"""IntegrationModule.call: what happens before a call reaches the executor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from builders import integration, operation, param
from servers import serve_asgi
from upstream_apps import Answer, RecordingUpstream

from aggregator.config.models import BreakerPolicy
from aggregator.errors import CircuitOpen, InvalidParams, UpstreamHTTPError
from aggregator.module import IntegrationModule
from aggregator.testing import FakeClock

GET_FILE = operation("getFile", path="/files/{name}", params=(param("name", "String!", "path"),))
TRIPS_AT_ONCE = BreakerPolicy(threshold=1, failure_rate=0.0, reset_after=60.0)


@pytest.fixture(scope="module")
def recording_server() -> Iterator[RecordingUpstream]:
    recorder = RecordingUpstream()
    with serve_asgi(recorder) as recorder.url:
        yield recorder


@pytest.fixture
def upstream(recording_server: RecordingUpstream) -> RecordingUpstream:
    """A loopback upstream answering 503 to everything; it records what reached it."""
    recording_server.reset(Answer(503))
    return recording_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def tripped(upstream: RecordingUpstream, clock: FakeClock) -> AsyncIterator[IntegrationModule]:
    """A module whose integration's breaker has just opened (one failed call reached the upstream)."""
    module = IntegrationModule(clock=clock)
    module.register(integration(upstream.url, GET_FILE, circuit_breaker=TRIPS_AT_ONCE))
    async with module:
        with pytest.raises(UpstreamHTTPError):
            await module.call("users", "getFile", {"name": "a"})
        yield module


async def test_an_open_breaker_refuses_before_the_params_are_placed(
    tripped: IntegrationModule, upstream: RecordingUpstream
) -> None:
    """Open: even a param prepare() would refuse (an empty path segment) gets CIRCUIT_OPEN, nothing is
    sent, and the refusal is counted; refusals are the cheap path while an upstream is down."""
    with pytest.raises(CircuitOpen) as refused:
        await tripped.call("users", "getFile", {"name": ""})
    error = refused.value
    assert (error.integration, error.operation, error.attempts) == ("users", "getFile", 0)
    assert len(upstream.received) == 1
    assert tripped.stats("users").rejected == 1


async def test_a_half_open_breaker_lets_the_params_be_checked_first(
    tripped: IntegrationModule, clock: FakeClock
) -> None:
    """Half-open (a trial is due): the call is prepared as usual, so bad params are INVALID_PARAMS."""
    clock.advance(TRIPS_AT_ONCE.reset_after)
    with pytest.raises(InvalidParams):
        await tripped.call("users", "getFile", {"name": ""})
