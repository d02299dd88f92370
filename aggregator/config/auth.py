"""Upstream credentials and headers: `auth:`, `headers:` and `forward_headers:`.

Credentials become ``Secret``; every value that came from the environment into auth or a header is
also recorded in ``reader.secrets`` so that redaction can hide it wherever it appears.
"""

from __future__ import annotations

from collections.abc import Callable

from aggregator.config.models import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    NoAuth,
    OAuth2Auth,
    Secret,
)
from aggregator.config.tree import Node, Reader
from aggregator.config.values import (
    Invalid,
    boolean,
    choice,
    cookie_name,
    describe,
    did_you_mean,
    header_name,
    header_value,
    http_url,
    non_empty_string,
)

__all__ = ["merge_headers", "read_auth", "read_forward_headers", "read_headers"]

_KEYS: dict[str, tuple[str, ...]] = {
    "none": (),
    "bearer": ("token",),
    "api_key": ("key", "header", "in", "name"),
    "basic": ("username", "password"),
    "oauth2": ("token_url", "client_id", "client_secret", "scopes", "client_auth"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "bearer": ("token",),
    "api_key": ("key",),
    "basic": ("username", "password"),
    "oauth2": ("token_url", "client_id", "client_secret"),
}
_EXAMPLES = {
    "bearer": '{type: bearer, token: "${TOKEN}"}',
    "api_key": '{type: api_key, key: "${API_KEY}"}',
    "basic": '{type: basic, username: me, password: "${PASSWORD}"}',
    "oauth2": '{type: oauth2, token_url: https://auth/token, client_id: me, client_secret: "${SECRET}"}',
}


class _AuthReader:
    def __init__(self, reader: Reader, node: Node, entries: dict[str, Node]) -> None:
        self.reader = reader
        self.node = node
        self.entries = entries

    def text(self, key: str, parse: Callable[[object], str] = non_empty_string, default: str = "") -> str:
        child = self.entries.get(key)
        if child is None:
            return default
        self.reader.secrets.update(value for value in child.env if value)
        return self.reader.read(child, parse, default)

    def secret(self, key: str) -> Secret:
        value = self.text(key)
        if value:
            self.reader.secrets.add(value)
        return Secret(value)

    def scopes(self) -> tuple[str, ...]:
        child = self.entries.get("scopes")
        if child is None:
            return ()
        if isinstance(child.value, str):
            return tuple(child.value.split())
        return tuple(self.reader.read(item, non_empty_string, "") for item in self.reader.items(child))


def read_auth(reader: Reader, node: Node | None) -> Auth:
    """The integration's auth; ``none`` when there is no `auth:`."""
    if node is None:
        return NoAuth()
    if node.value == "none":
        return NoAuth()
    entries = reader.mapping(node)
    if not isinstance(node.value, dict):
        return NoAuth()
    kind_node = entries.get("type")
    if kind_node is None:
        reader.report(node, f"auth needs a type: one of {', '.join(_KEYS)}")
        return NoAuth()
    kind = reader.read(kind_node, _auth_type, "")
    if not kind:
        return NoAuth()
    allowed = ("type", *_KEYS[kind])
    misplaced = {
        key: f"'{key}' is not a key of {kind} auth; {kind} takes: {', '.join(_KEYS[kind]) or 'nothing else'}"
        for keys in _KEYS.values()
        for key in keys
        if key not in allowed
    }
    entries = reader.fields(node, allowed, misplaced)
    for key in _REQUIRED.get(kind, ()):
        if key not in entries:
            reader.report(node, f"{kind} auth needs '{key}', e.g. auth: {_EXAMPLES[kind]}")
    return _build(kind, _AuthReader(reader, node, entries))


def _auth_type(value: object) -> str:
    if isinstance(value, str) and value in _KEYS:
        return value
    hint = did_you_mean(value, _KEYS) if isinstance(value, str) else ""
    shown = repr(value) if isinstance(value, str) else describe(value)
    raise Invalid(f"unknown auth type {shown}{hint}; use one of {', '.join(_KEYS)}")


def _build(kind: str, auth: _AuthReader) -> Auth:
    if kind == "bearer":
        return BearerAuth(token=auth.secret("token"))
    if kind == "api_key":
        return _api_key(auth)
    if kind == "basic":
        return BasicAuth(username=auth.text("username"), password=auth.secret("password"))
    if kind == "oauth2":
        client_auth = auth.text("client_auth", choice("basic", "body"), "basic")
        return OAuth2Auth(
            token_url=auth.text("token_url", http_url),
            client_id=auth.text("client_id"),
            client_secret=auth.secret("client_secret"),
            scopes=auth.scopes(),
            client_auth="body" if client_auth == "body" else "basic",
        )
    return NoAuth()


def _api_key(auth: _AuthReader) -> ApiKeyAuth:
    location = auth.text("in", choice("header", "query", "cookie"), "header")
    if location != "header" and "header" in auth.entries:
        auth.reader.report(
            auth.entries["header"], f"'header' is for in: header; in: {location} sends the key as 'name'"
        )
    if location == "header" and "name" in auth.entries:
        auth.reader.report(
            auth.entries["name"], "'name' is for in: query or cookie; in: header sends the key in 'header'"
        )
    return ApiKeyAuth(
        key=auth.secret("key"),
        header=auth.text("header", header_name, "X-API-Key"),
        location="query" if location == "query" else "cookie" if location == "cookie" else "header",
        name=auth.text("name", cookie_name if location == "cookie" else non_empty_string, "api_key"),
    )


def read_headers(reader: Reader, node: Node | None) -> dict[str, str]:
    """Static headers; values from the environment become Secret and are recorded as secrets."""
    headers: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key, child in reader.mapping(node).items():
        try:
            header_name(key)
        except Invalid as exc:
            reader.report(child, str(exc))
        if key.lower() in seen:
            reader.report(
                child, f"header '{key}' is already set as '{seen[key.lower()]}'; header names ignore case"
            )
        seen[key.lower()] = key
        value = reader.read(child, header_value, "")
        secrets = {text for text in child.env if text}
        reader.secrets.update(secrets)
        headers[key] = Secret(value) if secrets else value
    return headers


def merge_headers(base: dict[str, str], own: dict[str, str]) -> dict[str, str]:
    """``own`` over ``base``, comparing names without case as HTTP does."""
    overridden = {key.lower() for key in own}
    return {**{k: v for k, v in base.items() if k.lower() not in overridden}, **own}


def read_forward_headers(reader: Reader, node: Node | None) -> tuple[tuple[str, ...], frozenset[str]]:
    """Header names copied from the incoming GraphQL request to the upstream, and the lower-cased
    names of those that win over the integration's own ``auth`` (``{name: X, override_auth: true}``)."""
    if node is None:
        return (), frozenset()
    names: list[str] = []
    overrides: set[str] = set()
    for item in reader.items(node):
        override = False
        if isinstance(item.value, dict):
            entries = reader.fields(item, ("name", "override_auth"))
            if "name" not in entries:
                reader.report(item, "needs 'name': {name: Authorization, override_auth: true}")
                continue
            override = (
                reader.read(entries["override_auth"], boolean, False) if "override_auth" in entries else False
            )
            item = entries["name"]
        header = reader.read(item, header_name, "")
        if header.lower() in (name.lower() for name in names):
            reader.report(item, f"'{header}' is listed twice")
        elif header:
            names.append(header)
            if override:
                overrides.add(header.lower())
    return tuple(names), frozenset(overrides)
