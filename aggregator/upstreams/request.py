"""What every upstream request of an integration shares, whatever its kind (REST or GraphQL).

Param checks, the integration's headers, forwarded headers, credentials per attempt, and the set
of values that errors must never show.

When several sources set the same header (names ignore case), the later one in this list wins:

1. the integration's ``headers``;
2. forwarded headers (``forward_headers``, and ``X-Request-Id`` always);
3. header params: an argument the caller wrote into the operation is more specific than a header
   its client happened to send, so a forwarded header of that name is not used at all; cookie
   params are added to whatever ``Cookie`` header stands, replacing a cookie of the same name (an
   api key in a cookie is added the same way, last);
4. ``auth``: the gateway's credentials are never replaced by accident; except that a forwarded header
   listed with ``override_auth: true`` (and not replaced by a header param) wins over ``auth``, whose
   header is then not even obtained. Without the incoming header, ``auth`` applies as usual.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from aggregator.config.models import Integration, Operation, ParamStyle, Secret
from aggregator.config.values import CONNECTION_HEADERS
from aggregator.errors import InvalidParams
from aggregator.upstreams.auth import Authenticator
from aggregator.upstreams.http import add_cookies, set_header

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestParts",
    "cookie_text",
    "header_value",
    "query_pairs",
    "simple_text",
    "wire_text",
]

REQUEST_ID_HEADER = "X-Request-Id"

_LINE_BREAKS = re.compile(r"[\r\n\0]")
# Forwarded headers whose values are redacted from errors: credentials by name.
_CREDENTIAL_HINTS = ("authorization", "cookie", "token", "key", "secret", "session", "password")


def wire_text(value: Any) -> str:
    """How a scalar travels in a path, query or header: JSON spelling for booleans and containers."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


_DELIMITERS: dict[str, str] = {"form": ",", "spaceDelimited": " ", "pipeDelimited": "|"}


def query_pairs(name: str, value: Any, style: ParamStyle, explode: bool) -> list[tuple[str, str]]:
    """A query value as key/value pairs, spelled as OpenAPI's ``style`` and ``explode`` say.

    Lists: repeated keys when exploded (``a=1&a=2``), else one key with the items joined by the
    style's delimiter (``a=1,2``, ``a=1 2``, ``a=1|2``). Objects: ``deepObject`` gives
    ``a[k]=v`` (nested objects nest the brackets); in any other style an object travels as JSON
    text under its name (OpenAPI's exploded form would drop the name). Null values and items are
    left out.
    """
    if isinstance(value, dict):
        return _deep(name, value) if style == "deepObject" else [(name, wire_text(value))]
    items = _list(value)
    if explode or not isinstance(value, list | tuple):
        return [(name, wire_text(item)) for item in items]
    return [(name, _DELIMITERS.get(style, ",").join(wire_text(item) for item in items))] if items else []


def _deep(key: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() if v is not None for pair in _deep(f"{key}[{k}]", v)]
    return [(key, wire_text(item)) for item in _list(value)]


def _list(value: Any) -> list[Any]:
    """A value's items: a list's non-null items, or the value itself."""
    items = value if isinstance(value, list | tuple) else [value]
    return [item for item in items if item is not None]


def simple_text(value: Any) -> str:
    """A header or cookie value, OpenAPI's ``simple`` style: a list's non-null items joined by commas."""
    if isinstance(value, list | tuple):
        return ",".join(wire_text(item) for item in _list(value))
    return wire_text(value)


# RFC 6265's cookie-octets, but for "%": every other character is percent-encoded, so that a value
# cannot end the cookie (";"), carry a space or a quote, and decodes back to what the client gave.
# A list's items are joined by a bare "," (OpenAPI's form style), an item's own commas encoded.
_COOKIE_SAFE = "!#$&'()*+/:<=>?@[]^`{|}"


def cookie_text(value: Any) -> str:
    """A cookie's value: percent-encoded where a cookie cannot hold a character; a list's non-null
    items joined by commas."""
    return ",".join(quote(wire_text(item), safe=_COOKIE_SAFE) for item in _list(value))


def header_value(where: str, name: str, value: str) -> str:
    """``value`` unless it could split the header block (CR, LF or NUL): then InvalidParams."""
    if _LINE_BREAKS.search(value):
        raise InvalidParams(f"{where}: header {name} must not contain a line break")
    return value


class RequestParts:
    """An integration's request-building rules, computed once."""

    __slots__ = ("_forward", "_overrides", "headers", "secrets")

    def __init__(self, integration: Integration) -> None:
        self.headers = {k: v.reveal() if isinstance(v, Secret) else v for k, v in integration.headers.items()}
        self.secrets = frozenset(v.reveal() for v in integration.headers.values() if isinstance(v, Secret))
        self._forward = {name.lower() for name in integration.forward_headers} | {REQUEST_ID_HEADER.lower()}
        self._overrides = integration.forward_overrides_auth

    @staticmethod
    def check_params(where: str, operation: Operation, params: Mapping[str, Any]) -> None:
        """InvalidParams for a param the operation does not declare or a required one missing."""
        declared = {p.name for p in operation.params}
        unknown = sorted(name for name in params if name not in declared)
        if unknown:
            raise InvalidParams(f"{where}: unknown param(s) {', '.join(unknown)}")
        missing = [p.name for p in operation.params if p.required and params.get(p.name) is None]
        if missing:
            raise InvalidParams(f"{where}: missing required param(s) {', '.join(missing)}")

    def forward(
        self,
        where: str,
        headers: dict[str, str],
        incoming: Mapping[str, str] | None,
        *,
        explicit: Collection[str] = (),
    ) -> frozenset[str]:
        """Copy the forwardable ``incoming`` headers into ``headers``, except those ``explicit`` (the
        operation's header params) names; the lower-cased names copied."""
        forwarded: set[str] = set()
        replaced = {name.lower() for name in explicit}
        for name, value in (incoming or {}).items():
            lowered = name.lower()
            if lowered in self._forward and lowered not in CONNECTION_HEADERS and lowered not in replaced:
                set_header(headers, name, header_value(where, name, value))
                forwarded.add(lowered)
        return frozenset(forwarded)

    async def apply_credentials(
        self,
        auth: Authenticator,
        headers: dict[str, str],
        query: list[tuple[str, str]],
        forwarded: frozenset[str],
    ) -> None:
        """Add this attempt's credentials, except where a forwarded header that overrides auth stands."""
        winning = forwarded & self._overrides
        names = auth.header_names
        # Credentials that forwarded headers replace entirely are not even fetched.
        if names and names <= winning:
            return
        credentials: dict[str, str] = {}
        await auth.apply(credentials, query)
        for name, value in credentials.items():
            if name.lower() == "cookie" and "cookie" not in winning:
                add_cookies(headers, value)
            elif name.lower() not in winning:
                set_header(headers, name, value)

    @staticmethod
    def forwarded_secrets(headers: Mapping[str, str], forwarded: frozenset[str]) -> frozenset[str]:
        """Forwarded credentials (by header name) as they appear in ``headers``, for redaction."""
        found: set[str] = set()
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in forwarded and any(hint in lowered for hint in _CREDENTIAL_HINTS):
                found |= {value, value.split(" ", 1)[-1]}
        return frozenset(found)
