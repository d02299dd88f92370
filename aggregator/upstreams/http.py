"""HTTP plumbing shared by every HTTP-based upstream (REST now, GraphQL later).

One place decides how the shared ``httpx.AsyncClient`` is built, how much of a body is read, how
httpx's exceptions and error statuses become ``aggregator.errors``, and how secrets are kept out of
what those errors say.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from aggregator.errors import (
    RateLimited,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.resilience.retry import parse_retry_after
from aggregator.upstreams.transport import AiohttpTransport

__all__ = [
    "EXCERPT_CHARS",
    "USER_AGENT",
    "UpstreamClient",
    "build_client",
    "error_for_status",
    "error_for_transport",
    "excerpt",
    "parse_retry_after",
    "read_bounded",
    "read_prefix",
    "redact",
    "set_header",
]

USER_AGENT = "aggregator"
EXCERPT_CHARS = 500
# How much of an error body is read for its excerpt: far more than EXCERPT_CHARS so that redaction
# sees whole secrets, far less than a full body so an error page cannot cost a big download.
_ERROR_BODY_BYTES = 16 * 1024
_MASK = "***"


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: one client serves every user of the gateway, so a cookie one user's
    call received must never ride along on another's (and parsing them cost a fifth of a call)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Client(httpx.AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()


def build_client(
    *,
    timeout: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The one client of an integration: a keep-alive pool as large as its bulkhead, on aiohttp's
    connection pool unless a ``transport`` is given (tests pass httpx's MockTransport).

    Redirects are never followed, so credentials cannot be carried to whatever host a ``Location``
    names. Proxy settings are not read from the environment: where a call goes is what the config
    says, the same on every machine.
    """
    return _Client(
        timeout=timeout,
        transport=transport or AiohttpTransport(max_connections=max_connections),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )


class UpstreamClient:
    """An integration's one pool for its calls: httpx's request and response types, handed straight
    to the transport.

    ``httpx.AsyncClient.send`` cost 60 of the 220 µs of CPU a REST call took here (it parses every
    URL twice, and runs its cookie, auth and redirect machinery); none of that is wanted: cookies are
    not kept, credentials are added per attempt by the caller, redirects are never followed. The
    request is what ``client.build_request`` would make: the client's default headers, replaced
    case-insensitively by the call's own, and its timeout. ``client`` stays the owner of the
    transport (``aclose`` closes both).
    """

    __slots__ = ("_defaults", "_send", "client")

    def __init__(
        self, *, timeout: float, max_connections: int, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        transport = transport or AiohttpTransport(max_connections=max_connections)
        self.client = build_client(timeout=timeout, max_connections=max_connections, transport=transport)
        self._defaults = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.client.headers.raw]
        self._send = transport.handle_async_request

    async def open(
        self,
        method: str,
        url: str,
        *,
        params: list[tuple[str, str]],
        headers: dict[str, str],
        content: bytes | None,
        timeout: float,
    ) -> httpx.Response:
        """Send one request; the caller reads the streamed response and must ``aclose`` it."""
        names = {name.lower() for name in headers}
        merged = [(k, v) for k, v in self._defaults if k.lower() not in names]
        merged.extend(headers.items())
        request = httpx.Request(
            method,
            url,
            params=tuple(params) if params else None,
            headers=merged,
            content=content,
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )
        response = await self._send(request)
        response.request = request
        return response

    async def aclose(self) -> None:
        await self.client.aclose()


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, dropping any other spelling of its name (HTTP names are case-insensitive)."""
    lowered = name.lower()
    for key in [k for k in headers if k.lower() == lowered]:
        del headers[key]
    headers[name] = value


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, raw or as it appears percent-encoded in a URL, replaced by ***."""
    variants = {form for secret in secrets if secret for form in _encodings(secret)}
    # Longest first, so a secret that contains a shorter one is masked whole.
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, _MASK)
    return text


def _encodings(secret: str) -> tuple[str, ...]:
    return (secret, quote(secret, safe=""), quote_plus(secret, safe=""))


async def read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The whole (decoded) body, or UpstreamBadResponse as soon as it grows past ``limit`` bytes.

    The limit applies after content decoding, so a small gzip bomb is cut off as well.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UpstreamBadResponse(f"response over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise UpstreamBadResponse(f"response over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_prefix(response: httpx.Response, limit: int = _ERROR_BODY_BYTES) -> bytes:
    """At most ``limit`` bytes of the body; the rest is left unread (the caller closes)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def excerpt(body: bytes, secrets: Iterable[str]) -> str:
    """A redacted, printable excerpt of at most EXCERPT_CHARS characters."""
    text = redact(body.decode("utf-8", errors="replace"), secrets)
    return text[:EXCERPT_CHARS]


def error_for_status(
    response: httpx.Response, body: bytes, secrets: Iterable[str], *, now_wall: float
) -> UpstreamHTTPError:
    """The error for a status the call cannot use (>= 300: redirects are not followed)."""
    status = response.status_code
    message = f"upstream answered HTTP {status} {response.reason_phrase}".rstrip()
    text = excerpt(body, secrets)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now_wall)
        return RateLimited(message, status=status, body=text, retry_after=retry_after)
    if 300 <= status < 400:
        message += " (redirects are not followed)"
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now_wall) if status == 503 else None
    return UpstreamHTTPError(message, status=status, body=text, retry_after=retry_after)


def error_for_transport(error: httpx.RequestError, secrets: Iterable[str]) -> UpstreamError:
    """Map an httpx failure to our errors; ``sent`` is False only when the request surely never left."""
    detail = redact(f"{type(error).__name__}: {error}", secrets)
    if isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout):
        return UpstreamUnavailable(f"could not connect in time ({detail})", sent=False)
    if isinstance(error, httpx.TimeoutException):
        return UpstreamTimeout(f"upstream did not answer in time ({detail})")
    if isinstance(error, httpx.ConnectError | httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return UpstreamUnavailable(f"could not connect ({detail})", sent=False)
    if isinstance(error, httpx.DecodingError):
        return UpstreamBadResponse(f"response body could not be decoded ({detail})")
    # Read/write errors and a peer that hung up: the request may have reached the upstream.
    return UpstreamUnavailable(f"connection to upstream broke ({detail})", sent=True)
