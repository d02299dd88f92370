"""The aiohttp-backed httpx transport against raw HTTP peers on loopback: it must keep every promise
httpx's own transport made to the code above it (what is sent, streaming, pooling, no retries or
redirects or cookies, and which httpx exception each failure becomes)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from servers import closed_port_url, never_answer, read_request, serve_raw

from aggregator.upstreams.http import build_client
from aggregator.upstreams.transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A keep-alive HTTP/1.1 peer answering every request with ``answer``; it records the request
    heads and counts connections."""

    def __init__(self, answer: bytes = b"") -> None:
        self.answer = answer or response(b'{"ok":true}')
        self.heads: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while not reader.at_eof():
            try:
                self.heads.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            writer.write(self.answer)
            await writer.drain()


def response(body: bytes, *, status: str = "200 OK", headers: tuple[str, ...] = ()) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def header_names(head: bytes) -> list[str]:
    lines = head.decode().split("\r\n")[1:]
    return [line.partition(":")[0].lower() for line in lines if line]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An upstream client as the gateway builds one, on the aiohttp transport."""
    async with build_client(timeout=5.0, max_connections=10) as built:
        yield built


async def test_the_request_is_sent_as_httpx_built_it(client: httpx.AsyncClient) -> None:
    """Method, path, query and headers are httpx's: aiohttp adds no header of its own."""
    peer = Peer()
    async with serve_raw(peer.handle) as url:
        response_ = await client.post(f"{url}/a%2Fb?q=1&q=2", headers={"X-Trace": "t"}, content=b"{}")
    assert response_.json() == {"ok": True}
    (head,) = peer.heads
    assert head.startswith(b"POST /a%2Fb?q=1&q=2 HTTP/1.1\r\n")
    assert sorted(header_names(head)) == sorted(
        ["host", "accept", "accept-encoding", "connection", "user-agent", "content-length", "x-trace"]
    )
    assert b"\r\nUser-Agent: aggregator\r\n" in head


async def test_sequential_requests_share_one_pooled_connection(client: httpx.AsyncClient) -> None:
    """A fully read answer gives its connection back to the pool."""
    peer = Peer()
    async with serve_raw(peer.handle) as url:
        for _ in range(3):
            assert (await client.get(url)).status_code == 200
    assert (len(peer.heads), peer.connections) == (3, 1)


async def test_closing_a_half_read_body_closes_its_connection(client: httpx.AsyncClient) -> None:
    """The body streams; a response closed before its end is not pooled (its rest would be read as
    the next answer), so the next request opens a new connection."""
    big = b"x" * (1024 * 1024)
    peer = Peer(response(big))
    async with serve_raw(peer.handle) as url:
        async with client.stream("GET", url) as streamed:
            first = await streamed.aiter_raw().__anext__()
        assert 0 < len(first) < len(big)
        assert (await client.get(url)).content == big
    assert peer.connections == 2


async def test_redirects_come_back_unfollowed(client: httpx.AsyncClient) -> None:
    """A 3xx is the answer: the transport never follows Location."""
    peer = Peer(response(b"", status="302 Found", headers=("Location: /elsewhere",)))
    async with serve_raw(peer.handle) as url:
        answer = await client.get(url)
    assert (answer.status_code, len(peer.heads)) == (302, 1)


async def test_cookies_an_upstream_sets_are_not_sent_back(client: httpx.AsyncClient) -> None:
    """One client serves every user: a Set-Cookie must never ride along on a later call."""
    peer = Peer(response(b"{}", headers=("Set-Cookie: session=alice; Path=/",)))
    async with serve_raw(peer.handle) as url:
        await client.get(url)
        await client.get(url)
    assert all(b"cookie:" not in head.lower() for head in peer.heads)


async def test_content_encoding_is_decoded_by_httpx_not_the_transport() -> None:
    """The transport hands the body over as it came (so httpx decodes it and the size limit applies
    after decoding)."""
    plain = b'{"big": "' + b"a" * 10_000 + b'"}'
    peer = Peer(response(gzip.compress(plain), headers=("Content-Encoding: gzip",)))
    transport = AiohttpTransport(max_connections=2)
    async with serve_raw(peer.handle) as url, httpx.AsyncClient(transport=transport) as client:
        raw = await transport.handle_async_request(httpx.Request("GET", url))
        compressed = b"".join([chunk async for chunk in raw.stream])  # type: ignore[union-attr]
        await raw.aclose()
        decoded = await client.get(url)
    assert gzip.decompress(compressed) == plain
    assert decoded.content == plain


async def test_a_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    """Nothing was sent: httpx.ConnectError, which the upstream maps to sent=False."""
    with pytest.raises(httpx.ConnectError):
        await client.get(closed_port_url())


async def test_a_reset_after_sending_is_not_retried(client: httpx.AsyncClient) -> None:
    """aiohttp would repeat an idempotent request once on a broken connection; here the peer sees one
    request and the caller an error that says the request may have arrived (not ConnectError)."""
    seen: list[bytes] = []

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with serve_raw(reset) as url:
        with pytest.raises(httpx.TransportError) as caught:
            await client.get(url)
    assert len(seen) == 1
    assert isinstance(caught.value, httpx.ReadError | httpx.RemoteProtocolError)


async def test_a_stalled_answer_is_a_read_timeout() -> None:
    """No answer within the read timeout: httpx.ReadTimeout, not a bare TimeoutError."""
    async with serve_raw(never_answer()) as url, build_client(timeout=0.2, max_connections=2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url)


async def test_a_closed_transport_refuses_requests() -> None:
    """After aclose() (the integration stopped) a request is a programming error."""
    transport = AiohttpTransport(max_connections=1)
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))
