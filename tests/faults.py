"""A fault-injecting upstream: a real HTTP server on loopback that misbehaves on demand.

``FaultUpstream`` runs two listeners that share one request log and one mode:

- ``url``: an ASGI app (Starlette requests and responses) under uvicorn (``servers.serve_asgi``) for the
  HTTP-level faults;
- ``socket_url``: a bare asyncio server in its own thread for the socket-level ones, which no
  framework will act out (a reset mid-body, a peer that reads the request and says nothing).

A request picks its fault with ``?fault=NAME`` and options as further query keys
(``?fault=status&code=503&retry_after=2``); otherwise the mode set through the admin endpoint
(``POST /__admin/mode {"fault", "count", "options"}``, wrapped by ``set_mode``) applies to the next
``count`` requests (all of them when ``count`` is null), after which the upstream is healthy again.
A closed port (connection refused) is ``servers.closed_port_url()``.

Every request either listener receives is recorded (``seen``) before the fault is acted out, with
its method, raw path, query, headers, body and arrival time, so tests count attempts and see
exactly what was sent.

Faults (options in brackets):

- ``ok``: 200 with ``{"id", "name", "method"}``, ``id`` from the JSON body or the last path segment;
- ``delay`` [seconds]: ``ok`` after a delay;
- ``drip`` [interval, length]: 200 at once, then the body one byte every ``interval`` seconds;
- ``status`` [code, retry_after, retry_after_date, body]: that status; ``retry_after`` is sent as is
  (seconds), ``retry_after_date`` is seconds from now sent as an HTTP date;
- ``malformed_json``, ``wrong_content_type`` (an HTML page), ``empty_body``: a 200 that is unusable;
- ``oversize`` [size, declared]: a JSON body of ``size`` bytes, with Content-Length or chunked;
- ``redirect`` [location]: 302 to another host;
- ``echo`` [code]: that status with a body repeating the request's URL, headers and body, as careless
  APIs do in error pages (a leak test's worst case);
- ``hang``: accept the request and never answer (both listeners: after HTTP parsing, or raw);
- ``reset`` [declared, sent] (socket listener only): announce a body, send part of it, then RST.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

import httpx
import orjson
from servers import serve_asgi
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["SOCKET_FAULTS", "FaultUpstream", "Seen"]

SOCKET_FAULTS = frozenset({"ok", "hang", "reset"})
Listener = Literal["http", "socket"]

_CHUNK = 64 * 1024
_POLL = 0.05  # how often a hung handler looks whether the server is closing


@dataclass(frozen=True)
class Seen:
    """One request as the upstream received it; ``path`` is raw (still percent-encoded)."""

    listener: Listener
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes
    at: float
    fault: str

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class _Mode:
    fault: str = "ok"
    options: dict[str, Any] = field(default_factory=dict)
    remaining: int | None = None


def _number(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key)
    return default if value is None else float(value)


def _ok_payload(method: str, path: str, body: bytes) -> dict[str, Any]:
    document: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        document = orjson.loads(body) if body else None
    ident = document.get("id") if isinstance(document, dict) else None
    if ident is None:
        ident = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    return {"id": ident, "name": f"item {ident}", "method": method}


class FaultUpstream:
    """Both listeners, the shared mode and the request log; use as a context manager."""

    def __init__(self) -> None:
        self.url = ""
        self.socket_url = ""
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._seen: list[Seen] = []
        self._mode = _Mode()
        self._closing = threading.Event()
        self._stack = contextlib.ExitStack()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # A plain function: uvicorn takes a bound method for an ASGI2 app.
            await self._handle(scope, receive, send)

        self.app = app
        self._http_faults: dict[str, Callable[[Request, bytes, Mapping[str, Any]], Awaitable[Response]]] = {
            "ok": self._ok,
            "delay": self._delay,
            "drip": self._drip,
            "status": self._status,
            "malformed_json": self._malformed_json,
            "wrong_content_type": self._wrong_content_type,
            "empty_body": self._empty_body,
            "oversize": self._oversize,
            "redirect": self._redirect,
            "echo": self._echo,
            "hang": self._hang,
        }

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The HTTP listener's ASGI app. No router: a route pattern would not match every path a test
        sends (Starlette's ``{path:path}`` stops at a decoded line break), and every path is served."""
        assert scope["type"] == "http"
        request = Request(scope, receive)
        admin = scope["path"] == "/__admin/mode" and request.method == "POST"
        response = await (self._admin(request) if admin else self._serve_http(request))
        await response(scope, receive, send)

    def __enter__(self) -> FaultUpstream:
        self.url = self._stack.enter_context(serve_asgi(self.app))
        self.socket_url = self._stack.enter_context(_SocketListener(self._serve_socket))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()
        self._stack.close()

    # The control surface --------------------------------------------------------------------------

    def set_mode(self, fault: str, *, count: int | None = None, **options: Any) -> None:
        """Through the admin endpoint: act out ``fault`` for the next ``count`` requests (None: all)."""
        response = httpx.post(
            f"{self.url}/__admin/mode", json={"fault": fault, "count": count, "options": options}, timeout=10
        )
        response.raise_for_status()

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until ``count`` requests were received (True) or ``timeout`` seconds passed (False)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self._seen) >= count, timeout)

    def clear(self) -> None:
        """Forget the recorded requests and become healthy again."""
        with self._lock:
            self._seen.clear()
            self._mode = _Mode()

    async def _admin(self, request: Request) -> Response:
        order = await request.json()
        fault = order.get("fault")
        if fault not in self._http_faults and fault not in SOCKET_FAULTS:
            return JSONResponse({"error": f"unknown fault {fault!r}"}, status_code=400)
        count = order.get("count")
        with self._lock:
            self._mode = _Mode(fault, dict(order.get("options") or {}), None if count is None else int(count))
        return JSONResponse({"fault": fault, "count": count})

    def _take(self, query: Mapping[str, str]) -> tuple[str, Mapping[str, Any]]:
        """The fault for one request: its own ``?fault=``, else the admin mode (counting it down)."""
        if "fault" in query:
            return query["fault"], query
        with self._lock:
            mode = self._mode
            if mode.remaining is not None:
                mode.remaining -= 1
                if mode.remaining <= 0:
                    self._mode = _Mode()
            return mode.fault, mode.options

    def _record(self, seen: Seen) -> None:
        with self._arrived:
            self._seen.append(seen)
            self._arrived.notify_all()

    # The HTTP listener ----------------------------------------------------------------------------

    async def _serve_http(self, request: Request) -> Response:
        body = await request.body()
        query = dict(request.query_params)
        fault, options = self._take(query)
        path = request.scope["raw_path"].decode("latin-1")
        self._record(
            Seen(
                listener="http",
                method=request.method,
                path=path,
                query=tuple(request.query_params.multi_items()),
                headers=dict(request.headers),
                body=body,
                at=time.time(),
                fault=fault,
            )
        )
        act = self._http_faults.get(fault)
        if act is None:
            return JSONResponse({"error": f"fault {fault!r} is not served on this listener"}, status_code=501)
        return await act(request, body, options)

    async def _ok(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        payload = _ok_payload(request.method, request.scope["raw_path"].decode("latin-1"), body)
        return JSONResponse(payload)

    async def _delay(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        await asyncio.sleep(_number(options, "seconds", 1.0))
        return await self._ok(request, body, options)

    async def _drip(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        interval = _number(options, "interval", 0.05)
        payload = orjson.dumps(_ok_payload(request.method, request.url.path, body))
        payload = payload.ljust(int(_number(options, "length", 64)))
        closing = self._closing

        async def bytes_slowly() -> Any:
            for index in range(len(payload)):
                if closing.is_set():
                    return
                yield payload[index : index + 1]
                await asyncio.sleep(interval)

        return StreamingResponse(
            bytes_slowly(), media_type="application/json", headers={"content-length": str(len(payload))}
        )

    async def _status(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        headers = {}
        if options.get("retry_after") is not None:
            headers["Retry-After"] = str(options["retry_after"])
        if options.get("retry_after_date") is not None:
            when = time.time() + _number(options, "retry_after_date", 0.0)
            headers["Retry-After"] = formatdate(when, usegmt=True)
        content = str(options.get("body", '{"error": "injected fault"}'))
        code = int(_number(options, "code", 500))
        return Response(content, status_code=code, headers=headers, media_type="application/json")

    async def _malformed_json(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        return Response(b'{"id": "1", "name": ', media_type="application/json")

    async def _wrong_content_type(
        self, request: Request, body: bytes, options: Mapping[str, Any]
    ) -> Response:
        return HTMLResponse("<html><body><h1>Welcome to nginx!</h1></body></html>")

    async def _empty_body(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        return Response(b"", media_type="application/json")

    async def _oversize(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        size = int(_number(options, "size", 1024 * 1024))
        payload = b'"' + b"x" * (size - 2) + b'"'
        if str(options.get("declared", "true")).lower() == "true":
            return Response(payload, media_type="application/json")

        async def chunks() -> Any:
            for start in range(0, len(payload), _CHUNK):
                yield payload[start : start + _CHUNK]

        return StreamingResponse(chunks(), media_type="application/json")

    async def _redirect(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        location = str(options.get("location", "http://elsewhere.invalid/"))
        return Response(status_code=302, headers={"location": location})

    async def _echo(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        echoed = {
            "url": str(request.url),
            "headers": dict(request.headers),
            "body": body.decode("utf-8", errors="replace"),
        }
        return JSONResponse(echoed, status_code=int(_number(options, "code", 500)))

    async def _hang(self, request: Request, body: bytes, options: Mapping[str, Any]) -> Response:
        # The body has been read, so the next message is the client's disconnect.
        disconnected = asyncio.ensure_future(request.receive())
        try:
            while not disconnected.done() and not self._closing.is_set():
                await asyncio.wait([disconnected], timeout=_POLL)
        finally:
            disconnected.cancel()
        return Response(status_code=503)  # only a closing server gets this far with a client listening

    # The socket listener --------------------------------------------------------------------------

    async def _serve_socket(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HTTP/1.1 with keep-alive, by hand, for the faults a framework cannot act out."""
        while True:
            request = await _read_raw_request(reader)
            if request is None:
                return
            method, target, headers, body = request
            path, _, raw_query = target.partition("?")
            query = parse_qsl(raw_query, keep_blank_values=True)
            fault, options = self._take(dict(query))
            self._record(
                Seen("socket", method, path, tuple(query), headers, body, at=time.time(), fault=fault)
            )
            if fault == "hang":
                await _wait_until_closed(reader, self._closing)
                return
            if fault == "reset":
                declared = int(_number(options, "declared", 1000))
                sent = b'{"id": "1", "name": "' + b"x" * int(_number(options, "sent", 100))
                writer.write(_raw_head(200, declared) + sent)
                await writer.drain()
                await asyncio.sleep(_number(options, "after", 0.05))
                _reset(writer)
                return
            if fault == "ok":
                payload = orjson.dumps(_ok_payload(method, path, body))
                writer.write(_raw_head(200, len(payload)) + payload)
            else:
                payload = orjson.dumps({"error": f"fault {fault!r} is served by the HTTP listener"})
                writer.write(_raw_head(501, len(payload)) + payload)
            await writer.drain()


def _raw_head(status: int, length: int) -> bytes:
    reason = {200: "OK", 501: "Not Implemented"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    return head.encode()


async def _read_raw_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    """One request (method, target, lower-cased headers, body), or None at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return method, target, headers, body


async def _wait_until_closed(reader: asyncio.StreamReader, closing: threading.Event) -> None:
    while not closing.is_set():
        with contextlib.suppress(TimeoutError):
            if not await asyncio.wait_for(reader.read(4096), timeout=_POLL):
                return


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    # Linger 0: closing sends RST instead of FIN, as a crashed or killed peer would.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _SocketListener:
    """A bare asyncio server on a free loopback port, on its own loop in its own thread."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._port = 0
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(),), daemon=True
        )

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the socket listener did not start")
        return f"http://127.0.0.1:{self._port}"

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stop = self._stop
        assert stop is not None
        self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client went away mid-request: expected of the peers this serves
            finally:
                writer.close()
                tasks.discard(task)

        server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
