"""The module API: integrations registered by id, each call run through its integration's executor.

Identical idempotent query calls made while one of them is running share it (see ``_flight_key`` for
what makes calls identical); mutations are never shared. Within one GraphQL request that also covers
memoisation: its upstream calls are all root fields, which start together.

This is what the GraphQL resolvers call and what a library user imports::

    module = IntegrationModule(load_config("integrations.yaml"))
    async with module:
        user = await module.call("users", "getUser", {"id": "42"})
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal, Protocol

import httpx
import orjson

from aggregator.config.models import Config, Integration, Operation
from aggregator.errors import UnknownOperation
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.resilience.executor import Executor
from aggregator.resilience.singleflight import SingleFlight
from aggregator.resilience.stats import IntegrationStatsSnapshot
from aggregator.upstreams.graphql import GraphQLUpstream
from aggregator.upstreams.graphql_types import derive
from aggregator.upstreams.request import REQUEST_ID_HEADER
from aggregator.upstreams.rest import RestUpstream

log = logging.getLogger("aggregator.module")

_NOT_IN_KEY = frozenset({REQUEST_ID_HEADER.lower()})


class Upstream(Protocol):
    """One kind of upstream (REST, GraphQL): turns params into a request and sends one attempt."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def prepare(
        self, operation: Operation, params: Mapping[str, Any], *, forwarded_headers: Mapping[str, str] | None
    ) -> Any: ...

    async def send(self, request: Any) -> Any: ...


@dataclass(frozen=True)
class Health:
    status: Literal["healthy", "degraded"]
    open_circuits: tuple[str, ...]


class _Entry:
    __slots__ = ("executor", "flights", "integration", "started", "upstream")

    def __init__(self, integration: Integration, upstream: Upstream, executor: Executor) -> None:
        self.integration = integration
        self.upstream = upstream
        self.executor = executor
        self.flights: SingleFlight[Any] = SingleFlight()
        self.started = False


def _flight_key(op: Operation, params: Mapping[str, Any], request: Any) -> Hashable | None:
    """What makes two calls of an integration one: the operation, its params and the incoming
    headers forwarded with it, credentials included, so callers with different credentials never
    share a call. ``X-Request-Id`` is left out (it is forwarded always, and differs on every
    request): a shared call carries the id of the request that started it.

    None for a call that is never shared: a mutation, an operation not declared idempotent, or
    params that are not plain JSON.
    """
    if op.kind != "query" or not op.idempotent:
        return None
    try:
        encoded = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    names = request.forwarded - _NOT_IN_KEY
    if not names:
        return (op.id, encoded)
    forwarded = sorted((k.lower(), v) for k, v in request.headers.items() if k.lower() in names)
    return (op.id, encoded, tuple(forwarded))


def _make_upstream(
    integration: Integration, *, clock: Clock, transport: httpx.AsyncBaseTransport | None
) -> Upstream:
    if integration.type == "rest":
        return RestUpstream(integration, transport=transport, clock=clock)
    if integration.type == "graphql":
        return GraphQLUpstream(integration, transport=transport, clock=clock)
    raise ValueError(f"integration {integration.id!r}: type {integration.type!r} is not supported yet")


class IntegrationModule:
    """Integrations by id, their upstream clients and executors; start() before calls, stop() after."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self._transport = transport
        self._entries: dict[str, _Entry] = {}
        self._running = False
        for integration in config.integrations.values() if config else ():
            self.register(integration)

    def register(self, integration: Integration) -> None:
        """Add an integration; one registered while running starts on its first call."""
        if integration.id in self._entries:
            raise ValueError(f"integration {integration.id!r} is already registered")
        upstream = _make_upstream(integration, clock=self._clock, transport=self._transport)
        executor = Executor(
            integration.id,
            retry=integration.retry,
            breaker=integration.circuit_breaker,
            max_concurrency=integration.max_concurrency,
            clock=self._clock,
        )
        self._entries[integration.id] = _Entry(integration, upstream, executor)

    @property
    def integrations(self) -> Mapping[str, Integration]:
        return {key: entry.integration for key, entry in self._entries.items()}

    async def start(self) -> None:
        self._running = True
        for entry in self._entries.values():
            await self._start(entry)

    async def stop(self) -> None:
        self._running = False
        for entry in self._entries.values():
            if entry.started:
                entry.started = False
                await entry.upstream.stop()

    async def __aenter__(self) -> IntegrationModule:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _start(self, entry: _Entry) -> None:
        if not entry.started:
            entry.started = True
            await entry.upstream.start()

    async def call(
        self,
        integration_id: str,
        operation: str,
        params: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call one operation through the resilient executor; ``headers`` are the incoming request's,
        of which the integration's ``forward_headers`` reach the upstream."""
        entry = self._entries.get(integration_id)
        op = entry.integration.operations.get(operation) if entry else None
        if entry is None or op is None:
            raise UnknownOperation(f"no operation {operation!r} in integration {integration_id!r}")
        if not entry.started:
            if not self._running:
                raise RuntimeError("IntegrationModule.start() must be awaited before calls")
            await self._start(entry)
        # An open breaker answers before the params are placed: nothing would be sent either way.
        refused = entry.executor.refusal(op.id)
        if refused is not None:
            raise refused
        params = params or {}
        request = entry.upstream.prepare(op, params, forwarded_headers=headers)
        send, executor = entry.upstream.send, entry.executor

        def run() -> Awaitable[Any]:
            return executor.run(
                op.id, lambda: send(request), timeout=op.timeout, idempotent=request.idempotent
            )

        key = _flight_key(op, params, request)
        if key is None:
            return await run()
        return await entry.flights.run(key, run)

    def stats(self, integration_id: str) -> IntegrationStatsSnapshot:
        entry = self._entries.get(integration_id)
        if entry is None:
            raise UnknownOperation(f"no integration {integration_id!r}")
        return entry.executor.snapshot()

    def all_stats(self) -> list[IntegrationStatsSnapshot]:
        return [entry.executor.snapshot() for entry in self._entries.values()]

    def on_schema_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a GraphQL upstream's schema becomes known after start-up."""
        for entry in self._entries.values():
            if isinstance(entry.upstream, GraphQLUpstream):
                entry.upstream.on_schema(callback)

    def typed_config(self, config: Config) -> Config:
        """``config`` plus the types derived from the GraphQL upstreams' schemas known now.

        Operations that left ``returns`` out get a type derived from their selection set; a document
        that does not validate against its upstream's schema is logged and keeps JSON.
        """
        types = dict(config.types)
        integrations = dict(config.integrations)
        for key, entry in self._entries.items():
            upstream = entry.upstream
            if (
                not isinstance(upstream, GraphQLUpstream)
                or upstream.schema is None
                or key not in integrations
            ):
                continue
            derived = derive(entry.integration, upstream.schema, types)
            for problem in derived.problems:
                log.error("operation document does not match the upstream's schema: %s", problem)
            types.update(derived.types)
            operations = {
                op_id: replace(op, returns=derived.returns[op_id]) if op_id in derived.returns else op
                for op_id, op in entry.integration.operations.items()
            }
            integrations[key] = replace(entry.integration, operations=operations)
        return replace(config, types=types, integrations=integrations)

    def health(self) -> Health:
        """Healthy when every breaker is closed; otherwise degraded, naming the integrations that are not."""
        not_closed = tuple(
            key for key, entry in self._entries.items() if entry.executor.breaker.state != "closed"
        )
        return Health("degraded" if not_closed else "healthy", not_closed)
