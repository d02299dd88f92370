"""The module API: integrations registered by id, each call run through its integration's executor.

Identical idempotent query calls made while one of them is running share it (see
``upstreams.contract.flight_key`` for what makes calls identical); mutations are never shared.
Within one GraphQL request that also covers memoisation: its upstream calls are all root fields,
which start together.

This is what the GraphQL resolvers call and what a library user imports::

    module = IntegrationModule(load_config("integrations.yaml"))
    async with module:
        user = await module.call("users", "getUser", {"id": "42"})
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal

from aggregator.config.models import Config, Integration
from aggregator.errors import UnknownOperation
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.resilience.executor import Executor
from aggregator.resilience.singleflight import SingleFlight
from aggregator.resilience.stats import IntegrationStatsSnapshot
from aggregator.upstreams.contract import Upstream
from aggregator.upstreams.kinds import make_upstream
from aggregator.upstreams.selection import ClientSelection


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


class IntegrationModule:
    """Integrations by id, their upstream clients and executors; start() before calls, stop() after."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._running = False
        for integration in config.integrations.values() if config else ():
            self.register(integration)

    def register(self, integration: Integration) -> None:
        """Add an integration; one registered while running starts on its first call."""
        if integration.id in self._entries:
            raise ValueError(f"integration {integration.id!r} is already registered")
        upstream = make_upstream(integration, clock=self._clock)
        executor = Executor(
            integration.id,
            retry=integration.retry,
            breaker=integration.circuit_breaker,
            max_concurrency=integration.max_concurrency,
            max_queue=integration.max_queue,
            queue_timeout=integration.queue_timeout,
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
        selection: ClientSelection | None = None,
    ) -> Any:
        """Call one operation through the resilient executor; ``headers`` are the incoming request's,
        of which the integration's ``forward_headers`` reach the upstream. ``selection`` is what the
        client selected below the operation's field: a GraphQL upstream is sent only that."""
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
        call = entry.upstream.prepare(op, params, forwarded_headers=headers, selection=selection)
        executor = entry.executor

        def run() -> Awaitable[Any]:
            return executor.run(op.id, call.attempt, timeout=op.timeout, idempotent=call.idempotent)

        key = call.flight_key()
        if key is None:
            return await run()
        return await entry.flights.run(key, run)

    def keep_fields(self, integration_id: str, operation_id: str, paths: Iterable[Sequence[str]]) -> None:
        """Always fetch these paths of response keys below the operation's field, whatever the client
        selected: fields the gateway reads itself (a join's keys). Errors at them never reach the
        client unless it selected them too."""
        entry = self._entries.get(integration_id)
        if entry is None or operation_id not in entry.integration.operations:
            raise UnknownOperation(f"no operation {operation_id!r} in integration {integration_id!r}")
        entry.upstream.keep_fields(operation_id, paths)

    def stats(self, integration_id: str) -> IntegrationStatsSnapshot:
        entry = self._entries.get(integration_id)
        if entry is None:
            raise UnknownOperation(f"no integration {integration_id!r}")
        return entry.executor.snapshot()

    def all_stats(self) -> list[IntegrationStatsSnapshot]:
        return [entry.executor.snapshot() for entry in self._entries.values()]

    def on_schema_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever an upstream's schema becomes known after start-up."""
        for entry in self._entries.values():
            entry.upstream.on_schema(callback)

    def typed_config(self, config: Config) -> Config:
        """``config`` plus what the upstreams' schemas known now say of its integrations' types
        (see ``Upstream.typed``). The module calls the typed operations from then on: those an
        upstream's schema adds (exposed root fields) included."""
        types = dict(config.types)
        integrations = dict(config.integrations)
        for key, entry in self._entries.items():
            typed = entry.upstream.typed(types) if key in integrations else None
            if typed is not None:
                types.update(typed.types)
                integrations[key] = entry.integration = typed.integration
        return replace(config, types=types, integrations=integrations)

    def health(self) -> Health:
        """Healthy when every breaker is closed; otherwise degraded, naming the integrations that are not."""
        not_closed = tuple(
            key for key, entry in self._entries.items() if entry.executor.breaker.state != "closed"
        )
        return Health("degraded" if not_closed else "healthy", not_closed)
