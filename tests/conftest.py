"""Shared fixtures: real loopback upstreams, and RestUpstreams that are always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from node_servers import NodeGraphQLServer, graphql_server
from servers import serve_asgi
from upstream_apps import OAuthServer, behaviour_app

from aggregator.config.models import Integration
from aggregator.upstreams.rest import RestUpstream

StartUpstream = Callable[..., Awaitable[RestUpstream]]
SCHEMAS = Path(__file__).parent / "schemas"


@pytest.fixture(scope="session")
def behaviour_url() -> Iterator[str]:
    """The base URL of a shared ``upstream_apps.behaviour_app`` (stateless, so one per session)."""
    with serve_asgi(behaviour_app()) as url:
        yield url


@pytest.fixture(scope="module")
def repos_upstream() -> Iterator[NodeGraphQLServer]:
    """graphql-yoga serving tests/schemas/repos.graphql with mocks; its license service is down."""
    with graphql_server(SCHEMAS / "repos.graphql", mocks=SCHEMAS / "repos_mocks.mjs") as server:
        yield server


@pytest.fixture
def oauth_server() -> Iterator[OAuthServer]:
    """A fresh token endpoint + protected API per test: its counters start at zero."""
    server = OAuthServer()
    with serve_asgi(server.app) as url:
        server.url = url
        yield server


@pytest.fixture
async def start_upstream() -> AsyncIterator[StartUpstream]:
    """``await start_upstream(integration, **kwargs)``: a started RestUpstream, stopped after the test."""
    started: list[RestUpstream] = []

    async def start(integration: Integration, **kwargs: Any) -> RestUpstream:
        upstream = RestUpstream(integration, **kwargs)
        await upstream.start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.stop()
