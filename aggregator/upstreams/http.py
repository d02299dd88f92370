"""HTTP plumbing shared by every HTTP-based upstream (REST now, GraphQL later).

One place decides how the shared ``httpx.AsyncClient`` is built, how much of a body is read, how
httpx's exceptions and error statuses become ``aggregator.errors``, and how secrets are kept out of
what those errors say.
"""

from __future__ import annotations

from collections.abc import Iterable
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

__all__ = [
    "EXCERPT_CHARS",
    "USER_AGENT",
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


def build_client(
    *,
    timeout: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The one client of an integration: a keep-alive pool as large as its bulkhead.

    Redirects are never followed, so credentials cannot be carried to whatever host a ``Location``
    names. Proxy settings are not read from the environment: where a call goes is what the config
    says, the same on every machine.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )


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
