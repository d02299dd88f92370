"""What a resolver knows of the incoming HTTP request, and what one request's resolvers share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLResolveInfo

from aggregator.config.models import Operation
from aggregator.errors import UpstreamGraphQLError
from aggregator.upstreams.graphql import PartialResult

if TYPE_CHECKING:
    from aggregator.schema.joins import JoinLoads

__all__ = ["RequestContext"]


@dataclass
class RequestContext:
    """What a resolver knows of the incoming HTTP request, and errors it adds to the response."""

    headers: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    # Errors that came with partial data from a GraphQL upstream: the data is returned, these are added.
    upstream_errors: list[GraphQLError] = field(default_factory=list)
    # The request's joined calls: batches being collected and calls already made (schema/joins.py).
    join_state: JoinLoads | None = field(default=None, init=False, repr=False)
    # The request's operation calls not yet ended, and a future for whoever waits until none is left.
    _calls_running: int = field(default=0, init=False, repr=False)
    _settled: asyncio.Future[None] | None = field(default=None, init=False, repr=False)

    def call_started(self) -> None:
        """Count an operation call; resolvers call it when called, before any of them runs."""
        self._calls_running += 1

    def call_ended(self) -> None:
        self._calls_running -= 1
        if self._calls_running == 0 and self._settled is not None and not self._settled.done():
            self._settled.set_result(None)

    async def calls_settled(self) -> None:
        """Return once every operation call of the request counted so far has ended.

        Both executors call every root resolver before awaiting any, so a root field that awaits this
        (``integrationStats``) sees its siblings' effect wherever it stands in the selection. Joined
        calls are counted when their parent's value is completed, right after the parent's call
        ends: hence the count is read again after each wake-up.
        """
        while self._calls_running:
            if self._settled is None or self._settled.done():
                self._settled = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._settled)

    def add_partial_errors(
        self,
        info: GraphQLResolveInfo[Any],
        integration_id: str,
        op: Operation,
        partial: PartialResult,
        placed: Callable[[list[str | int]], list[list[str | int]]] | None = None,
    ) -> None:
        """The errors of ``partial``, each at the response path its data stands at: below ``info``'s
        field, or wherever ``placed`` puts a path into the operation's answer (a batch's items are
        the values of several parents' fields)."""
        selected = op.select.split(".") if op.select else []
        for error in partial.errors:
            upstream_path = error.get("path") or []
            # The upstream's path points into its `data`; below the selected part it is ours too.
            inner = upstream_path[len(selected) :] if upstream_path[: len(selected)] == selected else []
            code = error.get("extensions", {}).get("code")
            extensions = {
                "code": UpstreamGraphQLError.code,
                "integration": integration_id,
                "operation": op.id,
                "upstreamPath": upstream_path,
                **({"upstreamCode": code} if code else {}),
            }
            paths = placed(inner) if placed is not None else [[*info.path.as_list(), *inner]]
            self.upstream_errors.extend(
                GraphQLError(error.get("message", ""), path=path, extensions=extensions) for path in paths
            )
