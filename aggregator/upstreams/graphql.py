"""GraphQL upstreams: an operation's document and params become one request through gql.

What is sent is the document cut down to the client's selection (pushdown.py), with the variables
the cut still uses; errors at paths the client did not select are dropped from partial results.

The request goes through ``UpstreamTransport``, gql's ``AsyncTransport`` interface implemented on the
integration's one pooled ``UpstreamClient`` (so a GraphQL upstream shares the executor, auth, limits
and pool exactly as a REST one). ``send`` makes one attempt; the executor around it retries, breaks
and times out.

How it behaves:

- HTTP 408, 429 and 5xx are errors whatever the body says (a 503 with a GraphQL ``errors`` body is
  still an overloaded upstream); other statuses with a GraphQL body are read as GraphQL results.
- ``errors`` with no data is UPSTREAM_GRAPHQL_ERROR carrying the upstream's messages, paths and
  codes (redacted). Data with errors is a ``PartialResult``: the gateway returns the data and adds
  the errors. Only errors with no data can count as breaker failures, and only when their
  ``extensions.code`` is in ``circuit_breaker.graphql_error_codes`` (``"*"``: any).
- The upstream's schema comes from ``schema:`` or, failing that, from introspection at start-up;
  without it start-up goes on (fields stay JSON). One WARNING per kind of failure says why and the
  fix; an unreachable upstream is asked again with backoff (1 s doubling to 60 s), one that refuses
  introspection or sends an unusable schema every 10 minutes (see ``_FIXES``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx
import orjson
from gql import GraphQLRequest
from gql.transport.async_transport import AsyncTransport
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLSchema,
    get_introspection_query,
    parse,
)

from aggregator.config.models import Integration, NamedType, Operation
from aggregator.config.upstream_schema import SchemaProblem, schema_from_introspection, schema_from_sdl_file
from aggregator.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamGraphQLError,
)
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.upstreams.base import HttpUpstream
from aggregator.upstreams.contract import Typed, flight_key
from aggregator.upstreams.exposed import expose
from aggregator.upstreams.forward import Exposed
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
_INTROSPECTION = parse(get_introspection_query(descriptions=True, specified_by_url=True))
# Introspection after a failure: from 1 s apart, doubling to a minute, while the upstream cannot be
# reached; every 10 minutes once it answers but refuses (introspection off, as Apollo Server has it
# in production) or its schema cannot be used, which only a redeploy changes.
_RETRY_FIRST = 1.0
_RETRY_MAX = 60.0
_RETRY_REFUSED = 600.0
_FIXES = {
    "unreachable": "retrying in the background (from 1 s apart, doubling to 60 s). To start typed "
    "without it, give the upstream's SDL with `schema: FILE` on the integration",
    "refused": "asking again every 10 minutes. Give the upstream's SDL with `schema: FILE` on the "
    "integration (the schema file the server is built from)",
    "unusable": "asking again every 10 minutes. Fix the upstream's schema, or give a corrected SDL "
    "with `schema: FILE` on the integration",
}


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why introspection did not give a schema: the upstream could not be reached, refused, or sent
    a schema that cannot be used."""

    kind: Literal["unreachable", "refused", "unusable"]
    reason: str


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
    upstream: GraphQLUpstream
    cut: Cut

    def flight_key(self) -> Hashable | None:
        """As for every kind, and the cut document: calls that select differently share a flight
        only when they send the same document (and report the same errors)."""
        key = flight_key(self.operation, self.request.variable_values or {}, self.headers, self.forwarded)
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


class UpstreamTransport(AsyncTransport):
    """gql's async transport interface (gql 4.x ``AsyncTransport``: connect, close, execute) over the
    integration's ``UpstreamClient``, which http.py prefers to an ``httpx.AsyncClient`` on the hot path.

    ``execute`` takes the attempt's ``headers`` (credentials applied per attempt) and ``timeout`` as
    keyword arguments, as gql's own HTTP transports take theirs. Answers are read as the module
    docstring says: HTTP failures first, then the body as a GraphQL result. The upstream calls the
    transport itself rather than through a gql ``Client`` session, which raises on a result with
    errors (a partial result must reach the client as data and errors) and costs CPU per call.
    """

    def __init__(self, url: str, client: UpstreamClient, *, limit: int, upstream: GraphQLUpstream) -> None:
        self._url = url
        self._client = client
        self._limit = limit
        self._upstream = upstream

    async def connect(self) -> None:
        """Nothing to do: the client is the integration's, opened by ``GraphQLUpstream.start``."""

    async def close(self) -> None:
        """Nothing to do: the client is closed by ``GraphQLUpstream.stop``."""

    async def execute(
        self, request: GraphQLRequest, *, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> ExecutionResult:
        sent = dict(headers or {})
        set_header(sent, "Content-Type", "application/json")
        try:
            # A GraphQL answer with a 4xx status is still read whole: it may be a GraphQL result.
            response = await self._client.exchange(
                "POST",
                self._url,
                headers=sent,
                content=orjson.dumps(request.payload),
                timeout=timeout,
                limit=self._limit,
                error_limit=self._limit,
            )
        except httpx.RequestError as error:
            # Not chained: httpx errors carry the request.
            raise error_for_transport(error, self._upstream.secrets()) from None
        return self._read(response)

    def subscribe(self, request: GraphQLRequest) -> AsyncGenerator[ExecutionResult, None]:
        raise NotImplementedError("subscriptions are not sent to upstreams (the config refuses them)")

    def _read(self, response: UpstreamResponse) -> ExecutionResult:
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


class GraphQLUpstream(HttpUpstream):
    """The HTTP side of one GraphQL integration: one shared client, its auth and its schema."""

    def __init__(
        self,
        integration: Integration,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(integration, clock=clock)
        self._gql: UpstreamTransport | None = None
        self._reported: str | None = None  # the kind of introspection failure last logged
        self._cutter = DocumentCutter()
        for op in integration.operations.values():
            self._cutter.add(op.id, parse(op.document), op.operation_name, op.select)
        self._error_codes = integration.circuit_breaker.graphql_error_codes
        self.schema: GraphQLSchema | None = None
        if integration.schema_path:
            self._use_schema(schema_from_sdl_file(integration.schema_path))
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
        schema is known (a document that does not validate against it is logged and keeps JSON), and
        the exposed root fields (``expose:``) with the upstream's types, whole."""
        if self.schema is None:
            return None
        integration = self._integration
        exposure = expose(integration, self.schema, types)
        for problem in exposure.problems:
            log.error("%s; check the names under expose:", problem)
        for op_id, (kind, name) in exposure.roots.items():
            self._cutter.expose(op_id, Exposed(kind, name))
        self._cutter.use_schema(self.schema, exposure.upstream_names)
        derived = derive(integration, self.schema, {**types, **exposure.types})
        for problem in derived.problems:
            log.error("operation document does not match the upstream's schema: %s", problem)
        operations = {
            op_id: replace(
                op,
                returns=derived.returns.get(op_id, op.returns),
                params=derived.params.get(op_id, op.params),
            )
            for op_id, op in integration.operations.items()
        }
        operations.update(exposure.operations)
        return Typed(replace(integration, operations=operations), {**exposure.types, **derived.types})

    async def start(self) -> None:
        """Open the client (see HttpUpstream) and get the upstream's schema if no file gave it."""
        await super().start()
        if self._gql is None:
            assert self._client is not None
            self._gql = UpstreamTransport(
                self._integration.base_url,
                self._client,
                limit=self._integration.max_response_bytes,
                upstream=self,
            )
        if self.schema is None:
            failure = await self._introspect()
            if failure is not None:
                self._report(failure)
                self._introspection = asyncio.create_task(self._introspect_later(failure))

    async def stop(self) -> None:
        if self._introspection is not None:
            self._introspection.cancel()
            self._introspection = None
        self._gql = None
        await super().stop()

    async def _introspect(self) -> _Failure | None:
        """Ask the upstream for its schema; None once it is known, else why not."""
        assert self._gql is not None
        url = self._integration.base_url
        headers: dict[str, str] = dict(self._parts.headers)
        try:
            # Inside the try: an auth server that is down is one more reason to try again later.
            await self._auth.apply(headers, [])
            result = await self._gql.execute(
                GraphQLRequest(_INTROSPECTION), headers=headers, timeout=self._integration.timeout
            )
        except Exception as error:
            return _Failure(
                "unreachable", f"introspection at {url} failed: {redact(str(error), self.secrets())}"
            )
        if not isinstance(result.data, dict) or result.data.get("__schema") is None:
            messages = "; ".join(str(self._error(e).get("message", "")) for e in result.errors or ())
            return _Failure("refused", f"{url} refused the introspection query: {messages or 'no data'}")
        try:
            schema = schema_from_introspection(result.data)
        except SchemaProblem as problem:
            detail = redact(str(problem), self.secrets())[:1000]
            return _Failure(
                "unusable", f"the schema {url} answered to introspection cannot be used: {detail}"
            )
        self._use_schema(schema)
        return None

    def _report(self, failure: _Failure) -> None:
        """Log a failure once per kind (the first time, and when the reason changes kind)."""
        if failure.kind == self._reported:
            log.debug("integration %s: %s", self._integration.id, failure.reason)
            return
        self._reported = failure.kind
        log.warning(
            "integration %s: %s. Its fields are typed JSON and keep working until the upstream's schema "
            "is known; %s",
            self._integration.id,
            failure.reason,
            _FIXES[failure.kind],
            extra={"integration": self._integration.id, "reason": failure.kind},
        )

    async def _introspect_later(self, failure: _Failure) -> None:
        wait = _RETRY_FIRST
        while True:
            await self.clock.sleep(wait if failure.kind == "unreachable" else _RETRY_REFUSED)
            found = await self._introspect()
            if found is None:
                log.info(
                    "integration %s: the upstream's schema is known now; its fields become typed",
                    self._integration.id,
                )
                self._schema_known()
                return
            failure = found
            self._report(failure)
            wait = min(wait * 2, _RETRY_MAX)

    def _schema_known(self) -> None:
        for callback in self._on_schema:
            try:
                callback()
            except Exception:
                # Never lost in the background task: the gateway keeps the schema it has.
                log.exception(
                    "integration %s: the gateway's schema could not be rebuilt with the upstream's "
                    "schema; the previous one stays in use",
                    self._integration.id,
                )

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
        # An explicit null is the client's (GraphQL tells it from an absent argument): it is sent.
        variables = {variable: params[name] for name, variable in cut.params.items() if name in params}
        if cut.client_variables and selection is not None:
            given = selection.variables
            variables.update((name, given[name]) for name in cut.client_variables if name in given)
        request = _Request(
            cut.document,
            cut.query,
            variable_values=variables or None,
            operation_name=operation.operation_name,
        )
        return GraphQLCall(operation, request, headers, operation.idempotent, forwarded, self, cut)

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
                return await gql.execute(call.request, headers=headers, timeout=call.operation.timeout)
            except UpstreamError as error:
                status = getattr(error, "status", 0)
                # A 401 to a token we issued: refresh it and repeat the attempt once.
                if status == 401 and attempt == 1 and self._auth.invalidate(headers):
                    continue
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
