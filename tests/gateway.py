"""The gateway under test, served for real on loopback, and a directory upstream for it to aggregate.

``serve_gateway(yaml_text)`` loads the text as integrations.yaml, serves ``create_app`` with its
lifespan under uvicorn and yields a ``Gateway`` with a synchronous httpx client; ``Directory`` is a
small REST upstream whose failure mode a test can switch and whose requests it can inspect.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from servers import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aggregator.config import Config, loads
from aggregator.server.app import create_app

__all__ = ["Directory", "Gateway", "serve_config", "serve_gateway"]

USERS = {
    "1": {
        "id": "1",
        "name": "Ada",
        "email": "ada@example.com",
        "address": {"city": "London", "zip": "N1"},
        "tags": ["admin"],
        "internal_note": "not declared, never exposed",
    },
    "2": {"id": "2", "name": "Grace", "address": None, "tags": []},
}


class Directory:
    """A REST upstream: users, a search, a create endpoint, and a switchable failure mode."""

    def __init__(self) -> None:
        self.failing = False
        self.requests: list[dict[str, Any]] = []
        self.created: list[Any] = []
        # Sibling-field concurrency: requests to /rendezvous wait until `expected` are in flight.
        self.expected = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._arrived: asyncio.Event | None = None
        self.app = Starlette(
            routes=[
                Route("/users/{id}", self._user),
                Route("/users", self._search, methods=["GET"]),
                Route("/users", self._create, methods=["POST"]),
                Route("/rendezvous/{n}", self._rendezvous),
                Route("/health", self._health),
            ]
        )

    def _record(self, request: Request, body: Any = None) -> None:
        self.requests.append(
            {
                "path": request.url.path,
                "query": list(request.query_params.multi_items()),
                "headers": dict(request.headers),
                "body": body,
            }
        )

    async def _user(self, request: Request) -> Response:
        self._record(request)
        if self.failing:
            return JSONResponse({"error": "database on fire"}, status_code=500)
        user = USERS.get(request.path_params["id"])
        return JSONResponse(user) if user else JSONResponse({"error": "no such user"}, status_code=404)

    async def _search(self, request: Request) -> Response:
        self._record(request)
        tags = request.query_params.getlist("tag")
        active = request.query_params.get("active")
        found = [u for u in USERS.values() if not tags or set(tags) & set(u["tags"])]
        return JSONResponse({"users": found, "active": active, "tags": tags})

    async def _create(self, request: Request) -> Response:
        body = await request.json()
        self._record(request, body)
        self.created.append(body)
        return JSONResponse({"id": str(100 + len(self.created)), **body}, status_code=201)

    async def _rendezvous(self, request: Request) -> Response:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            if self._arrived is None:
                self._arrived = asyncio.Event()
            arrived = self._arrived
            if self._in_flight >= self.expected:
                arrived.set()
        # Answer when all siblings are here, or after a generous bound if they never come.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), timeout=5)
        with self._lock:
            self._in_flight -= 1
        return JSONResponse({"n": int(request.path_params["n"]), "together": self.max_in_flight})

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


class Gateway:
    def __init__(self, url: str, app: Starlette) -> None:
        self.url = url
        self.app = app
        self.http = httpx.Client(base_url=url, timeout=30)

    def query(self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """POST a GraphQL request and return the decoded response body."""
        response = self.http.post("/graphql", json={"query": query, "variables": variables}, **kwargs)
        body: dict[str, Any] = response.json()
        return body


@contextlib.contextmanager
def serve_gateway(
    config_text: str, *, base_dir: Path | None = None, startup_seconds: float = 10.0
) -> Iterator[Gateway]:
    with serve_config(loads(config_text, base_dir=base_dir), startup_seconds=startup_seconds) as gateway:
        yield gateway


@contextlib.contextmanager
def serve_config(config: Config, *, startup_seconds: float = 10.0) -> Iterator[Gateway]:
    """The gateway for an already loaded config, served with its lifespan (a start-up longer than
    ``startup_seconds`` fails)."""
    app = create_app(config)
    with serve_asgi(app, lifespan="on", startup_seconds=startup_seconds) as url:
        gateway = Gateway(url, app)
        try:
            yield gateway
        finally:
            gateway.http.close()
