"""GraphQL upstreams: an operation's document and params become one request through gql.

What is sent is the document cut down to the client's selection (pushdown.py), with the variables
the cut still uses; errors at paths the client did not select are dropped from partial results.

The request goes through gql's async HTTPX transport, bound to the integration's one pooled
``UpstreamClient`` (so a GraphQL upstream shares the executor, auth, limits and pool exactly as a
REST one; http.py says why that client is not an ``httpx.AsyncClient`` on the hot path). ``send``
makes one attempt; the executor around it retries, breaks and times out.

How it behaves:

- HTTP 408, 429 and 5xx are errors whatever the body says (a 503 with a GraphQL ``errors`` body is
  still an overloaded upstream); other statuses with a GraphQL body are read as GraphQL results.
- ``errors`` with no data is UPSTREAM_GRAPHQL_ERROR carrying the upstream's messages, paths and
  codes (redacted). Data with errors is a ``PartialResult``: the gateway returns the data and adds
  the errors. Only errors with no data can count as breaker failures, and only when their
  ``extensions.code`` is in ``circuit_breaker.graphql_error_codes`` (``"*"``: any).
- The upstream's schema comes from ``schema:`` or, failing that, from introspection at start-up;
  when the upstream is down then, start-up goes on (fields stay JSON, the log says so) and
  introspection is retried in the background with backoff until it succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
from gql import GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLSchema,
    build_ast_schema,
    build_client_schema,
    get_introspection_query,
    parse,
)

from aggregator.config.models import Integration, NamedType, Operation
from aggregator.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamGraphQLError,
)
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.upstreams.base import HttpUpstream
from aggregator.upstreams.contract import Typed, flight_key
from aggregator.upstreams.graphql_types import derive
from aggregator.upstreams.http import (
    UpstreamClient,
    UpstreamResponse,
    error_for_status,
    error_for_transport,
    excerpt,
    redact,
    set_header,
)
from aggregator.upstreams.pushdown import Cut, DocumentCutter
from aggregator.upstreams.selection import ClientSelection

__all__ = ["GraphQLCall", "GraphQLUpstream", "PartialResult"]

log = logging.getLogger("aggregator.upstreams.graphql")

_FAILURE_STATUSES = frozenset({408, 429})
_INTROSPECTION_RETRY_MAX = 60.0


@dataclass(frozen=True, slots=True)
class PartialResult:
    """Data an upstream returned together with errors: the gateway shows both."""

    data: Any
    errors: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class GraphQLCall:
    operation: Operation
    request: GraphQLRequest
    headers: dict[str, str]
    idempotent: bool
    forwarded: frozenset[str]
    args: Mapping[str, Any]  # the params as given
    upstream: GraphQLUpstream
    cut: Cut

    def flight_key(self) -> Hashable | None:
        """As for every kind, and the cut document: calls that select differently share a flight
        only when they send the same document (and report the same errors)."""
        key = flight_key(self.operation, self.args, self.headers, self.forwarded)
        return None if key is None else (key, self.cut.key)

    def attempt(self) -> Awaitable[Any]:
        return self.upstream.send(self)


class _Request(GraphQLRequest):
    """A GraphQLRequest whose query text is printed once per cut document, not once per call."""

    def __init__(self, document: DocumentNode, query: str, **kwargs: Any) -> None:
        super().__init__(document, **kwargs)
        self._query = query

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": self._query}
        if self.operation_name:
            payload["operationName"] = self.operation_name
        if self.variable_values:
            payload["variables"] = self.variable_values
        return payload


class _Client:
    """What gql's HTTPX transport needs of an ``httpx.AsyncClient`` (``post``), on the integration's
    ``UpstreamClient``: the call skips httpx's client machinery (URL parsing, cookies, auth and
    redirect hooks, response objects) that cost more CPU than the exchange itself (http.py)."""

    __slots__ = ("_limit", "_upstream")

    def __init__(self, upstream: UpstreamClient, limit: int) -> None:
        self._upstream = upstream
        self._limit = limit

    async def post(
        self, url: str, *, json: Any, headers: Mapping[str, str], timeout: float
    ) -> UpstreamResponse:
        sent = dict(headers)
        set_header(sent, "Content-Type", "application/json")
        # A GraphQL answer with a 4xx status is still read whole: it may be a GraphQL result.
        return await self._upstream.exchange(
            "POST",
            url,
            headers=sent,
            content=orjson.dumps(json),
            timeout=timeout,
            limit=self._limit,
            error_limit=self._limit,
        )


class _Transport(HTTPXAsyncTransport):
    """gql's HTTPX transport on the integration's client, reading answers as this gateway does."""

    def __init__(self, url: str, client: _Client, upstream: GraphQLUpstream) -> None:
        super().__init__(url=url, json_serialize=_dumps, json_deserialize=orjson.loads)
        # gql only calls ``post`` on its client (see _Client).
        self.client = cast(httpx.AsyncClient, client)
        self._upstream = upstream

    async def connect(self) -> None:  # the client is the integration's, opened by start()
        return None

    async def close(self) -> None:
        return None

    def _prepare_result(self, response: Any) -> ExecutionResult:
        """HTTP failures first (see the module docstring), then the body as a GraphQL result."""
        assert isinstance(response, UpstreamResponse)
        status = response.status_code
        secrets = self._upstream.secrets()
        if status in _FAILURE_STATUSES or status >= 500 or status == 401:
            raise error_for_status(response, secrets, now_wall=self._upstream.clock.wall())
        try:
            result = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            result = None
        if not isinstance(result, dict) or ("data" not in result and "errors" not in result):
            what = "not a GraphQL result" if isinstance(result, dict) else "not JSON"
            if status >= 400:
                what = f"HTTP {status} without a GraphQL result"
            raise UpstreamBadResponse(f"upstream answered {what}: {excerpt(response.content, secrets)[:200]}")
        return ExecutionResult(data=result.get("data"), errors=result.get("errors"))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class GraphQLUpstream(HttpUpstream):
    """The HTTP side of one GraphQL integration: one shared client, its auth and its schema."""

    def __init__(
        self,
        integration: Integration,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(integration, clock=clock)
        self._gql: _Transport | None = None
        self._cutter = DocumentCutter()
        for op in integration.operations.values():
            self._cutter.add(op.id, parse(op.document), op.operation_name, op.select)
        self._error_codes = integration.circuit_breaker.graphql_error_codes
        self.schema: GraphQLSchema | None = None
        if integration.schema_path:
            self._use_schema(build_ast_schema(parse(Path(integration.schema_path).read_text())))
        self._introspection: asyncio.Task[None] | None = None
        self._on_schema: list[Callable[[], None]] = []

    def _use_schema(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self._cutter.use_schema(schema)

    def keep_fields(self, operation_id: str, paths: Iterable[Sequence[str]]) -> None:
        """Always send these paths of response keys below the operation's field (keys the gateway
        reads itself), whatever the client selected; errors at them still never reach the client."""
        self._cutter.keep(operation_id, paths)

    def on_schema(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the upstream's schema becomes known after start-up."""
        self._on_schema.append(callback)

    def typed(self, types: Mapping[str, NamedType]) -> Typed | None:
        """Operations that left ``returns`` out typed from their selection set, once the upstream's
        schema is known; a document that does not validate against it is logged and keeps JSON."""
        if self.schema is None:
            return None
        integration = self._integration
        derived = derive(integration, self.schema, types)
        for problem in derived.problems:
            log.error("operation document does not match the upstream's schema: %s", problem)
        operations = {
            op_id: replace(op, returns=derived.returns[op_id]) if op_id in derived.returns else op
            for op_id, op in integration.operations.items()
        }
        return Typed(replace(integration, operations=operations), dict(derived.types))

    async def start(self) -> None:
        """Open the client (see HttpUpstream) and get the upstream's schema if no file gave it."""
        await super().start()
        if self._gql is None:
            assert self._client is not None
            client = _Client(self._client, self._integration.max_response_bytes)
            self._gql = _Transport(self._integration.base_url, client, self)
        if self.schema is None and not await self._introspect():
            log.warning(
                "integration %s: the upstream's schema could not be fetched; its fields are typed JSON "
                "until introspection succeeds (retrying in the background)",
                self._integration.id,
            )
            self._introspection = asyncio.create_task(self._introspect_later())

    async def stop(self) -> None:
        if self._introspection is not None:
            self._introspection.cancel()
            self._introspection = None
        self._gql = None
        await super().stop()

    async def _introspect(self) -> bool:
        assert self._gql is not None
        request = GraphQLRequest(get_introspection_query())
        headers: dict[str, str] = dict(self._parts.headers)
        try:
            # Inside the try: an auth server that is down is one more reason to try again later.
            await self._auth.apply(headers, [])
            result = await self._gql.execute(
                request, extra_args={"headers": headers, "timeout": self._integration.timeout}
            )
            if not isinstance(result.data, dict):
                return False
            self._use_schema(build_client_schema(result.data))  # type: ignore[arg-type]
        except Exception as error:
            log.info(
                "integration %s: introspection failed: %s",
                self._integration.id,
                redact(str(error), self.secrets()),
            )
            return False
        return True

    async def _introspect_later(self) -> None:
        wait = 1.0
        while True:
            await self.clock.sleep(wait)
            if await self._introspect():
                log.info(
                    "integration %s: upstream schema fetched; fields are now typed", self._integration.id
                )
                for callback in self._on_schema:
                    callback()
                return
            wait = min(wait * 2, _INTROSPECTION_RETRY_MAX)

    def prepare(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        *,
        forwarded_headers: Mapping[str, str] | None = None,
        selection: ClientSelection | None = None,
    ) -> GraphQLCall:
        """The call for ``params``; with the client's ``selection``, only what it selected is sent."""
        where = f"{self._integration.id}.{operation.id}"
        self._parts.check_params(where, operation, params)
        headers = dict(self._parts.headers)
        forwarded = self._parts.forward(where, headers, forwarded_headers)
        cut = self._cutter.cut(operation.id, selection)
        used = cut.variables
        # An explicit null is the client's (GraphQL tells it from an absent argument): it is sent.
        variables = {name: value for name, value in params.items() if name in used}
        request = _Request(
            cut.document,
            cut.query,
            variable_values=variables or None,
            operation_name=operation.operation_name,
        )
        return GraphQLCall(operation, request, headers, operation.idempotent, forwarded, params, self, cut)

    async def send(self, call: GraphQLCall) -> Any:
        """One attempt: the selected data, a PartialResult, or an UpstreamError."""
        try:
            result = await self._execute(call)
            if result is None:
                raise UpstreamBadResponse("upstream answered no GraphQL result")
            return self._result(call, result)
        except UpstreamError as error:
            error.integration = self._integration.id
            error.operation = call.operation.id
            raise

    async def _execute(self, call: GraphQLCall) -> ExecutionResult | None:
        gql = self._gql
        if gql is None:
            raise RuntimeError(f"GraphQLUpstream {self._integration.id!r} is used before start()")
        for attempt in (1, 2):
            headers = dict(call.headers)
            await self._parts.apply_credentials(self._auth, headers, [], call.forwarded)
            try:
                result: ExecutionResult = await gql.execute(
                    call.request, extra_args={"headers": headers, "timeout": call.operation.timeout}
                )
                return result
            except UpstreamError as error:
                status = getattr(error, "status", 0)
                # A 401 to a token we issued: refresh it and repeat the attempt once.
                if status == 401 and attempt == 1 and self._auth.invalidate(headers):
                    continue
                raise
            except Exception as error:
                # gql wraps what the client's ``post`` raised (TransportConnectionFailed).
                cause = error.__cause__
                if isinstance(cause, UpstreamError):
                    raise cause from None
                if isinstance(cause, httpx.RequestError):
                    raise error_for_transport(cause, self.secrets()) from None
                raise
        return None

    def _result(self, call: GraphQLCall, result: ExecutionResult) -> Any:
        operation = call.operation
        errors = tuple(self._error(e) for e in result.errors or ())
        if result.data is not None:
            # Partial data: an error at a path the client did not select is not the client's business.
            errors = tuple(e for e in errors if call.cut.reports(e.get("path") or ()))
        if result.data is None:
            if not errors:
                raise UpstreamBadResponse("upstream answered neither data nor errors")
            counts = "*" in self._error_codes or any(
                e.get("extensions", {}).get("code") in self._error_codes for e in errors
            )
            summary = "; ".join(str(e.get("message", "")) for e in errors[:3])
            raise UpstreamGraphQLError(
                f"upstream answered GraphQL errors: {summary}", errors=errors, counts_as_failure=counts
            )
        data: Any = result.data
        for key in operation.select.split(".") if operation.select else ():
            data = data.get(key) if isinstance(data, dict) else None
        return PartialResult(data, errors) if errors else data

    def _error(self, error: Any) -> dict[str, Any]:
        """An upstream error as the gateway passes it on: message, path and code, redacted."""
        if not isinstance(error, dict):
            return {"message": redact(str(error), self.secrets())[:500]}
        kept: dict[str, Any] = {"message": redact(str(error.get("message", "")), self.secrets())[:500]}
        if isinstance(error.get("path"), list):
            kept["path"] = error["path"]
        extensions = error.get("extensions")
        if isinstance(extensions, dict) and isinstance(extensions.get("code"), str):
            kept["extensions"] = {"code": extensions["code"]}
        return kept

    def secrets(self) -> frozenset[str]:
        return self._parts.secrets | self._auth.secrets()
