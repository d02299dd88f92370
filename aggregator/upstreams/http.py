"""HTTP plumbing shared by every HTTP-based upstream (REST and GraphQL).

One place decides how an integration's calls reach the wire (``UpstreamClient``), how the occasional
side client (an OAuth2 token endpoint) is built, how much of a body is read, how httpx's exceptions
and error statuses become ``aggregator.errors``, and how secrets are kept out of what those errors say.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import httpx

from aggregator.errors import (
    RateLimited,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.resilience.retry import parse_retry_after
from aggregator.upstreams.wire import ACCEPT_ENCODING, ResponseTooLarge, WirePool

__all__ = [
    "DEFAULT_HEADERS",
    "ERROR_BODY_BYTES",
    "EXCERPT_CHARS",
    "USER_AGENT",
    "ResponseHeaders",
    "UpstreamClient",
    "UpstreamResponse",
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
ERROR_BODY_BYTES = 16 * 1024
_MASK = "***"
# What every call sends unless its own headers say otherwise.
DEFAULT_HEADERS = (
    ("User-Agent", USER_AGENT),
    ("Accept", "application/json"),
    ("Accept-Encoding", ACCEPT_ENCODING),
)


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: one client serves every user of the gateway, so a cookie one user's
    call received must never ride along on another's (and parsing them cost a fifth of a call)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Client(httpx.AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()


def build_client(*, timeout: float, max_connections: int) -> httpx.AsyncClient:
    """An httpx client for what is not an integration's call: an OAuth2 token endpoint.

    Redirects are never followed, so credentials cannot be carried to whatever host a ``Location``
    names. Proxy settings are not read from the environment: where a call goes is what the config
    says, the same on every machine.
    """
    return _Client(
        timeout=timeout,
        transport=httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_connections), trust_env=False
        ),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )


class ResponseHeaders:
    """An answer's headers: case-insensitive lookup over the (lower-cased name, value) pairs received."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        for key, value in self._items:
            if key == lowered:
                return value
        return default


class UpstreamResponse:
    """An upstream's answer, read: a 2xx body whole (within the limit), another status's first bytes."""

    __slots__ = ("content", "headers", "reason_phrase", "status_code")

    def __init__(
        self, status_code: int, reason_phrase: str, headers: ResponseHeaders, content: bytes
    ) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def charset_encoding(self) -> str | None:
        """The charset the Content-Type names, if any."""
        _, _, params = (self.headers.get("content-type") or "").partition(";")
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                return value.strip().strip('"') or None
        return None


class UpstreamClient:
    """An integration's one pool for its calls.

    The calls go over ``WirePool`` (wire.py: an HTTP/1.1 client on httptools, about 17 µs of CPU per
    call against 122 µs for httpx's request and response objects on aiohttp's pool, and 790 µs for
    httpx's own pool). The caller gets an ``UpstreamResponse`` already read, and httpx's exceptions on
    failure. Tests drive it against real servers on loopback; there is no fake transport to swap in.
    """

    __slots__ = ("_wire",)

    def __init__(
        self, *, max_connections: int, clock: Clock = SYSTEM_CLOCK, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._wire = WirePool(
            max_connections=max_connections,
            default_headers=DEFAULT_HEADERS,
            clock=clock,
            ssl_context=ssl_context,
        )

    async def exchange(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: float,
        limit: int,
        error_limit: int = ERROR_BODY_BYTES,
    ) -> UpstreamResponse:
        """One request and its answer: a 2xx body whole (UpstreamBadResponse over ``limit`` bytes,
        after decoding), any other status's first ``error_limit`` bytes."""
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        try:
            answer = await self._wire.request(
                method,
                url,
                headers=list(headers.items()),
                body=content,
                timeout=timeout,
                limit=limit,
                error_limit=error_limit,
            )
        except ResponseTooLarge as error:
            raise UpstreamBadResponse(str(error)) from None
        return UpstreamResponse(answer.status, answer.reason, ResponseHeaders(answer.headers), answer.body)

    async def aclose(self) -> None:
        await self._wire.aclose()


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


async def read_prefix(response: httpx.Response, limit: int = ERROR_BODY_BYTES) -> bytes:
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
    response: UpstreamResponse, secrets: Iterable[str], *, now_wall: float
) -> UpstreamHTTPError:
    """The error for a status the call cannot use (>= 300: redirects are not followed)."""
    status = response.status_code
    message = f"upstream answered HTTP {status} {response.reason_phrase}".rstrip()
    text = excerpt(response.content, secrets)
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
