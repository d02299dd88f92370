"""What every HTTP-based upstream (REST, GraphQL) holds: its integration, one ``UpstreamClient`` (made by
``start``, closed by ``stop``), its authenticator and its request-building rules."""

from __future__ import annotations

import httpx

from aggregator.config.models import Integration
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.upstreams.auth import build_authenticator
from aggregator.upstreams.http import UpstreamClient, build_client
from aggregator.upstreams.request import RequestParts
from aggregator.upstreams.tls import ssl_context

__all__ = ["HttpUpstream"]


class HttpUpstream:
    """The shared part of an upstream; subclasses add ``prepare`` and ``send``."""

    def __init__(self, integration: Integration, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._integration = integration
        self.clock = clock
        self._client: UpstreamClient | None = None
        self._auth = build_authenticator(
            integration.auth, client_factory=self._token_client, clock=clock, timeout=integration.timeout
        )
        self._parts = RequestParts(integration)

    async def start(self) -> None:
        """Create the integration's one client: a keep-alive pool as large as its bulkhead."""
        if self._client is None:
            self._client = UpstreamClient(
                max_connections=self._integration.max_concurrency,
                clock=self.clock,
                ssl_context=ssl_context(self._integration.tls),
                follow_redirects=self._integration.follow_redirects,
            )

    async def stop(self) -> None:
        """Close the client (and the token endpoint's); a later ``start`` opens fresh ones."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        await self._auth.aclose()

    def _token_client(self) -> httpx.AsyncClient:
        # Its own small pool: a token fetch must never queue behind the calls that wait for it.
        return build_client(
            timeout=self._integration.timeout,
            max_connections=4,
            ssl_context=ssl_context(self._integration.tls),
        )
