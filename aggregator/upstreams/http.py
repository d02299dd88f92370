"""HTTP plumbing shared by every HTTP-based upstream (REST and GraphQL).

One place decides how an integration's calls reach the wire (``UpstreamClient``), how the occasional
side client (an OAuth2 token endpoint) is built, how much of a body is read, how httpx's exceptions
and error statuses become ``aggregator.errors``, and how secrets are kept out of what those errors say.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus, urlencode, urljoin, urlsplit

import httpx
import orjson

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

log = logging.getLogger("aggregator.upstreams.http")

__all__ = [
    "DEFAULT_HEADERS",
    "ERROR_BODY_BYTES",
    "EXCERPT_CHARS",
    "MAX_REDIRECTS",
    "TRUNCATED",
    "UPSTREAM_BODY_BYTES",
    "USER_AGENT",
    "ResponseHeaders",
    "UpstreamClient",
    "UpstreamResponse",
    "build_client",
    "client_body",
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
# How much of a 4xx answer's body the client is shown (extensions.upstreamBody), and the mark of a cut.
UPSTREAM_BODY_BYTES = 4096
TRUNCATED = "... [truncated]"
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
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


def build_client(
    *, timeout: float, max_connections: int, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """An httpx client for what is not an integration's call: an OAuth2 token endpoint.

    Redirects are never followed, so credentials cannot be carried to whatever host a ``Location``
    names. Proxy settings are not read from the environment: where a call goes is what the config
    says, the same on every machine. ``ssl_context`` is the integration's ``tls:`` block, so that a
    token endpoint behind the same private authority is trusted as the upstream is.
    """
    return _Client(
        timeout=timeout,
        transport=httpx.AsyncHTTPTransport(
            verify=ssl_context if ssl_context is not None else True,
            limits=httpx.Limits(max_connections=max_connections),
            trust_env=False,
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
    """An upstream's answer, read: a 2xx body whole (within the limit), another status's first bytes.

    ``not_followed`` says why a redirect answer was not followed.
    """

    __slots__ = ("content", "headers", "not_followed", "reason_phrase", "status_code")

    def __init__(
        self, status_code: int, reason_phrase: str, headers: ResponseHeaders, content: bytes
    ) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = content
        self.not_followed = "redirects are not followed"

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

    With ``follow_redirects``, a 301/302/303/307/308 answer whose ``Location`` (relative ones resolved)
    is on the same origin (scheme, host and port) is followed, at most ``MAX_REDIRECTS`` times, all hops
    within the one ``timeout``. Methods change as httpx and browsers change them (RFC 9110 15.4): 303
    makes any method but HEAD a GET, so does 302, 301 makes POST a GET; 307 and 308 repeat the method
    and body. A GET made so is sent without the body and its Content-Type. A redirect to another
    origin is never followed: the request carries the integration's credentials. A redirect that is
    not followed is the answer, its ``not_followed`` saying why.
    """

    __slots__ = ("_clock", "_follow", "_wire")

    def __init__(
        self,
        *,
        max_connections: int,
        clock: Clock = SYSTEM_CLOCK,
        ssl_context: ssl.SSLContext | None = None,
        follow_redirects: bool = False,
    ) -> None:
        self._clock = clock
        self._follow = follow_redirects
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
        """One request and its answer, redirects followed (see the class): a 2xx body whole
        (UpstreamBadResponse over ``limit`` bytes, after decoding), any other status's first
        ``error_limit`` bytes."""
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        response = await self._once(method, url, headers, content, timeout, limit, error_limit)
        if not self._follow or response.status_code not in _REDIRECTS:
            return response
        started = self._clock.monotonic()
        for _ in range(MAX_REDIRECTS):
            location = response.headers.get("location")
            if not location:
                response.not_followed = "a redirect without a Location is not followed"
                return response
            target = urljoin(url, location.strip())
            if _origin(target) != _origin(url) or _origin(target) is None:
                response.not_followed = (
                    f"the redirect to another origin ({_shown_origin(target)}) is not followed: "
                    "the integration's credentials never leave its origin"
                )
                return response
            method, content, headers = _redirected(response.status_code, method, content, headers)
            url = target
            remaining = timeout - (self._clock.monotonic() - started)
            if remaining <= 0:
                raise httpx.ReadTimeout("the redirects took the whole timeout")
            response = await self._once(method, url, headers, content, remaining, limit, error_limit)
            if response.status_code not in _REDIRECTS:
                return response
        response.not_followed = f"stopped after {MAX_REDIRECTS} redirects (a redirect loop?)"
        return response

    async def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: float,
        limit: int,
        error_limit: int,
    ) -> UpstreamResponse:
        """One exchange, no redirect followed."""
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


def _origin(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port of an http(s) URL (default ports filled in); None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _shown_origin(url: str) -> str:
    # Only the origin: the rest of a Location may carry what the upstream echoed (an api key).
    origin = _origin(url)
    return f"{origin[0]}://{origin[1]}:{origin[2]}" if origin else "a URL that is not http(s)"


def _redirected(
    status: int, method: str, content: bytes | None, headers: Mapping[str, str]
) -> tuple[str, bytes | None, Mapping[str, str]]:
    """The method, body and headers of the request a redirect asks for (httpx's rules)."""
    to_get = (status in (302, 303) and method not in ("GET", "HEAD")) or (status == 301 and method == "POST")
    if not to_get:
        return method, content, headers
    kept = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    return "GET", None, kept


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, dropping any other spelling of its name (HTTP names are case-insensitive)."""
    lowered = name.lower()
    for key in [k for k in headers if k.lower() == lowered]:
        del headers[key]
    headers[name] = value


def add_cookies(headers: dict[str, str], cookies: str) -> None:
    """Add the cookies of ``cookies`` (``a=1; b=2``) to the ``Cookie`` header of ``headers``, replacing
    cookies of the same names: cookie params and an api key in a cookie join what other sources set."""
    added = _cookie_pairs(cookies)
    names = {name for name, _ in added}
    standing = next((value for key, value in headers.items() if key.lower() == "cookie"), "")
    kept = [(name, pair) for name, pair in _cookie_pairs(standing) if name not in names]
    set_header(headers, "Cookie", "; ".join(pair for _, pair in [*kept, *added]))


def _cookie_pairs(header: str) -> list[tuple[str, str]]:
    """(name, ``name=value`` as written) of each cookie of a ``Cookie`` header."""
    pairs = [part.strip() for part in header.split(";")]
    return [(pair.partition("=")[0].strip(), pair) for pair in pairs if pair]


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
    """The error for a status the call cannot use (>= 300: a redirect that was not followed).

    A 4xx answer's body goes to the client (``upstream_body``: the caller's request was refused and the
    upstream says why); a 5xx answer's body is the upstream's own business and is only logged at DEBUG.
    Both redacted.
    """
    status = response.status_code
    message = f"upstream answered HTTP {status} {response.reason_phrase}".rstrip()
    text = excerpt(response.content, secrets)
    body = client_body(response, secrets) if 400 <= status < 500 else None
    if status >= 500 and response.content:
        log.debug("%s; its body: %s", message, text)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now_wall)
        return RateLimited(message, status=status, body=text, retry_after=retry_after, upstream_body=body)
    if 300 <= status < 400:
        message += f" ({response.not_followed})"
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now_wall) if status == 503 else None
    return UpstreamHTTPError(message, status=status, body=text, retry_after=retry_after, upstream_body=body)


def client_body(response: UpstreamResponse, secrets: Iterable[str]) -> Any:
    """What the client is shown of an error answer's body: None for none, the parsed JSON when it is
    JSON of at most UPSTREAM_BODY_BYTES (left out when larger: a cut document is no JSON), else the text,
    cut to UPSTREAM_BODY_BYTES and marked where cut. Every string in it redacted."""
    content = response.content
    if not content:
        return None
    hidden = tuple(secrets)
    if _is_json(response):
        if len(content) > UPSTREAM_BODY_BYTES:
            return None
        try:
            return _redact_json(orjson.loads(content), hidden)
        except orjson.JSONDecodeError:
            pass  # declared JSON but is not: shown as the text it is
    text = redact(content.decode(response.charset_encoding or "utf-8", errors="replace"), hidden)
    if len(text.encode()) <= UPSTREAM_BODY_BYTES:
        return text
    cut = text.encode()[:UPSTREAM_BODY_BYTES].decode("utf-8", errors="ignore")
    return cut + TRUNCATED


def _is_json(response: UpstreamResponse) -> bool:
    media_type = (response.headers.get("content-type") or "").partition(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _redact_json(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_redact_json(item, secrets) for item in value]
    if isinstance(value, dict):
        return {redact(key, secrets): _redact_json(item, secrets) for key, item in value.items()}
    return value


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
