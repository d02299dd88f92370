"""In-flight deduplication in the module: identical idempotent query calls running at once reach the
upstream once; calls that differ in what the upstream would see, or that may change something there,
never share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest
from builders import integration, operation, param
from gateway import Directory, serve_gateway
from servers import read_request, serve_asgi, serve_raw

from aggregator.config.models import Operation
from aggregator.errors import UpstreamHTTPError
from aggregator.module import IntegrationModule

GET_USER = operation("getUser", path="/users/{id}", params=(param("id", "ID!", "path"),))
SEARCH = operation("search", method="POST", path="/search", params=(param("q", "String", "body"),))
DELETE_USER = replace(
    operation("deleteUser", method="DELETE", path="/users/{id}", params=(param("id", "ID!", "path"),)),
    kind="mutation",
)
ARRIVAL_SECONDS = 10


@dataclass(frozen=True)
class Arrived:
    path: str
    headers: Mapping[str, str]  # names lower-cased


class GatedUpstream:
    """A loopback HTTP upstream on the test's loop: it records every request as it arrives and holds
    every answer until the test opens the gate, then answers ``status`` with ``{"path": ...}``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[Arrived] = []
        self.gate = asyncio.Event()
        self.arrivals: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # one keep-alive connection, request after request
            request_line, *lines = (await read_request(reader)).decode("latin-1").split("\r\n")
            fields = (line.partition(":") for line in lines if line)
            path = request_line.split(" ")[1]
            self.requests.append(Arrived(path, {name.lower(): value.strip() for name, _, value in fields}))
            self.arrivals.put_nowait(None)
            await self.gate.wait()
            body = orjson.dumps({"path": path})
            head = (
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            )
            writer.write(f"{head}\r\n\r\n".encode() + body)


@pytest.fixture
def upstream() -> GatedUpstream:
    return GatedUpstream()


@pytest.fixture
async def module(upstream: GatedUpstream) -> AsyncIterator[IntegrationModule]:
    async with serve_raw(upstream) as url:
        built = IntegrationModule()
        built.register(
            integration(url, GET_USER, SEARCH, DELETE_USER, forward_headers=("Authorization", "X-Tenant"))
        )
        async with built:
            yield built


async def together(
    module: IntegrationModule,
    upstream: GatedUpstream,
    calls: list[tuple[Operation, dict[str, Any], Mapping[str, str]]],
    *,
    reaching: int,
) -> list[Any]:
    """Start every call; once ``reaching`` requests have arrived (the rest joined them), answer: their
    outcomes. A request sent beyond those is still recorded before its call can finish."""
    tasks = [
        asyncio.create_task(module.call("users", op.id, params, headers=headers))
        for op, params, headers in calls
    ]
    async with asyncio.timeout(ARRIVAL_SECONDS):
        for _ in range(reaching):
            await upstream.arrivals.get()
    upstream.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_identical_query_calls_in_flight_reach_the_upstream_once(
    module: IntegrationModule, upstream: GatedUpstream
) -> None:
    """Three callers of the same query with the same params: one request, one shared answer."""
    results = await together(module, upstream, [(GET_USER, {"id": "1"}, {})] * 3, reaching=1)
    assert len(upstream.requests) == 1
    assert results == [{"path": "/users/1"}] * 3


async def test_calls_differing_only_in_request_id_are_shared(
    module: IntegrationModule, upstream: GatedUpstream
) -> None:
    """X-Request-Id is forwarded but not part of what makes a call: the first caller's id is sent."""
    calls = [(GET_USER, {"id": "1"}, {"X-Request-Id": rid}) for rid in ("first", "second")]
    await together(module, upstream, calls, reaching=1)
    (request,) = upstream.requests
    assert request.headers["x-request-id"] == "first"


@pytest.mark.parametrize("header", ["Authorization", "X-Tenant"])
async def test_callers_with_different_forwarded_headers_never_share(
    module: IntegrationModule, upstream: GatedUpstream, header: str
) -> None:
    """Two users' credentials (or any forwarded header) make two calls, each with its own value."""
    calls = [(GET_USER, {"id": "1"}, {header: value}) for value in ("alice", "bob")]
    await together(module, upstream, calls, reaching=2)
    assert sorted(r.headers[header.lower()] for r in upstream.requests) == ["alice", "bob"]


async def test_callers_with_the_same_credentials_share(
    module: IntegrationModule, upstream: GatedUpstream
) -> None:
    """The same forwarded credentials (header names in any case) are the same call."""
    calls = [
        (GET_USER, {"id": "1"}, {"Authorization": "Bearer alice"}),
        (GET_USER, {"id": "1"}, {"authorization": "Bearer alice"}),
    ]
    await together(module, upstream, calls, reaching=1)
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("op", "params"),
    [
        pytest.param(DELETE_USER, {"id": "1"}, id="mutation"),
        pytest.param(SEARCH, {"q": "x"}, id="not-idempotent"),
    ],
)
async def test_mutations_and_non_idempotent_calls_are_never_shared(
    module: IntegrationModule, upstream: GatedUpstream, op: Operation, params: dict[str, Any]
) -> None:
    """A call that may change something upstream is made once per caller, even when identical."""
    await together(module, upstream, [(op, params, {})] * 2, reaching=2)
    assert len(upstream.requests) == 2


async def test_calls_with_different_params_are_not_shared(
    module: IntegrationModule, upstream: GatedUpstream
) -> None:
    """Different params are different calls."""
    calls = [(GET_USER, {"id": "1"}, {}), (GET_USER, {"id": "2"}, {})]
    await together(module, upstream, calls, reaching=2)
    assert sorted(r.path for r in upstream.requests) == ["/users/1", "/users/2"]


async def test_a_shared_failure_reaches_every_caller(
    module: IntegrationModule, upstream: GatedUpstream
) -> None:
    """The one failed call fails every caller with the same error code and status."""
    upstream.status = 503
    outcomes = await together(module, upstream, [(GET_USER, {"id": "1"}, {})] * 2, reaching=1)
    assert len(upstream.requests) == 1
    assert [(type(e), e.status, e.operation) for e in outcomes] == [(UpstreamHTTPError, 503, "getUser")] * 2


def test_identical_fields_of_one_request_make_one_upstream_call() -> None:
    """Per-request memoisation: two aliases of the same call in one query reach the upstream once."""
    directory = Directory()
    config = """
integrations:
  users:
    base_url: {url}
    operations:
      getUser: {{path: "/users/{{id}}", params: {{id: "ID!"}}}}
"""
    with serve_asgi(directory.app) as url, serve_gateway(config.format(url=url)) as gateway:
        body = gateway.query('{ a: users_getUser(id: "1") b: users_getUser(id: "1") }')
    assert body["data"]["a"] == body["data"]["b"]
    assert body["data"]["a"]["name"] == "Ada"
    assert len(directory.requests) == 1
