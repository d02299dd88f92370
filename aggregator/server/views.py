"""GraphQL over HTTP, as the GraphQL-over-HTTP spec has it (every MUST and SHOULD we could find).

- POST with ``Content-Type: application/json`` (else 415); GET with the params in the query string.
- GET runs queries only: a mutation over GET is refused with 405 and ``Allow: POST``.
- The response is ``application/graphql-response+json`` when the client accepts it, else
  ``application/json``; a client accepting neither gets 406.
- With ``application/graphql-response+json``, a request error (unparsable, invalid, bad variables:
  no ``data`` in the answer) is a 400; with ``application/json`` every well-formed request gets 200.
- A request that is not well-formed (bad JSON, wrong param types, a batch, no query) is a 400 and a
  body over the limit a 413, always with a GraphQL ``errors`` payload, never a traceback.
- A request may name its document instead of sending it (persisted.py): the ``persistedQuery``
  extension or ``documentId``, over POST or GET.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Scope
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from aggregator.config.models import ServerConfig
from aggregator.errors import RequestRefused
from aggregator.schema import RequestContext
from aggregator.server.persisted import PersistedQueries

log = logging.getLogger("aggregator.server")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_GET_OPERATIONS = frozenset({OperationType.QUERY})
_POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


# Clients send a handful of distinct Accept values; the cache is bounded because they are not trusted.
@lru_cache(maxsize=64)
def _accepted_media_type(accept: str) -> str | None:
    """The response media type for an Accept header, or None when we can serve nothing it accepts."""
    if not accept.strip():
        return JSON
    best_rank: tuple[float, int, int] | None = None
    best: str | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if quality <= 0 or media not in (GRAPHQL_RESPONSE, JSON, "application/*", "*/*"):
            continue
        choice = GRAPHQL_RESPONSE if media == GRAPHQL_RESPONSE else JSON
        # Prefer higher quality, then the spec's own media type, then the client's order.
        rank = (quality, 1 if choice == GRAPHQL_RESPONSE else 0, -position)
        if best_rank is None or rank > best_rank:
            best_rank, best = rank, choice
    return best


def _error_body(message: str, code: str) -> bytes:
    return orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})


class GraphQLEndpoint:
    """The ``/graphql`` route: negotiation, parameter checks, execution and status codes."""

    def __init__(self, schema: strawberry.Schema, server: ServerConfig, graphiql_page: str | None) -> None:
        self.schema = schema
        self._max_body = server.max_body_bytes
        self._graphiql_page = graphiql_page
        self._persisted = PersistedQueries(server)
        self._only_trusted = self._persisted.only

    async def handle(self, request: Request) -> Response:
        # Read once into a dict: Starlette's Headers scan the raw list on every lookup (eight per request).
        headers = _headers(request.scope)
        if request.method not in ("GET", "POST"):
            return Response(
                _error_body("GraphQL is served over GET and POST.", "METHOD_NOT_ALLOWED"),
                status_code=405,
                media_type=JSON,
                headers={"allow": "GET, POST"},
            )
        media_type = _accepted_media_type(headers.get("accept", ""))
        if request.method == "GET" and self._wants_graphiql(request, headers):
            return HTMLResponse(self._graphiql_page)
        if media_type is None:
            return Response(
                _error_body(
                    f"Acceptable response types are {GRAPHQL_RESPONSE} and {JSON}.", "NOT_ACCEPTABLE"
                ),
                status_code=406,
                media_type=JSON,
            )
        # 32 random hex digits, as uuid4().hex gave, for a fifth of its cost.
        request_id = headers.get("x-request-id") or os.urandom(16).hex()
        headers.setdefault("x-request-id", request_id)
        try:
            params = await self._params(request, headers)
            context = RequestContext(headers=headers, request_id=request_id)
            result = await self._execute(request, params, context)
        except RequestRefused as refused:
            return Response(
                _error_body(refused.message, refused.refusal_code),
                status_code=refused.status,
                media_type=media_type,
                headers={**refused.headers, "x-request-id": request_id},
            )
        body: dict[str, Any] = {}
        errors = [*(result.errors or ()), *context.upstream_errors]
        if errors:
            body["errors"] = [_format(e) for e in errors]
        is_request_error = result.data is None and all(e.path is None for e in errors)
        if not is_request_error:
            body["data"] = result.data
            if params["register"] is not None:
                self._persisted.register(params["register"], params["query"])
        status = 400 if is_request_error and media_type == GRAPHQL_RESPONSE else 200
        return _Answer(orjson.dumps(body), status, media_type, request_id)

    def _wants_graphiql(self, request: Request, headers: Mapping[str, str]) -> bool:
        return (
            self._graphiql_page is not None
            and "query" not in request.query_params
            and "text/html" in headers.get("accept", "")
        )

    async def _params(self, request: Request, headers: Mapping[str, str]) -> dict[str, Any]:
        if request.method == "GET":
            raw: dict[str, Any] = dict(request.query_params)
            for key in ("variables", "extensions"):
                if raw.get(key):
                    raw[key] = _loads(raw[key], f"'{key}' must be a JSON object")
        else:
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != JSON:
                raise RequestRefused(415, f"POST requests must have Content-Type: {JSON}.")
            raw = _loads(await self._body(request, headers), "The request body is not valid JSON.")
            if isinstance(raw, list):
                raise RequestRefused(
                    400, "Batched requests are not supported; send one operation per request."
                )
            if not isinstance(raw, dict):
                raise RequestRefused(400, "The request body must be a JSON object.")
        query, variables = raw.get("query"), raw.get("variables")
        operation_name, extensions = raw.get("operationName"), raw.get("extensions")
        if extensions is not None and not isinstance(extensions, dict):
            raise RequestRefused(400, "'extensions' must be a JSON object.")
        register = None
        if extensions or self._only_trusted or "documentId" in raw:
            query, register = self._persisted.resolve(query, extensions, raw.get("documentId"))
        if not isinstance(query, str) or not query.strip():
            raise RequestRefused(400, "The 'query' parameter is required and must be a string.")
        if variables is not None and not isinstance(variables, dict):
            raise RequestRefused(400, "'variables' must be a JSON object.")
        if operation_name is not None and not isinstance(operation_name, str):
            raise RequestRefused(400, "'operationName' must be a string.")
        return {
            "query": query,
            "variables": variables,
            "operation_name": operation_name or None,
            "register": register,
        }

    async def _body(self, request: Request, headers: Mapping[str, str]) -> bytes:
        declared = headers.get("content-length")
        too_large = RequestRefused(413, f"The request body is over the limit of {self._max_body} bytes.")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def _execute(self, request: Request, params: dict[str, Any], context: RequestContext) -> Any:
        allowed = _GET_OPERATIONS if request.method == "GET" else _POST_OPERATIONS
        try:
            return await self.schema.execute(
                params["query"],
                variable_values=params["variables"],
                context_value=context,
                operation_name=params["operation_name"],
                allowed_operation_types=allowed,
            )
        except InvalidOperationTypeError as error:
            raise RequestRefused(
                405,
                f"{error.as_http_error_reason(request.method).capitalize()}; use POST.",
                {"allow": "POST"},
            ) from None
        except CannotGetOperationTypeError:
            name = params["operation_name"]
            message = (
                f"Unknown operation named '{name}'."
                if name
                else "Must provide operationName when the document has several operations."
            )
            raise RequestRefused(400, message) from None
        except MissingQueryError:
            raise RequestRefused(400, "The 'query' parameter is required.") from None


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by (lower-case) name; a repeated header keeps its first value, as
    Starlette's ``Headers.get`` does."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


class _Answer(Response):
    """A GraphQL answer: its headers are known, so Starlette's general header set-up (a fifth of the
    cost of a trivial query in-process) is skipped."""

    def __init__(self, body: bytes, status: int, media_type: str, request_id: str) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", media_type.encode("latin-1")),
            (b"x-request-id", request_id.encode("latin-1")),
        ]


def _loads(raw: str | bytes, message: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestRefused(400, message) from None


def _format(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = error.formatted  # type: ignore[assignment]
    return formatted
