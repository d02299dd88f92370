"""What every upstream kind (REST, GraphQL, gRPC) offers the module: one typed contract.

An ``Upstream`` turns an operation and its params into a ``PreparedCall`` (validated, placed, without
credentials); the call makes one attempt at a time on the upstream that prepared it, and says itself
whether it is idempotent and which other calls are the same call (its flight key). The module runs
``call.attempt`` through the executor and shares identical calls; it never looks at a kind.

An upstream whose schema becomes known after start-up (GraphQL introspection, gRPC reflection) says
so through ``on_schema`` and then types its operations in ``typed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from aggregator.config.models import Integration, NamedType, Operation
from aggregator.upstreams.request import REQUEST_ID_HEADER
from aggregator.upstreams.selection import ClientSelection

__all__ = ["PreparedCall", "Typed", "Upstream", "flight_key"]

_NOT_IN_KEY = frozenset({REQUEST_ID_HEADER.lower()})


class PreparedCall(Protocol):
    """One call of one operation, ready to be attempted (as often as the executor decides)."""

    @property
    def idempotent(self) -> bool:
        """May an attempt that may have reached the upstream be made again?"""

    def flight_key(self) -> Hashable | None:
        """What makes two calls one (see ``flight_key`` below); None for a call never shared."""

    def attempt(self) -> Awaitable[Any]:
        """One attempt: the answer, or an ``UpstreamError``."""


@dataclass
class Typed:
    """An integration retyped from its upstream's schema, and the types that adds."""

    integration: Integration
    types: dict[str, NamedType] = field(default_factory=dict)


class Upstream(Protocol):
    """One integration's upstream: its connection(s), credentials and request building."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def prepare(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        *,
        forwarded_headers: Mapping[str, str] | None,
        selection: ClientSelection | None = None,
    ) -> PreparedCall:
        """Validate ``params`` and build the call; raises InvalidParams (nothing is sent). ``selection``
        is what the client selected below the operation's field, for kinds that can ask for less."""

    def keep_fields(self, operation_id: str, paths: Iterable[Sequence[str]]) -> None:
        """Always fetch these paths of response keys below the operation's field (keys the gateway
        reads itself), whatever the client selected."""

    def on_schema(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the upstream's schema becomes known after start-up."""

    def typed(self, types: Mapping[str, NamedType]) -> Typed | None:
        """The integration typed from what is known of the upstream now, beside ``types`` (the names
        taken); None when nothing is known beyond the config."""


def flight_key(
    operation: Operation,
    params: Mapping[str, Any],
    headers: Mapping[str, str],
    forwarded: frozenset[str],
) -> Hashable | None:
    """What makes two calls of an integration one: the operation, its params and the incoming
    headers forwarded with it, credentials included, so callers with different credentials never
    share a call. ``X-Request-Id`` is left out (it is forwarded always, and differs on every
    request): a shared call carries the id of the request that started it.

    None for a call that is never shared: a mutation, an operation not declared idempotent, or
    params that are not plain JSON.
    """
    if operation.kind != "query" or not operation.idempotent:
        return None
    try:
        encoded = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    names = forwarded - _NOT_IN_KEY
    if not names:
        return (operation.id, encoded)
    shared = sorted((k.lower(), v) for k, v in headers.items() if k.lower() in names)
    return (operation.id, encoded, tuple(shared))
