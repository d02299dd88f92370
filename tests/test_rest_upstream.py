"""RestUpstream end to end against real HTTP servers on loopback: error statuses, body limits, connection
reuse, a network that misbehaves, and secrets in errors (test_rest_calls.py: params, headers, answers)."""

from __future__ import annotations

import asyncio
from email.utils import formatdate
from typing import Any

import pytest
from builders import integration, operation, param
from conftest import StartUpstream
from servers import closed_port_url, drip, never_answer, reset_mid_body, serve_raw

from aggregator.config.models import ApiKeyAuth, Auth, BasicAuth, BearerAuth, Operation, Secret
from aggregator.errors import (
    RateLimited,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.testing import FakeClock
from aggregator.upstreams.rest import RestUpstream

MIB = 1024 * 1024


async def call(upstream: RestUpstream, op: Operation, params: dict[str, Any] | None = None) -> Any:
    return await upstream.send(upstream.prepare(op, params or {}))


async def failure(
    upstream: RestUpstream, op: Operation, params: dict[str, Any] | None = None
) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await call(upstream, op, params)
    return caught.value


# --- how answers come back -------------------------------------------------------------------------


async def test_404_is_an_http_error_with_status_and_excerpt(
    start_upstream: StartUpstream, behaviour_url: str
) -> None:
    """A 404 is UPSTREAM_HTTP_ERROR carrying the status and the body's excerpt."""
    op = operation(path="/status/404", params=(param("body"),))
    upstream = await start_upstream(integration(behaviour_url, op))
    error = await failure(upstream, op, {"body": "no such user"})
    assert isinstance(error, UpstreamHTTPError)
    assert (error.code, error.status, error.body) == ("UPSTREAM_HTTP_ERROR", 404, "no such user")


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_is_rate_limited_with_retry_after(
    start_upstream: StartUpstream, behaviour_url: str, form: str
) -> None:
    """A 429 is RATE_LIMITED; its Retry-After, in seconds or as an HTTP date, becomes retry_after."""
    clock = FakeClock()
    header = "90" if form == "seconds" else formatdate(clock.wall() + 90, usegmt=True)
    op = operation(path="/status/429", params=(param("retry_after"),))
    upstream = await start_upstream(integration(behaviour_url, op), clock=clock)
    error = await failure(upstream, op, {"retry_after": header})
    assert isinstance(error, RateLimited)
    assert (error.code, error.status, error.retry_after) == ("RATE_LIMITED", 429, 90.0)


@pytest.mark.parametrize("declared", ["1", "0"])
@pytest.mark.parametrize(("size", "accepted"), [(10 * MIB, True), (10 * MIB + 1, False)])
async def test_body_over_max_response_bytes_is_refused(
    start_upstream: StartUpstream, behaviour_url: str, declared: str, size: int, accepted: bool
) -> None:
    """Up to 10 MiB is read; one byte more, with or without Content-Length, is UPSTREAM_BAD_RESPONSE."""
    op = operation(path="/big", params=(param("size", "Int!"), param("declared")))
    upstream = await start_upstream(integration(behaviour_url, op))
    if accepted:
        assert len(await call(upstream, op, {"size": size, "declared": declared})) == size - 2
    else:
        error = await failure(upstream, op, {"size": size, "declared": declared})
        assert isinstance(error, UpstreamBadResponse)
        assert error.detail == f"response over {10 * MIB} bytes"


async def test_sequential_calls_share_one_connection(
    start_upstream: StartUpstream, behaviour_url: str
) -> None:
    """The integration's one client keeps its connection alive: sequential calls use one connection."""
    op = operation(path="/x")
    upstream = await start_upstream(integration(f"{behaviour_url}/echo", op))
    ports = {(await call(upstream, op))["client_port"] for _ in range(5)}
    assert len(ports) == 1


# --- when the network misbehaves -----------------------------------------------------------------------


async def test_connection_refused_is_unavailable_and_not_sent(start_upstream: StartUpstream) -> None:
    """A port with no listener is UPSTREAM_UNAVAILABLE with sent=False (safe to retry for any method)."""
    op = operation(method="POST")
    upstream = await start_upstream(integration(closed_port_url(), op))
    error = await failure(upstream, op)
    assert isinstance(error, UpstreamUnavailable)
    assert (error.code, error.sent) == ("UPSTREAM_UNAVAILABLE", False)


async def test_reset_mid_body_is_unavailable_after_sending(start_upstream: StartUpstream) -> None:
    """A connection reset halfway through the body is UPSTREAM_UNAVAILABLE with sent=True."""
    op = operation()
    async with serve_raw(reset_mid_body(declared=1000, sent=b'{"id": "')) as url:
        upstream = await start_upstream(integration(url, op))
        error = await failure(upstream, op)
    assert isinstance(error, UpstreamUnavailable)
    assert (error.code, error.sent) == ("UPSTREAM_UNAVAILABLE", True)


async def test_slow_drip_body_is_cut_by_the_attempt_timeout(start_upstream: StartUpstream) -> None:
    """A body dripping a byte every 50ms never trips httpx's per-read timeout; the attempt timeout
    around send() still ends it, and the connection is closed."""
    op = operation(timeout=5.0)
    disconnected = asyncio.Event()
    async with serve_raw(
        drip(b'{"id": "' + b"x" * 200 + b'"}', interval=0.05, disconnected=disconnected)
    ) as url:
        upstream = await start_upstream(integration(url, op))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await call(upstream, op)
        async with asyncio.timeout(5):
            await disconnected.wait()


async def test_silent_upstream_times_out_as_upstream_timeout(start_upstream: StartUpstream) -> None:
    """A server that accepts and never answers trips httpx's read timeout (the operation's timeout)."""
    op = operation(timeout=0.3)
    async with serve_raw(never_answer()) as url:
        upstream = await start_upstream(integration(url, op))
        error = await failure(upstream, op)
    assert isinstance(error, UpstreamTimeout)


# --- secrets -----------------------------------------------------------------------------------------

SECRET = "s3cr3t-Value/+1"
HEADER_SECRET = "h3ader-Value"


@pytest.mark.parametrize(
    "auth",
    [
        BearerAuth(token=Secret(SECRET)),
        ApiKeyAuth(key=Secret(SECRET)),
        ApiKeyAuth(key=Secret(SECRET), location="query", name="key"),
        BasicAuth(username="ada", password=Secret(SECRET)),
    ],
    ids=["bearer", "api_key-header", "api_key-query", "basic"],
)
async def test_secret_never_appears_in_an_error(
    start_upstream: StartUpstream, behaviour_url: str, auth: Auth
) -> None:
    """An upstream echoing credentials and URL back: str, repr, body and extensions of the error show ***."""
    op = operation(path="/leak")
    upstream = await start_upstream(
        integration(behaviour_url, op, auth=auth, headers={"X-Secret": Secret(HEADER_SECRET)})
    )
    error = await failure(upstream, op)
    assert isinstance(error, UpstreamHTTPError)
    assert "***" in error.body
    for text in (str(error), repr(error), error.body, str(error.extensions), str(error.args)):
        assert SECRET not in text
        assert "s3cr3t" not in text
        assert HEADER_SECRET not in text
