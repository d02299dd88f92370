"""The Starlette application: ``/graphql``, GraphiQL, ``/healthz`` and ``/readyz``.

The schema is built once here; the module's upstream clients start with the app and close with it.
Set ``app.state.draining = True`` when shutdown begins (the CLI does on SIGTERM) so that ``/readyz``
turns 503 and a load balancer stops sending new requests while in-flight ones finish.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from aggregator.config.models import Config
from aggregator.module import IntegrationModule
from aggregator.schema import build_schema
from aggregator.schema.changes import schema_changes
from aggregator.server.graphiql import graphiql_html, graphiql_routes
from aggregator.server.views import GraphQLEndpoint

log = logging.getLogger("aggregator.server")
# Changes named in the log line of a rebuild; the rest are counted.
_CHANGES_SHOWN = 20


class _GatewayApp(Starlette):
    """Starlette, except that ``POST /graphql`` goes straight to the GraphQL endpoint.

    Every request a frontend makes is that one; Starlette's middleware stack and router around it cost
    8-11% of requests/s on one upstream call (measured with bench/). With CORS configured the
    middleware is needed, and every request takes the ordinary path.
    """

    fast_graphql: Callable[[Request], Awaitable[Response]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handle = self.fast_graphql
        if (
            handle is not None
            and scope["type"] == "http"
            and scope["path"] == "/graphql"
            and scope["method"] == "POST"
        ):
            scope["app"] = self
            response = await handle(Request(scope, receive))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(config: Config, *, module: IntegrationModule | None = None) -> Starlette:
    """The gateway for ``config``; pass a ``module`` to share one (tests, embedding), else one is made."""
    module = module or IntegrationModule(config)
    server = config.server
    endpoint = GraphQLEndpoint(
        build_schema(module.typed_config(config), module),
        server,
        graphiql_html("/graphql") if server.graphiql else None,
    )

    def rebuild_schema(*, at_start: bool = False) -> None:
        """An upstream's schema arrived (at start-up or later): its fields become typed.

        A failure is raised at start (nothing is served yet); later the callers log it and the
        previous schema stays. What changed is logged: at INFO at start, at WARNING later, when
        clients may already rely on the previous schema.
        """
        previous = endpoint.schema
        endpoint.schema = build_schema(module.typed_config(config), module)
        app.state.schema = endpoint.schema
        changes = schema_changes(previous._schema, endpoint.schema._schema)
        if changes:
            shown = "; ".join(changes[:_CHANGES_SHOWN])
            more = f"; and {len(changes) - _CHANGES_SHOWN} more" if len(changes) > _CHANGES_SHOWN else ""
            log.log(
                logging.INFO if at_start else logging.WARNING,
                "the gateway's schema was rebuilt with the upstreams' schemas known now: %d change(s): %s%s",
                len(changes),
                shown,
                more,
            )

    module.on_schema_change(rebuild_schema)

    async def healthz(_: Request) -> JSONResponse:
        health = module.health()
        return JSONResponse({"status": health.status, "openCircuits": list(health.open_circuits)})

    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        if state.ready and not state.draining:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "draining" if state.draining else "starting"}, status_code=503)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await module.start()
        # Upstreams that describe themselves at start-up: GraphQL introspection, gRPC reflection.
        if any(i.type == "graphql" or (i.grpc and i.grpc.reflection) for i in config.integrations.values()):
            rebuild_schema(at_start=True)
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            app.state.draining = True
            await module.stop()

    routes: list[BaseRoute] = [
        Route("/graphql", endpoint.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if server.graphiql:
        routes.extend(graphiql_routes())
    middleware = []
    if server.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(server.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["content-type", "authorization", "x-request-id"],
            )
        )
    app = _GatewayApp(routes=routes, middleware=middleware, lifespan=lifespan)
    if not middleware:
        app.fast_graphql = endpoint.handle
    app.state.ready = False
    app.state.draining = False
    app.state.module = module
    app.state.schema = endpoint.schema
    return app
