"""The upstream calls' HTTP/1.1 client (``WirePool``, wire.py) against raw HTTP peers on loopback: what
it sends, how it pools connections, how it reads bodies, and which httpx exception each failure is."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing

import httpx
import pytest
import trustme
from servers import closed_port_url, drip, never_answer, read_request, serve_raw

from aggregator.errors import UpstreamBadResponse
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.testing import FakeClock
from aggregator.upstreams.http import DEFAULT_HEADERS, UpstreamClient
from aggregator.upstreams.wire import (
    KEEPALIVE_EXPIRY,
    MAX_URL_LENGTH,
    ResponseTooLarge,
    WirePool,
    WireResponse,
)

LIMIT = 64 * 1024
ERROR_LIMIT = 1024
# Calls that must succeed get a generous timeout (a noisy machine); calls that must time out a short one.
TIMEOUT = 5.0
SHORT = 0.2
HELLO = b"hello world"


def response(body: bytes = HELLO, *, status: str = "200 OK", headers: Sequence[str] = ()) -> bytes:
    """An HTTP/1.1 answer with a Content-Length."""
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(*chunks: bytes, status: str = "200 OK") -> bytes:
    """An HTTP/1.1 answer in chunked transfer encoding, without a Content-Length."""
    framed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + framed + b"0\r\n\r\n"


def headers_of(head: bytes) -> list[tuple[str, str]]:
    """A request head's header lines as (lower-cased name, value)."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = [line.partition(":") for line in lines if line]
    return [(name.lower(), value.strip()) for name, _, value in pairs]


def values(head: bytes, name: str) -> list[str]:
    return [value for key, value in headers_of(head) if key == name]


async def read_exchange(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request: its head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = values(head, "content-length")
    body = await reader.readexactly(int(lengths[0])) if lengths else b""
    return head, body


class Peer:
    """A keep-alive HTTP/1.1 peer answering the n-th request with ``answers[n]`` (the last one repeats).

    It records each request (head, body) and the number of the connection it came on (1, 2, ...), and
    counts connections: opened, closed by the client, and hung up by itself (``hang_up``: after each
    answer). A request whose index is in ``holds`` is answered only once that event is set.
    """

    def __init__(self, *answers: bytes, hang_up: bool = False) -> None:
        self.answers = answers or (response(),)
        self.hang_up = hang_up
        self.holds: dict[int, asyncio.Event] = {}
        self.requests: list[tuple[bytes, bytes]] = []
        self.carried_by: list[int] = []
        self.connections = 0
        self.client_closed = 0
        self.hung_up = 0
        self._changed = asyncio.Condition()

    @property
    def heads(self) -> list[bytes]:
        return [head for head, _ in self.requests]

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait (a generous while) until ``predicate`` holds."""
        async with asyncio.timeout(TIMEOUT), self._changed:
            await self._changed.wait_for(predicate)

    async def _changed_state(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        await self._changed_state()
        while True:
            try:
                request = await read_exchange(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.client_closed += 1
                await self._changed_state()
                return
            index = len(self.requests)
            self.requests.append(request)
            self.carried_by.append(number)
            await self._changed_state()
            if index in self.holds:
                await self.holds[index].wait()
            writer.write(self.answers[min(index, len(self.answers) - 1)])
            await writer.drain()
            if self.hang_up:
                writer.close()
                await writer.wait_closed()
                self.hung_up += 1
                await self._changed_state()
                return


async def call(
    pool: WirePool,
    url: str,
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    timeout: float = TIMEOUT,
    limit: int = LIMIT,
) -> WireResponse:
    return await pool.request(
        method, url, headers=headers, body=body, timeout=timeout, limit=limit, error_limit=ERROR_LIMIT
    )


async def loop_round() -> None:
    """Let the loop run one round: tasks just created take their first step, and what is already on a
    loopback socket (an answer, an end of stream) is read."""
    await asyncio.sleep(0)


def make_pool(max_connections: int = 10, clock: Clock = SYSTEM_CLOCK) -> WirePool:
    """A pool with the client's default headers."""
    return WirePool(max_connections=max_connections, default_headers=DEFAULT_HEADERS, clock=clock)


@pytest.fixture
async def pool() -> AsyncIterator[WirePool]:
    """A pool as UpstreamClient builds one: room for ten connections, the client's default headers."""
    built = make_pool()
    yield built
    await built.aclose()


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    """An integration's client, as an upstream makes it."""
    built = UpstreamClient(max_connections=10)
    yield built
    await built.aclose()


# --- what is sent ----------------------------------------------------------------------------------


async def test_a_call_sends_its_request_line_host_headers_and_body(client: UpstreamClient) -> None:
    """Method, the encoded target with a repeated query, Host, default and own headers, the body."""
    peer = Peer()
    async with serve_raw(peer.handle) as url:
        await client.exchange(
            "POST",
            f"{url}/a%2Fb",
            params=[("q", "1"), ("q", "2")],
            headers={"X-Trace": "t"},
            content=b"{}",
            timeout=TIMEOUT,
            limit=LIMIT,
        )
    ((head, body),) = peer.requests
    assert head.startswith(b"POST /a%2Fb?q=1&q=2 HTTP/1.1\r\n")
    assert sorted(headers_of(head)) == sorted(
        [
            ("host", url.removeprefix("http://")),
            ("user-agent", "aggregator"),
            ("accept", "application/json"),
            ("accept-encoding", "gzip, deflate"),
            ("x-trace", "t"),
            ("content-length", "2"),
        ]
    )
    assert body == b"{}"


async def test_the_callers_headers_replace_the_defaults_whatever_their_case(pool: WirePool) -> None:
    """A default header the caller also sets, in any case, is sent once, with the caller's value."""
    peer = Peer()
    async with serve_raw(peer.handle) as url:
        await call(pool, url, headers=[("user-agent", "probe/1"), ("ACCEPT", "text/plain")])
    (head,) = peer.heads
    assert values(head, "user-agent") == ["probe/1"]
    assert values(head, "accept") == ["text/plain"]
    assert values(head, "accept-encoding") == ["gzip, deflate"]


@pytest.mark.parametrize(
    ("method", "body", "declared"),
    [
        ("GET", None, []),
        ("DELETE", None, []),
        ("POST", None, ["0"]),
        ("PUT", None, ["0"]),
        ("POST", b"abc", ["3"]),
    ],
    ids=["get", "delete", "post-without-body", "put-without-body", "post-with-body"],
)
async def test_content_length_is_sent_for_a_body_or_a_method_that_expects_one(
    pool: WirePool, method: str, body: bytes | None, declared: list[str]
) -> None:
    """Content-Length says a body's size, is 0 for a POST or PUT without one, absent for a GET or DELETE."""
    peer = Peer()
    async with serve_raw(peer.handle) as url:
        await call(pool, url, method=method, body=body)
    ((head, received),) = peer.requests
    assert values(head, "content-length") == declared
    assert received == (body or b"")


@pytest.mark.parametrize("character", ["\r", "\n", "\0"], ids=["cr", "lf", "nul"])
async def test_a_header_value_with_a_line_break_or_nul_is_refused_unsent(
    pool: WirePool, character: str
) -> None:
    """A header value that could end the head early is a LocalProtocolError; no connection is opened."""
    peer = Peer()
    async with serve_raw(peer.handle) as url:
        with pytest.raises(httpx.LocalProtocolError):
            await call(pool, url, headers=[("X-Note", f"a{character}Injected: yes")])
    assert peer.connections == 0


@pytest.mark.parametrize(
    ("make_url", "error"),
    [
        (lambda base: f"{base}/?q={'a' * MAX_URL_LENGTH}", httpx.InvalidURL),
        (lambda base: f"{base}/a\r\nInjected: yes", httpx.InvalidURL),
        (lambda base: f"{base}/a\tb", httpx.InvalidURL),
        (lambda base: base.replace("http://", "ftp://"), httpx.UnsupportedProtocol),
    ],
    ids=["too-long", "line-break", "control-character", "not-http"],
)
async def test_a_url_that_cannot_be_called_fails_before_anything_is_sent(
    pool: WirePool, make_url: Callable[[str], str], error: type[Exception]
) -> None:
    """Over 65,536 characters or with a control character: InvalidURL; not http(s): UnsupportedProtocol."""
    peer = Peer()
    async with serve_raw(peer.handle) as url:
        with pytest.raises(error):
            await call(pool, make_url(url))
    assert peer.connections == 0


async def test_redirects_come_back_unfollowed(pool: WirePool) -> None:
    """A 3xx is the answer: Location is never followed."""
    peer = Peer(response(b"", status="302 Found", headers=["Location: /elsewhere"]))
    async with serve_raw(peer.handle) as url:
        answer = await call(pool, url)
    assert (answer.status, len(peer.requests)) == (302, 1)


async def test_cookies_an_upstream_sets_are_never_sent_back(pool: WirePool) -> None:
    """One pool serves every user: a Set-Cookie must never ride along on a later call."""
    peer = Peer(response(headers=["Set-Cookie: session=alice; Path=/"]))
    async with serve_raw(peer.handle) as url:
        await call(pool, url)
        await call(pool, url)
    assert len(peer.heads) == 2
    assert all(values(head, "cookie") == [] for head in peer.heads)


# --- pooling ---------------------------------------------------------------------------------------


async def test_sequential_calls_share_one_connection(pool: WirePool) -> None:
    """An answer read to its end gives its connection back for the next call."""
    peer = Peer()
    async with serve_raw(peer.handle) as url:
        for _ in range(3):
            assert (await call(pool, url)).body == HELLO
    assert (len(peer.requests), peer.connections) == (3, 1)


async def test_concurrent_calls_open_up_to_max_connections_and_the_rest_wait_for_one() -> None:
    """Two slots, five calls at once: two connections open, the other calls wait and then reuse them."""
    peer = Peer()
    gate = asyncio.Event()
    peer.holds = {0: gate, 1: gate}
    async with aclosing(make_pool(max_connections=2)) as pool, serve_raw(peer.handle) as url:
        calls = [asyncio.create_task(call(pool, url)) for _ in range(5)]
        await peer.until(lambda: len(peer.requests) == 2)
        assert peer.connections == 2
        gate.set()
        answers = await asyncio.gather(*calls)
    assert [answer.body for answer in answers] == [HELLO] * 5
    assert (len(peer.requests), peer.connections) == (5, 2)


async def test_the_newest_idle_connection_is_reused_first() -> None:
    """Of two idle connections the one freed last carries the next call (the older one may expire)."""
    peer = Peer()
    gates = [asyncio.Event(), asyncio.Event()]
    peer.holds = dict(enumerate(gates))
    async with aclosing(make_pool(max_connections=2)) as pool, serve_raw(peer.handle) as url:
        calls = [asyncio.create_task(call(pool, url)) for _ in gates]
        await peer.until(lambda: len(peer.requests) == 2)
        for gate, task in zip(reversed(gates), reversed(calls), strict=True):
            gate.set()
            await task
        await call(pool, url)
    assert peer.carried_by[2] == peer.carried_by[0]


async def test_at_the_limit_an_idle_connection_to_another_origin_makes_room() -> None:
    """With every slot idle on origin A, a call to origin B closes A's connection and goes through."""
    first, second = Peer(), Peer()
    async with (
        aclosing(make_pool(max_connections=1)) as pool,
        serve_raw(first.handle) as url_a,
        serve_raw(second.handle) as url_b,
    ):
        await call(pool, url_a)
        assert (await call(pool, url_b, timeout=SHORT)).body == HELLO
        await first.until(lambda: first.client_closed == 1)


async def test_waiting_for_a_connection_longer_than_the_timeout_is_a_pool_timeout() -> None:
    """With the only slot busy, a call gives up after its timeout with PoolTimeout, unsent."""
    peer = Peer()
    gate = asyncio.Event()
    peer.holds = {0: gate}
    async with aclosing(make_pool(max_connections=1)) as pool, serve_raw(peer.handle) as url:
        busy = asyncio.create_task(call(pool, url))
        await peer.until(lambda: len(peer.requests) == 1)
        with pytest.raises(httpx.PoolTimeout):
            await call(pool, url, timeout=SHORT)
        gate.set()
        assert (await busy).body == HELLO
    assert len(peer.requests) == 1


async def test_a_waiter_cancelled_as_it_is_woken_passes_the_connection_on() -> None:
    """A waiting call cancelled right after a connection was freed for it does not strand the next in
    line: that one gets the connection at once rather than a PoolTimeout."""
    peer = Peer()
    gate = asyncio.Event()
    peer.holds = {0: gate}

    async def first_then_cancel_second() -> WireResponse:
        answer = await call(pool, url)
        # Same step as the release that woke the second call: it is cancelled before it could run.
        second.cancel()
        return answer

    async with aclosing(make_pool(max_connections=1)) as pool, serve_raw(peer.handle) as url:
        first = asyncio.create_task(first_then_cancel_second())
        await peer.until(lambda: len(peer.requests) == 1)
        second = asyncio.create_task(call(pool, url))
        third = asyncio.create_task(call(pool, url))
        await loop_round()
        gate.set()
        assert (await first).body == HELLO
        with pytest.raises(asyncio.CancelledError):
            await second
        assert (await third).body == HELLO
    assert (len(peer.requests), peer.connections) == (2, 1)


async def test_an_idle_connection_the_peer_closed_is_not_reused(pool: WirePool) -> None:
    """Once the loop has read the peer's close of an idle connection (connection_lost is still a round
    away), the next call opens a new connection and succeeds."""
    peer = Peer(hang_up=True)
    async with serve_raw(peer.handle) as url:
        await call(pool, url)
        await peer.until(lambda: peer.hung_up == 1)
        await loop_round()
        assert (await call(pool, url)).body == HELLO
    assert peer.connections == 2


@pytest.mark.parametrize(
    ("idle", "connections"),
    [(KEEPALIVE_EXPIRY - 0.01, 1), (KEEPALIVE_EXPIRY, 2)],
    ids=["within-expiry", "at-expiry"],
)
async def test_an_idle_connection_is_reused_until_the_keepalive_expiry_then_closed(
    idle: float, connections: int
) -> None:
    """Idle for less than keepalive_expiry a connection is reused; after it, closed and replaced."""
    clock = FakeClock()
    peer = Peer()
    async with aclosing(make_pool(clock=clock)) as pool, serve_raw(peer.handle) as url:
        await call(pool, url)
        clock.advance(idle)
        assert (await call(pool, url)).body == HELLO
        await peer.until(lambda: peer.client_closed == connections - 1)
        assert peer.connections == connections


@pytest.mark.parametrize(
    "answer",
    [
        response(headers=["Connection: close"]),
        response().replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_ends_keep_alive_is_not_reused(pool: WirePool, answer: bytes) -> None:
    """After `Connection: close` (or an HTTP/1.0 answer) the next call opens a new connection."""
    peer = Peer(answer)
    async with serve_raw(peer.handle) as url:
        await call(pool, url)
        assert (await call(pool, url)).body == HELLO
    assert peer.connections == 2


async def test_a_call_cancelled_while_waiting_for_its_answer_closes_its_connection(pool: WirePool) -> None:
    """A late answer to a cancelled call is never read as the next call's: that connection is closed."""
    peer = Peer(response(b"stale"), response(b"fresh"))
    gate = asyncio.Event()
    peer.holds = {0: gate}
    async with serve_raw(peer.handle) as url:
        cancelled = asyncio.create_task(call(pool, url))
        await peer.until(lambda: len(peer.requests) == 1)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        gate.set()
        assert (await call(pool, url)).body == b"fresh"
    assert peer.connections == 2


# --- bodies ----------------------------------------------------------------------------------------


async def test_the_answer_comes_back_with_status_reason_and_headers_as_received(pool: WirePool) -> None:
    """Status, reason phrase, and headers in order with their names lower-cased."""
    peer = Peer(response(status="201 Made It", headers=["X-One: 1", "X-Two: 2"]))
    async with serve_raw(peer.handle) as url:
        answer = await call(pool, url)
    assert (answer.status, answer.reason) == (201, "Made It")
    assert answer.headers == (("content-length", str(len(HELLO))), ("x-one", "1"), ("x-two", "2"))


@pytest.mark.parametrize(
    ("answer", "hang_up", "connections"),
    [
        (response(), False, 1),
        (chunked(b"hello", b" world"), False, 1),
        (b"HTTP/1.1 200 OK\r\n\r\n" + HELLO, True, 2),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + response(), False, 1),
    ],
    ids=["content-length", "chunked", "until-close", "after-interim-answer"],
)
async def test_the_body_is_read_whole_however_it_is_framed(
    pool: WirePool, answer: bytes, hang_up: bool, connections: int
) -> None:
    """Content-Length, chunked, read until the peer closes, after a 1xx: the whole body, and the next
    call gets its own answer (on the same connection unless the body ended with it)."""
    peer = Peer(answer, hang_up=hang_up)
    async with serve_raw(peer.handle) as url:
        assert (await call(pool, url)).body == HELLO
        if hang_up:
            await peer.until(lambda: peer.hung_up == 1)
        assert (await call(pool, url)).body == HELLO
    assert peer.connections == connections


async def test_a_body_arriving_byte_by_byte_is_read_whole(pool: WirePool) -> None:
    """A body split over many reads is put back together."""
    async with serve_raw(drip(HELLO, interval=0.001)) as url:
        assert (await call(pool, url)).body == HELLO


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1)),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"),
    ],
    ids=["head", "204", "304"],
)
async def test_an_answer_without_a_body_ends_with_its_head(
    pool: WirePool, method: str, answer: bytes
) -> None:
    """HEAD (even with a Content-Length over the limit), 204 and 304 have no body; the connection
    serves the next call."""
    peer = Peer(answer, response())
    async with serve_raw(peer.handle) as url:
        first = await call(pool, url, method=method)
        second = await call(pool, url)
    assert (first.body, second.body) == (b"", HELLO)
    assert peer.connections == 1


PLAIN = b'{"text": "' + b"a" * 10_000 + b'"}'


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [("gzip", gzip.compress(PLAIN)), ("deflate", zlib.compress(PLAIN)), ("deflate", raw_deflate(PLAIN))],
    ids=["gzip", "deflate-zlib", "deflate-raw"],
)
async def test_a_compressed_body_is_decoded(pool: WirePool, encoding: str, encoded: bytes) -> None:
    """gzip and deflate (zlib-wrapped as specified, or raw as some servers send it) come back decoded."""
    peer = Peer(response(encoded, headers=[f"Content-Encoding: {encoding}"]))
    async with serve_raw(peer.handle) as url:
        assert (await call(pool, url)).body == PLAIN


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decode_is_a_decoding_error(pool: WirePool, encoding: str) -> None:
    """A body that is not what its Content-Encoding says is httpx.DecodingError."""
    peer = Peer(response(b"not compressed at all", headers=[f"Content-Encoding: {encoding}"]))
    async with serve_raw(peer.handle) as url:
        with pytest.raises(httpx.DecodingError):
            await call(pool, url)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1),
        chunked(b"x" * (LIMIT // 2), b"x" * (LIMIT // 2), b"x"),
        response(gzip.compress(b"0" * (LIMIT * 16)), headers=["Content-Encoding: gzip"]),
    ],
    ids=["declared", "arriving", "after-decoding"],
)
async def test_a_success_body_over_the_limit_is_response_too_large(pool: WirePool, answer: bytes) -> None:
    """Over ``limit`` bytes: as declared (before any body arrives), as it arrives, or once decoded."""
    peer = Peer(answer)
    async with serve_raw(peer.handle) as url:
        with pytest.raises(ResponseTooLarge):
            await call(pool, url)


async def test_the_client_reports_a_body_over_the_limit_as_a_bad_response(client: UpstreamClient) -> None:
    """UpstreamClient turns ResponseTooLarge into UpstreamBadResponse."""
    peer = Peer(response(b"x" * 101))
    async with serve_raw(peer.handle) as url:
        with pytest.raises(UpstreamBadResponse, match="100 bytes"):
            await client.exchange("GET", url, headers={}, content=None, timeout=TIMEOUT, limit=100)


async def test_an_error_body_is_cut_at_the_error_limit_and_its_connection_dropped(pool: WirePool) -> None:
    """A non-2xx body is read up to ``error_limit`` bytes only; its unread rest goes with its connection."""
    peer = Peer(response(b"e" * (ERROR_LIMIT * 4), status="500 Internal Server Error"), response())
    async with serve_raw(peer.handle) as url:
        failed = await call(pool, url)
        assert (await call(pool, url)).body == HELLO
    assert (failed.status, failed.body) == (500, b"e" * ERROR_LIMIT)
    assert peer.connections == 2


# --- failures --------------------------------------------------------------------------------------


async def test_a_refused_connection_is_a_connect_error(pool: WirePool) -> None:
    """Nothing was sent: httpx.ConnectError."""
    with pytest.raises(httpx.ConnectError):
        await call(pool, closed_port_url())


async def test_an_answer_that_does_not_come_in_time_is_a_read_timeout(pool: WirePool) -> None:
    """A peer that reads the request and says nothing: httpx.ReadTimeout once the timeout passes."""
    async with serve_raw(never_answer()) as url:
        with pytest.raises(httpx.ReadTimeout):
            await call(pool, url, timeout=SHORT)


async def test_a_reset_after_the_request_was_read_is_not_retried(pool: WirePool) -> None:
    """The peer sees one request; the caller an error that says it may have arrived (not ConnectError)."""
    seen: list[bytes] = []

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        sock = writer.get_extra_info("socket")
        # Linger 0: closing sends RST instead of FIN, as a crashed peer would.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with serve_raw(reset) as url:
        with pytest.raises(httpx.TransportError) as caught:
            await call(pool, url)
    assert isinstance(caught.value, httpx.ReadError | httpx.RemoteProtocolError)
    assert len(seen) == 1


async def test_an_answer_that_is_not_http_is_a_remote_protocol_error(pool: WirePool) -> None:
    """Bytes that are not an HTTP/1.1 answer: httpx.RemoteProtocolError."""
    peer = Peer(b"SSH-2.0-OpenSSH_9.6\r\n")
    async with serve_raw(peer.handle) as url:
        with pytest.raises(httpx.RemoteProtocolError):
            await call(pool, url)


async def test_a_closed_pool_refuses_calls() -> None:
    """After aclose() (the integration stopped) a call is a programming error."""
    pool = make_pool()
    await pool.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await call(pool, "http://127.0.0.1:9/")


# --- https ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A certificate authority of the test's own; its leaf certificate is for 127.0.0.1."""
    return trustme.CA()


async def serve_tls(authority: trustme.CA, answer: bytes) -> tuple[asyncio.Server, str, list[int]]:
    """A TLS peer on loopback answering every request on a connection with ``answer``; the list
    grows by one for each connection it accepts."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        try:
            while True:
                await read_exchange(reader)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections


async def test_an_https_upstream_is_called_over_verified_tls(authority: trustme.CA) -> None:
    """A certificate the context trusts: the answer comes back, and the connection is reused."""
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    server, url, connections = await serve_tls(authority, response())
    pool = WirePool(max_connections=2, ssl_context=trusted)
    try:
        for _ in range(2):
            answer = await call(pool, f"{url}/x")
            assert (answer.status, answer.body) == (200, HELLO)
        assert connections == [1]
    finally:
        await pool.aclose()
        server.close()
        await server.wait_closed()


async def test_a_certificate_that_does_not_verify_is_a_connect_error(authority: trustme.CA) -> None:
    """The default context (certifi's CAs) does not trust the test's authority: ConnectError, so the
    executor knows nothing was sent."""
    server, url, _ = await serve_tls(authority, response())
    pool = WirePool(max_connections=2)
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await call(pool, f"{url}/x")
    finally:
        await pool.aclose()
        server.close()
        await server.wait_closed()
