"""Small upstreams the tests run on loopback with ``servers.serve_asgi``.

``behaviour_app`` answers every request by echoing what it received (``/echo/...``) or by acting out
a failure mode (``/status/{code}``, ``/big``, ``/malformed``...). ``RecordingUpstream`` keeps every
request exactly as it arrived and answers each with the ``Answer`` a test set. ``OAuthServer`` is a
client credentials token endpoint plus a protected API, with counters and switches for the tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["Answer", "OAuthServer", "Received", "RecordingUpstream", "TokenMode", "behaviour_app"]

ALL_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
_CHUNK = 64 * 1024


async def _echo(request: Request) -> Response:
    body = await request.body()
    assert request.client is not None
    return JSONResponse(
        {
            "method": request.method,
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query": [[k, v] for k, v in request.query_params.multi_items()],
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": body.decode(),
            "client_port": request.client.port,
        }
    )


async def _status(request: Request) -> Response:
    """``/status/{code}?retry_after=...&body=...``: that status, optional Retry-After, that body."""
    headers = {}
    if "retry_after" in request.query_params:
        headers["Retry-After"] = request.query_params["retry_after"]
    body = request.query_params.get("body", '{"error": "as requested"}')
    return Response(
        body, status_code=request.path_params["code"], headers=headers, media_type="application/json"
    )


async def _big(request: Request) -> Response:
    """``/big?size=N&declared=0|1``: a JSON string of exactly N bytes, with or without Content-Length."""
    size = int(request.query_params["size"])
    body = b'"' + b"x" * (size - 2) + b'"'
    if request.query_params.get("declared") == "1":
        return Response(body, media_type="application/json")

    async def chunks() -> Any:
        for start in range(0, len(body), _CHUNK):
            yield body[start : start + _CHUNK]

    return StreamingResponse(chunks(), media_type="application/json")


async def _leak(request: Request) -> Response:
    """A 400 whose body repeats the credentials it was sent and its full URL, as careless APIs do."""
    seen = [request.headers.get(name, "") for name in ("authorization", "x-api-key", "x-secret")]
    return PlainTextResponse(f"rejected {seen} at {request.url}", status_code=400)


def behaviour_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/echo/{rest:path}", _echo, methods=ALL_METHODS),
            Route("/status/{code:int}", _status, methods=ALL_METHODS),
            Route("/big", _big),
            Route("/leak", _leak, methods=ALL_METHODS),
            Route("/malformed", lambda _: Response('{"id": ', media_type="application/json")),
            Route("/empty", lambda _: Response(status_code=204), methods=ALL_METHODS),
            Route("/text", lambda _: PlainTextResponse("plain words")),
            Route(
                "/redirect",
                lambda _: Response(status_code=302, headers={"Location": "http://elsewhere.invalid/"}),
            ),
        ]
    )


@dataclass(frozen=True)
class Received:
    """One request as it arrived: the target's bytes unparsed, header names lower-cased, in order."""

    method: str
    path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True)

    def header(self, name: str) -> list[str]:
        """Every value received for ``name`` (any case), in order."""
        return [value for key, value in self.headers if key == name.lower()]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


@dataclass
class RecordingUpstream:
    """An ASGI upstream that records each request in ``received`` and answers it with ``answer``."""

    answer: Answer = field(default_factory=Answer)
    received: list[Received] = field(default_factory=list)
    url: str = ""  # set once it is served

    def reset(self, answer: Answer | None = None) -> None:
        self.answer = answer or Answer()
        self.received.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.received.append(
            Received(
                method=scope["method"],
                path=scope["raw_path"].decode("latin-1"),
                query_string=scope["query_string"].decode("latin-1"),
                headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
                body=body,
            )
        )
        answer = self.answer
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


TokenMode = Literal["ok", "error_500", "bad_json", "no_token", "invalid_client"]


class OAuthServer:
    """``POST /token`` issues ``tok-1``, ``tok-2``...; ``/api/...`` answers 401 unless sent a live one.

    Switches: ``mode`` (how /token answers), ``expires_in``, ``delay`` (seconds /token takes),
    ``reject_api`` (every /api call gets 401), ``revoke_all()``. Counters: ``token_calls``,
    ``api_calls``; ``token_requests`` keeps each token request's form and Authorization header.
    """

    def __init__(self) -> None:
        self.url = ""  # set once it is served
        self.mode: TokenMode = "ok"
        self.expires_in: float | None = 3600
        self.delay = 0.0
        self.reject_api = False
        self.token_calls = 0
        self.api_calls = 0
        self.token_requests: list[dict[str, Any]] = []
        self._live: set[str] = set()
        self.app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/api/{rest:path}", self._api, methods=ALL_METHODS),
            ]
        )

    def revoke_all(self) -> None:
        self._live.clear()

    async def _token(self, request: Request) -> Response:
        self.token_calls += 1
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append({"form": form, "authorization": request.headers.get("authorization")})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "error_500":
            return PlainTextResponse("token service broken", status_code=500)
        if self.mode == "bad_json":
            return Response("<html>oops</html>", media_type="application/json")
        if self.mode == "no_token":
            return JSONResponse({"token_type": "Bearer"})
        if self.mode == "invalid_client":
            description = f"client secret {form.get('client_secret')} is wrong"
            return JSONResponse(
                {"error": "invalid_client", "error_description": description}, status_code=401
            )
        token = f"tok-{self.token_calls}"
        self._live.add(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return JSONResponse(answer)

    async def _api(self, request: Request) -> Response:
        self.api_calls += 1
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.reject_api or token not in self._live:
            return JSONResponse({"error": f"token {token} is not valid"}, status_code=401)
        return JSONResponse({"path": request.path_params["rest"], "authorization": f"Bearer {token}"})
