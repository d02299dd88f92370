"""Real loopback servers for tests.

``serve_asgi`` runs any ASGI app under uvicorn in a background thread on 127.0.0.1 (a free port) and
yields its base URL once it accepts connections. ``serve_raw`` runs a bare asyncio server on the
test's own loop for peers that misbehave in ways a framework will not: drip a body, reset the
connection mid-body, accept and never answer. ``closed_port_url`` names a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Literal

import uvicorn

__all__ = [
    "RawHandler",
    "closed_port_url",
    "drip",
    "never_answer",
    "read_request",
    "reset_mid_body",
    "serve_asgi",
    "serve_raw",
]

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

_STARTUP_SECONDS = 10.0
_SHUTDOWN_SECONDS = 5.0


class _ThreadedServer(uvicorn.Server):
    """A uvicorn server that says when it is listening, so nobody has to poll the port."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serve_asgi(
    app: Any,
    *,
    lifespan: Literal["auto", "on", "off"] = "off",
    startup_seconds: float = _STARTUP_SECONDS,
    tls: tuple[str, str] | None = None,
) -> Iterator[str]:
    """Serve ``app`` on a free loopback port for the duration of the block; yields ``http://host:port``.

    ``lifespan="on"`` runs the app's start-up and shut-down, as the gateway's own app needs; a start-up
    longer than ``startup_seconds`` fails. ``tls=(cert_file, key_file)`` serves https instead.
    """
    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        ws="none",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    server = _ThreadedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(startup_seconds):
            raise RuntimeError("the test server did not start")
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(_SHUTDOWN_SECONDS)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_SHUTDOWN_SECONDS)
        sock.close()


@contextlib.asynccontextmanager
async def serve_raw(handler: RawHandler) -> AsyncIterator[str]:
    """Serve each connection with ``handler`` on the running loop; yields ``http://host:port``.

    On exit the handlers still running are cancelled and their connections closed.
    """
    tasks: set[asyncio.Task[None]] = set()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: that is what these peers are for
        except asyncio.CancelledError:
            # Only serve_raw's exit cancels these; raised on, asyncio 3.11 logs it from its callback.
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def closed_port_url() -> str:
    """A loopback URL on a port that was free a moment ago and has no listener: connecting is refused."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 request (head and Content-Length body) and return its head."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value.strip()))
    return head


def _response_head(length: int, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n").encode()


def drip(body: bytes, *, interval: float, disconnected: asyncio.Event | None = None) -> RawHandler:
    """Answer 200 at once, then send ``body`` one byte every ``interval`` seconds.

    ``disconnected`` is set when the client closes the connection before the body is complete.
    """

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(_response_head(len(body)))
        try:
            for index in range(len(body)):
                await writer.drain()
                if reader.at_eof():
                    raise ConnectionResetError("the client closed the connection")
                writer.write(body[index : index + 1])
                await asyncio.sleep(interval)
        except ConnectionError:
            if disconnected is not None:
                disconnected.set()
            raise

    return handler


def reset_mid_body(*, declared: int, sent: bytes, after: float = 0.1) -> RawHandler:
    """Announce ``declared`` body bytes, send only ``sent``, wait ``after`` seconds, then reset (RST)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(_response_head(declared) + sent)
        await writer.drain()
        await asyncio.sleep(after)
        sock = writer.get_extra_info("socket")
        # Linger 0: closing sends RST instead of FIN, as a crashed or killed peer would.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    return handler


def never_answer(accepted: asyncio.Event | None = None) -> RawHandler:
    """Read the request and then say nothing until the client gives up."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if accepted is not None:
            accepted.set()
        await reader.read()  # until the client closes

    return handler
