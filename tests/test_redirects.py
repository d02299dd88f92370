"""Redirects from a real loopback upstream: same-origin ones followed (at most five hops, methods changed
as RFC 9110 and httpx change them), another origin's refused, none followed with `follow_redirects: false`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from gateway import Gateway, serve_gateway
from servers import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Seen:
    """One request the upstream received."""

    method: str
    path: str
    body: str
    content_type: str | None
    authorization: str | None


@dataclass
class Upstream:
    """A REST upstream that redirects as GitHub and others do, recording every request."""

    seen: list[Seen] = field(default_factory=list)
    elsewhere: str = ""  # another origin's base URL, for redirects that must not be followed

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/repos/{owner}/{name}", self._repo, methods=ALL_METHODS),
                Route("/repositories/{id:int}", self._found, methods=ALL_METHODS),
                Route("/status/{code:int}/{rest:path}", self._status, methods=ALL_METHODS),
                Route("/target", self._found, methods=ALL_METHODS),
                Route("/chain/{left:int}", self._chain, methods=ALL_METHODS),
                Route("/away", self._away, methods=ALL_METHODS),
            ]
        )

    async def _record(self, request: Request) -> None:
        self.seen.append(
            Seen(
                request.method,
                request.url.path,
                (await request.body()).decode(),
                request.headers.get("content-type"),
                request.headers.get("authorization"),
            )
        )

    async def _repo(self, request: Request) -> Response:
        """GitHub's answer for a renamed repository: 301 to the repository by id, an absolute URL."""
        await self._record(request)
        return Response(status_code=301, headers={"Location": f"{request.base_url}repositories/42"})

    async def _found(self, request: Request) -> Response:
        await self._record(request)
        body = (await request.body()).decode()
        return JSONResponse({"id": 42, "method": request.method, "body": body or None})

    async def _status(self, request: Request) -> Response:
        """``/status/{code}/{rest}``: that redirect status to the relative ``/{rest}``."""
        await self._record(request)
        code = request.path_params["code"]
        return Response(status_code=code, headers={"Location": "/" + request.path_params["rest"]})

    async def _chain(self, request: Request) -> Response:
        """``/chain/{n}?delay=s``: n more redirects (relative, without a leading slash) before the answer,
        each answered after ``delay`` seconds."""
        await self._record(request)
        delay = request.query_params.get("delay", "0")
        await asyncio.sleep(float(delay))
        left = request.path_params["left"]
        if left == 0:
            return JSONResponse({"id": 1, "method": request.method, "body": None})
        return Response(status_code=302, headers={"Location": f"{left - 1}?delay={delay}"})

    async def _away(self, request: Request) -> Response:
        await self._record(request)
        return Response(status_code=302, headers={"Location": f"{self.elsewhere}/target?api_key=leak"})


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, Upstream, Upstream]]:
    """The redirecting upstream and another origin (another port) it sometimes points at."""
    home, other = Upstream(), Upstream()
    with serve_asgi(other.app()) as other_url, serve_asgi(home.app()) as url:
        home.elsewhere = other_url
        yield url, home, other


CONFIG = """
types:
  Found: {{id: BigInt, method: String, body: String}}
integrations:
  api:
    base_url: {url}
    auth: {{type: bearer, token: tkn-123}}
    {follow}
    operations:
      getRepo:
        path: "/repos/{{owner}}/{{name}}"
        params: {{owner: String!, name: String!}}
        returns: Found
      send:
        method: {{{{METHOD}}}}
        path: "/status/{{code}}/target"
        params: {{code: Int!, title: {{type: String, in: body}}}}
        returns: Found
      chain:
        path: "/chain/{{left}}"
        params: {{left: Int!, delay: Float}}
        returns: Found
        timeout: 1s
      away: {{path: /away, returns: Found}}
"""


@pytest.fixture(scope="module")
def gateway(upstreams: tuple[str, Upstream, Upstream]) -> Iterator[Gateway]:
    url, _, _ = upstreams
    with serve_gateway(CONFIG.format(url=url, follow="").replace("{{METHOD}}", "POST")) as served:
        yield served


@pytest.fixture(autouse=True)
def fresh(upstreams: tuple[str, Upstream, Upstream]) -> None:
    for upstream in (upstreams[1], upstreams[2]):
        upstream.seen.clear()


def test_a_renamed_repository_is_reached_through_its_permanent_redirect(
    gateway: Gateway, upstreams: tuple[str, Upstream, Upstream]
) -> None:
    """GitHub's 301 to the same origin is followed, credentials kept: the client gets the repository."""
    body = gateway.query('{ api_getRepo(owner: "old", name: "name") { id method } }')
    assert body == {"data": {"api_getRepo": {"id": 42, "method": "GET"}}}
    assert [(s.path, s.authorization) for s in upstreams[1].seen] == [
        ("/repos/old/name", "Bearer tkn-123"),
        ("/repositories/42", "Bearer tkn-123"),
    ]


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [
        pytest.param(301, "GET", None, id="301-post-becomes-get"),
        pytest.param(302, "GET", None, id="302-post-becomes-get"),
        pytest.param(303, "GET", None, id="303-see-other-after-post"),
        pytest.param(307, "POST", '{"title":"t"}', id="307-keeps-method-and-body"),
        pytest.param(308, "POST", '{"title":"t"}', id="308-keeps-method-and-body"),
    ],
)
def test_a_post_is_redirected_as_its_status_says(
    gateway: Gateway,
    upstreams: tuple[str, Upstream, Upstream],
    status: int,
    method: str,
    body: str | None,
) -> None:
    """303 (and 301/302, as httpx and browsers do) turn a POST into a GET without body; 307/308 repeat it."""
    answer = gateway.query(f'mutation {{ api_send(code: {status}, title: "t") {{ method body }} }}')
    assert answer == {"data": {"api_send": {"method": method, "body": body}}}
    followed = upstreams[1].seen[-1]
    assert (followed.path, followed.method, followed.body) == ("/target", method, body or "")
    assert followed.content_type == ("application/json" if body else None)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_307_repeats_any_method_with_its_body(upstreams: tuple[str, Upstream, Upstream], method: str) -> None:
    """A 307 repeats PUT, DELETE and PATCH as they were sent."""
    url, home, _ = upstreams
    with serve_gateway(CONFIG.format(url=url, follow="").replace("{{METHOD}}", method)) as served:
        answer = served.query('mutation { api_send(code: 307, title: "t") { method body } }')
    assert answer == {"data": {"api_send": {"method": method, "body": '{"title":"t"}'}}}
    assert [s.method for s in home.seen] == [method, method]


def test_five_redirects_are_followed(gateway: Gateway, upstreams: tuple[str, Upstream, Upstream]) -> None:
    """A chain of five relative redirects ends at the answer: six requests in all."""
    assert gateway.query("{ api_chain(left: 5) { id } }") == {"data": {"api_chain": {"id": 1}}}
    assert len(upstreams[1].seen) == 6


def test_a_sixth_redirect_stops_the_call_with_a_clear_error(
    gateway: Gateway, upstreams: tuple[str, Upstream, Upstream]
) -> None:
    """A redirect loop is cut after five hops: UPSTREAM_HTTP_ERROR with the last 302, saying so."""
    body = gateway.query("{ api_chain(left: 50) { id } }")
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "UPSTREAM_HTTP_ERROR"
    assert error["extensions"]["status"] == 302
    assert "stopped after 5 redirects" in error["message"]
    assert len(upstreams[1].seen) == 6


def test_a_redirect_to_another_origin_is_refused(
    gateway: Gateway, upstreams: tuple[str, Upstream, Upstream]
) -> None:
    """A Location on another port is not followed; the error names its origin, never its query."""
    _, home, other = upstreams
    body = gateway.query("{ api_away { id } }")
    (error,) = body["errors"]
    assert (error["extensions"]["code"], error["extensions"]["status"]) == ("UPSTREAM_HTTP_ERROR", 302)
    assert f"another origin ({home.elsewhere})" in error["message"]
    assert "leak" not in error["message"]
    assert other.seen == []


def test_every_hop_counts_against_the_one_attempt_timeout(
    gateway: Gateway, upstreams: tuple[str, Upstream, Upstream]
) -> None:
    """Five hops of 0.4 s each outlast the operation's 1 s timeout, though each hop alone is in time."""
    body = gateway.query("{ api_chain(left: 5, delay: 0.4) { id } }")
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "UPSTREAM_TIMEOUT"
    assert len(upstreams[1].seen) < 6


@pytest.mark.parametrize("where", ["integration", "defaults"])
def test_follow_redirects_false_turns_following_off(
    upstreams: tuple[str, Upstream, Upstream], where: str
) -> None:
    """With `follow_redirects: false` the 301 is the answer: an error carrying it, nothing followed."""
    url, home, _ = upstreams
    config = CONFIG.format(url=url, follow="follow_redirects: false" if where == "integration" else "")
    if where == "defaults":
        config = "defaults: {follow_redirects: false}\n" + config
    with serve_gateway(config.replace("{{METHOD}}", "POST")) as served:
        body: dict[str, Any] = served.query('{ api_getRepo(owner: "old", name: "name") { id } }')
    (error,) = body["errors"]
    assert (error["extensions"]["code"], error["extensions"]["status"]) == ("UPSTREAM_HTTP_ERROR", 301)
    assert "redirects are not followed" in error["message"]
    assert [s.path for s in home.seen] == ["/repos/old/name"]
