"""REST upstreams: an operation and its params become one HTTP request; one attempt becomes a value.

``prepare`` is pure and synchronous: it validates the params and places them (path, query, header,
cookie, body). ``send`` makes exactly one attempt on the integration's shared client; retries, the breaker
and the attempt timeout belong to the executor around it.

How it behaves:

- Credentials are applied in ``send``, on every attempt, so a refreshed OAuth2 token is used by the
  attempt after a 401 and by executor retries. Which value of a header is sent is decided in one
  place, ``request.py`` (its docstring gives the order).
- Same-origin redirects are followed unless ``follow_redirects: false`` (UpstreamClient in http.py);
  one to another origin is not (credentials must not travel to another host). A 3xx answer not
  followed is an UpstreamHTTPError carrying its status and why, which the breaker counts as the
  upstream being healthy.
- A 2xx answer is decoded as JSON. An empty body, 204, 205 or a HEAD request give None, or true
  when the operation returns Boolean. A body that
  is not JSON is UpstreamBadResponse if it was declared JSON or the operation returns anything but a
  string-like scalar (String, ID, DateTime, JSON); otherwise it is returned as text.
- Path values are percent-encoded whole (``quote(value, safe="")``); a value that is exactly ``.``
  or ``..`` is sent as ``%2E``/``%2E%2E`` and an empty value is refused, so no value can change the
  path's shape.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import orjson

from aggregator.config.models import SCALARS, Integration, NamedType, Operation, Param, TypeExpr
from aggregator.errors import InvalidParams, UpstreamBadResponse, UpstreamError
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.upstreams.base import HttpUpstream
from aggregator.upstreams.contract import Typed, flight_key
from aggregator.upstreams.http import (
    UpstreamClient,
    UpstreamResponse,
    add_cookies,
    error_for_status,
    error_for_transport,
    redact,
    set_header,
)
from aggregator.upstreams.request import (
    REQUEST_ID_HEADER,
    cookie_text,
    header_value,
    query_pairs,
    simple_text,
    wire_text,
)
from aggregator.upstreams.selection import ClientSelection

__all__ = ["REQUEST_ID_HEADER", "RestRequest", "RestUpstream"]

_PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")
_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}
_TEXT_SCALARS = frozenset({"String", "ID", "DateTime", "JSON"})
_EMPTY_STATUSES = frozenset({204, 205})
_BOOLEAN = TypeExpr(name="Boolean")


@dataclass(frozen=True, slots=True)
class RestRequest:
    """One prepared call, without credentials (``send`` adds them per attempt).

    ``forwarded`` holds the lower-cased names of the headers copied from the incoming request.
    """

    operation: Operation
    method: str
    url: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes | None
    idempotent: bool
    args: Mapping[str, Any]  # the params as given
    upstream: RestUpstream
    forwarded: frozenset[str] = frozenset()

    def flight_key(self) -> Hashable | None:
        return flight_key(self.operation, self.args, self.headers, self.forwarded)

    def attempt(self) -> Awaitable[Any]:
        return self.upstream.send(self)


@dataclass(frozen=True, slots=True)
class _Route:
    where: str  # "<integration>.<operation>", for messages
    pieces: tuple[str, ...]  # the path split around its placeholders: text, name, text, name...
    query: tuple[tuple[str, str], ...]  # fixed query pairs of base_url and path


class RestUpstream(HttpUpstream):
    """The HTTP side of one REST integration: one shared client, one authenticator."""

    def __init__(
        self,
        integration: Integration,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(integration, clock=clock)
        base, _, base_query = integration.base_url.partition("?")
        self._base = base.rstrip("/")
        self._base_query = parse_qsl(base_query, keep_blank_values=True)
        # Per operation, what prepare() would otherwise re-derive from its path on every call.
        self._routes: dict[int, tuple[Operation, _Route]] = {}

    def _route(self, operation: Operation) -> _Route:
        cached = self._routes.get(id(operation))
        if cached is not None and cached[0] is operation:
            return cached[1]
        template, _, fixed_query = operation.path.partition("?")
        route = _Route(
            where=f"{self._integration.id}.{operation.id}",
            pieces=tuple(_PLACEHOLDER.split(template.lstrip("/"))),
            query=(*self._base_query, *parse_qsl(fixed_query, keep_blank_values=True)),
        )
        self._routes[id(operation)] = (operation, route)
        return route

    def prepare(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        *,
        forwarded_headers: Mapping[str, str] | None = None,
        selection: ClientSelection | None = None,
    ) -> RestRequest:
        """Validate ``params`` and place each one; raises InvalidParams (nothing is sent).

        ``selection`` is not used: a REST answer is whatever the endpoint returns.
        """
        route = self._route(operation)
        where = route.where
        self._parts.check_params(where, operation, params)

        query = list(route.query)
        header_params: dict[str, str] = {}
        cookies: dict[str, Any] = {}
        segments: dict[str, str] = {}
        body_params: list[Param] = []
        for param in operation.params:
            value = params.get(param.name)
            if param.location == "body":
                body_params.append(param)
            elif value is None:
                continue
            elif param.location == "path":
                segments[param.wire] = _path_segment(where, param.name, value)
            elif param.location == "query":
                query.extend(query_pairs(param.wire, value, param.style, param.explode))
            elif param.location == "header":
                header_params[param.wire] = header_value(where, param.wire, simple_text(value))
            else:
                cookies[param.wire] = value

        headers = dict(self._parts.headers)
        forwarded = self._parts.forward(where, headers, forwarded_headers, explicit=header_params.keys())
        for name, value in header_params.items():
            set_header(headers, name, value)
        if cookies:
            add_cookies(headers, "; ".join(f"{name}={cookie_text(value)}" for name, value in cookies.items()))

        body = _body(where, body_params, params)
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return RestRequest(
            operation=operation,
            method=operation.method,
            url=self._url(where, route.pieces, segments),
            params=query,
            headers=headers,
            body=body,
            idempotent=operation.idempotent or any(k.lower() == "idempotency-key" for k in headers),
            args=params,
            upstream=self,
            forwarded=forwarded,
        )

    def on_schema(self, callback: Callable[[], None]) -> None:
        """Never called: a REST upstream's types are the config's."""

    def typed(self, types: Mapping[str, NamedType]) -> Typed | None:
        return None

    def keep_fields(self, operation_id: str, paths: Iterable[Sequence[str]]) -> None:
        """Nothing to do: a REST answer carries every field the endpoint returns."""

    async def send(self, request: RestRequest) -> Any:
        """Make one attempt and return the decoded answer (see the module docstring).

        With OAuth2, a 401 to a token we issued refreshes the token and repeats the attempt once.
        """
        client = self._client
        if client is None:
            raise RuntimeError(f"RestUpstream {self._integration.id!r} is used before start()")
        try:
            response, sent_headers = await self._exchange(client, request)
            if response.status_code == 401 and self._auth.invalidate(sent_headers):
                response, sent_headers = await self._exchange(client, request)
            if not response.is_success:
                raise error_for_status(response, self._secrets(request), now_wall=self.clock.wall())
            if not response.content or response.status_code in _EMPTY_STATUSES or request.method == "HEAD":
                # An operation that returns Boolean (an OpenAPI 204) answers true for a bodiless success.
                return True if request.operation.returns == _BOOLEAN else None
            return _decode(response, request.operation.returns)
        except UpstreamError as error:
            error.integration = self._integration.id
            error.operation = request.operation.id
            raise

    async def _exchange(
        self, client: UpstreamClient, request: RestRequest
    ) -> tuple[UpstreamResponse, dict[str, str]]:
        """One HTTP exchange, its answer read (see UpstreamClient.exchange), and the headers sent."""
        headers = dict(request.headers)
        query = list(request.params)
        await self._parts.apply_credentials(self._auth, headers, query, request.forwarded)
        try:
            response = await client.exchange(
                request.method,
                request.url,
                params=query,
                headers=headers,
                content=request.body,
                timeout=request.operation.timeout,
                limit=self._integration.max_response_bytes,
            )
        except httpx.RequestError as exc:
            # Not chained: httpx errors carry the request, whose URL may hold an api key.
            raise error_for_transport(exc, self._secrets(request)) from None
        except httpx.InvalidURL as exc:
            # Raised before anything is sent: the params made a URL no client accepts (too long).
            where = f"{self._integration.id}.{request.operation.id}"
            detail = redact(str(exc), self._secrets(request))
            raise InvalidParams(f"{where}: the params make an unusable URL ({detail})") from None
        return response, headers

    def _url(self, where: str, pieces: tuple[str, ...], segments: Mapping[str, str]) -> str:
        parts = list(pieces)
        # _PLACEHOLDER.split leaves the placeholder names at the odd positions.
        for index in range(1, len(parts), 2):
            name = parts[index]
            if name not in segments:
                raise InvalidParams(f"{where}: path param {name} needs a value")
            parts[index] = segments[name]
        path = "".join(parts)
        return f"{self._base}/{path}" if path else self._base

    def _secrets(self, request: RestRequest) -> frozenset[str]:
        """What errors must not show: configured credentials, issued tokens, forwarded credentials."""
        forwarded = self._parts.forwarded_secrets(request.headers, request.forwarded)
        return self._parts.secrets | self._auth.secrets() | forwarded


def _path_segment(where: str, name: str, value: Any) -> str:
    text = wire_text(value)
    if not text:
        raise InvalidParams(f"{where}: path param {name} must not be empty")
    return _DOT_SEGMENTS.get(text) or quote(text, safe="")


def _body(where: str, body_params: list[Param], params: Mapping[str, Any]) -> bytes | None:
    """One JSON- or object-typed body param is the whole body; otherwise the body params form an object,
    each under its wire name. A param given as null is sent as null (that is how a field is cleared);
    one not given is left out. A whole-body param that is null or not given sends no body."""
    if not body_params:
        return None
    if len(body_params) == 1 and _is_document(body_params[0]):
        document = params.get(body_params[0].name)
        if document is None:
            return None
    else:
        document = {p.wire: params[p.name] for p in body_params if p.name in params}
    try:
        return orjson.dumps(document)
    except TypeError:
        raise InvalidParams(f"{where}: body params cannot be encoded as JSON") from None


def _checked_shape(value: Any, returns: TypeExpr) -> Any:
    """``value`` if its top level can be what ``returns`` declares: a list for a list type, an object
    for a named type from ``types:``; scalars are left to GraphQL's own serialisation."""
    if value is None or returns.named == "JSON":
        return value
    if returns.is_list:
        expected, ok = "a list", isinstance(value, list)
    elif returns.named not in SCALARS:
        expected, ok = "an object", isinstance(value, dict)
    else:
        return value
    if not ok:
        raise UpstreamBadResponse(f"upstream answered {type(value).__name__}, not {expected} ({returns})")
    return value


def _is_document(param: Param) -> bool:
    """A JSON or object-typed (input type) param: alone in the body, it is the whole body."""
    return not param.type.is_list and (param.type.named == "JSON" or param.type.named not in SCALARS)


def _decode(response: UpstreamResponse, returns: TypeExpr) -> Any:
    body = response.content
    try:
        return _checked_shape(orjson.loads(body), returns)
    except orjson.JSONDecodeError:
        media_type = (response.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
        declared_json = media_type == "application/json" or media_type.endswith("+json")
        if declared_json or returns.is_list or returns.named not in _TEXT_SCALARS:
            raise UpstreamBadResponse("upstream answer is not valid JSON") from None
    try:
        return body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")
