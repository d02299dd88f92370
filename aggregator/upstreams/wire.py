"""The upstream calls' HTTP/1.1 client: an asyncio protocol, httptools' parser, a keep-alive pool.

Why its own: measured on the project's 2-core machine, 16 calls in flight against a Node upstream,
CPU per GET (read and JSON-decoded): httpx's own pool 790 µs, aiohttp's client 56 µs, httpx's
request and response objects on top of aiohttp 122 µs, a protocol on httptools 9 µs. A gateway call
is mostly this exchange, so its cost is the product's cost (bench/README.md has the figures).

What it promises the code above it (``UpstreamClient`` in http.py), as the httpx transports before it:

- the answer is read whole before the call returns: a 2xx body up to ``limit`` bytes after decoding
  (over it: ``ResponseTooLarge``, also when a declared Content-Length says so before any body is
  read), any other status up to ``error_limit`` bytes (the rest is dropped with the connection);
- ``Content-Encoding`` gzip and deflate are decoded (and asked for); the size limit applies after
  decoding, so a small compressed bomb is cut off;
- nothing is retried, redirected, stored (cookies) or read from the environment (proxies);
- failures are httpx's exceptions with httpx's meaning, so one mapping (http.py) serves every client:
  ``ConnectError``/``ConnectTimeout``/``PoolTimeout`` only when the request never left (including
  waiting for a pooled connection), ``ReadTimeout`` when the answer does not complete in time,
  ``ReadError``/``RemoteProtocolError`` when the connection broke or the answer was not HTTP after the
  request was sent, ``LocalProtocolError`` for a request that cannot be written (a line break in a
  header), ``DecodingError`` for a body that does not decode, ``UnsupportedProtocol`` for a URL that is
  not http(s), ``InvalidURL`` for one over 65,536 characters (httpx's limit) or with a control
  character (httpx's rule: in the request line a line break would let the URL write headers);
- idle connections are reused newest first and dropped once idle for ``keepalive_expiry`` seconds
  (upstreams close idle ones about then: Node after 5 s) or as soon as the upstream closes them; a
  connection whose answer was not read to its end (a timeout, a cancelled call, an error body cut
  short) is closed, never reused;
- https upstreams are verified as httpx verifies them (certifi's CA bundle, host name checked, the
  context made once, on the first https call); a certificate that does not verify is a
  ``ConnectError``: nothing was sent.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, cast
from urllib.parse import quote

import httptools
import httpx

from aggregator.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = ["KEEPALIVE_EXPIRY", "MAX_URL_LENGTH", "ResponseTooLarge", "WirePool", "WireResponse"]

# Under the 5 s after which Node and uvicorn close an idle connection: reusing one they are closing
# at that moment would fail a call that never reached them.
KEEPALIVE_EXPIRY: Final = 4.0
MAX_URL_LENGTH: Final = 65_536
ACCEPT_ENCODING: Final = "gzip, deflate"
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"})
_FORBIDDEN_IN_HEADERS = ("\r", "\n", "\0")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class ResponseTooLarge(Exception):
    """A 2xx body over the caller's limit (declared or as it arrived)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response over {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class WireResponse:
    status: int
    reason: str
    # Names lower-cased, values decoded as latin-1 (what the bytes were), in the order received.
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    host_header: str


@cache
def _ssl_context() -> ssl.SSLContext:
    # httpx's default: certifi's CA bundle, verification on.
    return httpx.create_ssl_context()


@cache
def _origin(scheme: str, authority: str) -> _Origin:
    if "@" in authority:
        raise httpx.UnsupportedProtocol("credentials in the URL are not supported; use auth")
    host, port = authority, 443 if scheme == "https" else 80
    if authority.startswith("["):  # [IPv6]:port
        closing = authority.find("]")
        host, rest = authority[1:closing], authority[closing + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif ":" in authority:
        host, _, digits = authority.rpartition(":")
        if not digits.isdigit():
            raise httpx.UnsupportedProtocol(f"invalid port in {authority!r}")
        port = int(digits)
    if not host:
        raise httpx.UnsupportedProtocol("a URL without a host")
    return _Origin(scheme, host, port, authority)


def split_url(url: str) -> tuple[_Origin, str]:
    """The origin and the request target (path and query) of an absolute http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise httpx.InvalidURL("URL too long")
    # isprintable() first: it is a third of the search's cost and true for almost every URL.
    if not url.isprintable() and _CONTROL_CHARACTER.search(url) is not None:
        raise httpx.InvalidURL("URL holds a control character")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol("only http:// and https:// URLs can be called")
    rest = rest.partition("#")[0]
    end = len(rest)
    for mark in "/?":
        found = rest.find(mark)
        if 0 <= found < end:
            end = found
    target = rest[end:]
    if not target.startswith("/"):
        target = f"/{target}"
    if not target.isascii() or " " in target:
        # What httpx does with a space or a non-ASCII character (from a config's base_url or path):
        # percent-encode it, leaving what is already encoded and the URL's delimiters alone.
        target = quote(target, safe="!$&'()*+,/:;=?@[]~%")
    return _origin(scheme, rest[:end]), target


class _Decoder:
    """gzip or deflate, decoded as the body arrives."""

    __slots__ = ("_deflate_fallback", "_inner")

    def __init__(self, encoding: str) -> None:
        # 47 = gzip or zlib header, detected; deflate is zlib-wrapped by spec, raw in practice.
        self._inner = zlib.decompressobj(47 if encoding == "gzip" else zlib.MAX_WBITS)
        self._deflate_fallback = encoding == "deflate"

    def feed(self, data: bytes, max_length: int) -> bytes:
        """At most ``max_length`` decoded bytes: a compressed bomb never grows past the limit in
        memory (when the output stops short of it, all of ``data`` was consumed)."""
        try:
            return self._inner.decompress(data, max_length)
        except zlib.error as error:
            if self._deflate_fallback:
                self._deflate_fallback = False
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.feed(data, max_length)
            raise httpx.DecodingError(f"body could not be decoded ({error})") from None

    def flush(self) -> bytes:
        try:
            return self._inner.flush()
        except zlib.error as error:
            raise httpx.DecodingError(f"body could not be decoded ({error})") from None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange at a time (no pipelining)."""

    def __init__(self, pool: WirePool, origin: _Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.in_use = True
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[WireResponse] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head_only = False
        self._limit = 0
        self._error_limit = 0
        self._reason = ""
        self._headers: list[tuple[str, str]] = []
        self._status = 0
        self._cap = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._decoder: _Decoder | None = None
        self._until_close = False
        self._headers_done = False
        self.reusable = False

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but are one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            # Bytes nobody asked for: the connection's state is unknown, it is not reused.
            self.close()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as error:
            # httptools wraps what a callback raised (a decoding error, a body over its limit).
            cause = error.__context__
            if isinstance(cause, httpx.DecodingError | ResponseTooLarge):
                self._fail(cause)
            else:
                self._fail(httpx.RemoteProtocolError(f"the answer is not HTTP/1.1 ({error})"))

    def eof_received(self) -> bool | None:
        # The transport closes now but tells connection_lost a loop round later: marked closed at
        # once, an idle connection is not handed to a call in between (its request would be lost).
        self.closed = True
        return None  # let the transport close: connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._headers_done and self._until_close:
                # An answer without a length ends where the connection does.
                try:
                    self._end_body()
                except (httpx.DecodingError, ResponseTooLarge) as error:
                    self._fail(error)
            else:
                self._fail(httpx.ReadError("the upstream closed the connection before answering in full"))
        elif not self.in_use:
            self.pool._drop_idle(self)

    # --- httptools callbacks -----------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self._reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if status < 200:
            self._headers = []  # an interim answer (100 Continue...): the real one follows
            return
        self._status = status
        self._headers_done = True
        success = 200 <= status < 300
        self._cap = self._limit if success else self._error_limit
        length: str | None = None
        chunked = False
        for name, value in self._headers:
            if name == "content-length":
                length = value.strip()
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "content-encoding":
                encoding = value.strip().lower()
                if encoding in ("gzip", "deflate"):
                    self._decoder = _Decoder(encoding)
        # A HEAD's Content-Length is what a GET's body would be: nothing of it comes.
        bodyless = self._head_only or status in (204, 304)
        if success and not bodyless and length is not None and length.isdigit() and int(length) > self._limit:
            raise ResponseTooLarge(self._limit)
        self._until_close = not bodyless and length is None and not chunked
        if bodyless:
            # httptools does not know the request was a HEAD: the answer ends with its head.
            self._complete()

    def on_body(self, data: bytes) -> None:
        decoder = self._decoder
        if decoder is not None:
            # One byte over the room left is enough to know the body is too large.
            data = decoder.feed(data, self._cap - self._size + 1)
        self._take(data)

    def on_message_complete(self) -> None:
        if self._headers_done:  # else the end of an interim answer
            self._end_body()

    # --- one exchange --------------------------------------------------------------------------

    def exchange(
        self, data: bytes, *, head_only: bool, limit: int, error_limit: int, timeout: float
    ) -> asyncio.Future[WireResponse]:
        transport = self.transport
        assert transport is not None
        loop = self.pool._loop()
        waiter: asyncio.Future[WireResponse] = loop.create_future()
        self._waiter = waiter
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._limit, self._error_limit = limit, error_limit
        self._status, self._reason, self._headers, self._chunks, self._size = 0, "", [], [], 0
        self._decoder, self._headers_done, self._until_close, self.reusable = None, False, False, False
        self._timer = loop.call_later(timeout, self._timed_out, timeout)
        transport.write(data)
        return waiter

    def _end_body(self) -> None:
        if self._decoder is not None:
            self._take(self._decoder.flush())
        self._complete()

    def _take(self, data: bytes) -> None:
        if not data:
            return
        room = self._cap - self._size
        if len(data) > room:
            if 200 <= self._status < 300:
                raise ResponseTooLarge(self._limit)
            # An error body is only read for its excerpt: keep the start, drop the connection.
            self._chunks.append(data[:room])
            self._size = self._cap
            self._complete(keep_alive=False)
            return
        self._chunks.append(data)
        self._size += len(data)

    def _complete(self, *, keep_alive: bool = True) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        parser = self._parser
        self._parser = None
        self._cancel_timer()
        self.reusable = (
            keep_alive
            and not self.closed
            and not self._until_close
            and parser is not None
            and parser.should_keep_alive()
        )
        body = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        waiter.set_result(WireResponse(self._status, self._reason, tuple(self._headers), body))

    def _fail(self, error: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        self._parser = None
        self._cancel_timer()
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        self._fail(httpx.ReadTimeout(f"no complete answer within {timeout:.3f}s"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class WirePool:
    """At most ``max_connections`` connections over all origins; idle ones reused newest first."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        default_headers: Sequence[tuple[str, str]] = (),
        clock: Clock = SYSTEM_CLOCK,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` verifies https upstreams; by default httpx's (certifi's CA bundle)."""
        self._max = max_connections
        self._ssl_context = ssl_context
        self._expiry = keepalive_expiry
        self._defaults = tuple(default_headers)
        self._clock = clock
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._count = 0  # connections open or opening, idle or not
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._event_loop: asyncio.AbstractEventLoop | None = None

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self._event_loop
        if loop is None:
            loop = self._event_loop = asyncio.get_running_loop()
        return loop

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        timeout: float,
        limit: int,
        error_limit: int,
    ) -> WireResponse:
        """One exchange; ``headers`` replace the pool's defaults of the same name (any case)."""
        if self._closed:
            raise RuntimeError("the pool is closed")
        origin, target = split_url(url)
        data = self._head(method, origin, target, headers, body)
        connection = await self._acquire(origin, timeout)
        try:
            response = await connection.exchange(
                data, head_only=method == "HEAD", limit=limit, error_limit=error_limit, timeout=timeout
            )
        except BaseException:
            connection.close()
            self._release(connection)
            raise
        self._release(connection)
        return response

    def _head(
        self,
        method: str,
        origin: _Origin,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        names = {name.lower() for name, _ in headers}
        for name, value in (*((k, v) for k, v in self._defaults if k.lower() not in names), *headers):
            if any(c in value or c in name for c in _FORBIDDEN_IN_HEADERS):
                raise httpx.LocalProtocolError(f"header {name} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n\r\n")
            head = "".join(lines).encode()
            return head + body
        if method not in _BODYLESS_METHODS:
            lines.append("Content-Length: 0\r\n")
        lines.append("\r\n")
        return "".join(lines).encode()

    async def _acquire(self, origin: _Origin, timeout: float) -> _Connection:
        loop = self._loop()
        deadline = loop.time() + timeout
        while True:
            connection = self._pop_idle(origin)
            if connection is not None:
                return connection
            if self._count >= self._max:
                self._evict_other_idle()
            if self._count < self._max:
                return await self._open(origin, deadline - loop.time())
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    await waiter
            except BaseException as error:
                self._leave_queue(waiter)
                if isinstance(error, TimeoutError):
                    raise httpx.PoolTimeout(f"no connection free within {timeout:.3f}s") from None
                raise

    def _leave_queue(self, waiter: asyncio.Future[None]) -> None:
        """A call stops waiting (timed out, cancelled); if it was woken in the same round, the
        wake-up goes to the next in line, or that one would wait for a connection that is free."""
        if waiter.done() and not waiter.cancelled():
            self._wake()
        elif waiter in self._waiters:
            self._waiters.remove(waiter)

    def _pop_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = self._clock.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self._expiry:
                connection.in_use = True
                return connection
            connection.close()
            self._count -= 1
        return None

    def _evict_other_idle(self) -> None:
        """Make room for a new origin: close the longest-idle connection of another one."""
        oldest: _Connection | None = None
        for connections in self._idle.values():
            if connections and (oldest is None or connections[0].idle_since < oldest.idle_since):
                oldest = connections[0]
        if oldest is not None:
            self._idle[oldest.origin].remove(oldest)
            oldest.close()
            self._count -= 1

    async def _open(self, origin: _Origin, timeout: float) -> _Connection:
        self._count += 1
        loop = self._loop()
        secure = origin.scheme == "https"
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=(self._ssl_context or _ssl_context()) if secure else None,
                    server_hostname=origin.host if secure else None,
                )
        except TimeoutError:
            self._count -= 1
            self._wake()
            raise httpx.ConnectTimeout(f"no connection within {timeout:.3f}s") from None
        except (OSError, ssl.SSLError) as error:
            self._count -= 1
            self._wake()
            raise httpx.ConnectError(str(error) or type(error).__name__) from None
        except BaseException:
            self._count -= 1
            self._wake()
            raise
        return connection

    def _release(self, connection: _Connection) -> None:
        connection.in_use = False
        if connection.reusable and not connection.closed and not self._closed:
            connection.idle_since = self._clock.monotonic()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()
            self._count -= 1
        self._wake()

    def _drop_idle(self, connection: _Connection) -> None:
        """An idle connection the upstream closed: forget it at once, it frees a slot."""
        idle = self._idle.get(connection.origin)
        if idle is not None and connection in idle:
            idle.remove(connection)
            self._count -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._count = 0
