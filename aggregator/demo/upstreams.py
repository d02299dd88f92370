"""The demo's upstream APIs: small, realistic, in memory, and served on loopback next to the gateway.

``create_rest_app()`` is a REST API of users (with addresses and tags) and their posts: reads, a search
with query parameters, POSTs that create a user (the whole body) or a post (body fields), and a
deliberately flaky, slow recommendations endpoint that shows retries and the circuit breaker at work.
Every ``/api`` route wants one of the demo credentials, so the gateway's auth options visibly do
something. ``/oauth/token`` is the demo's OAuth2 token endpoint (client credentials, RFC 6749 4.4):
its tokens open the GraphQL catalog's inventory. Each app instance has its own fresh data.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aggregator.demo.tokens import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_SCOPES, Grant, issue

__all__ = ["DEMO_API_KEY", "DEMO_BASIC", "DEMO_TOKEN", "TOKEN_LIFETIME", "create_rest_app"]

DEMO_TOKEN = "demo-token"
DEMO_API_KEY = "demo-key"
DEMO_BASIC = ("demo", "demo-password")
# Seconds an access token from /oauth/token is valid (its expires_in).
TOKEN_LIFETIME = 300

Handler = Callable[[Request], Awaitable[Response]]

_USERS: tuple[dict[str, Any], ...] = (
    {
        "id": "1",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "address": {"street": "12 St James's Square", "city": "London", "zip": "SW1Y 4JH", "country": "GB"},
        "tags": ["admin", "math"],
    },
    {
        "id": "2",
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "address": {"street": "1 Navy Yard", "city": "Arlington", "zip": "22202", "country": "US"},
        "tags": ["compilers", "navy"],
    },
    {
        "id": "3",
        "name": "Alan Turing",
        "email": "alan@example.com",
        "address": {"street": "Bletchley Park", "city": "Milton Keynes", "zip": "MK3 6EB", "country": "GB"},
        "tags": ["math", "crypto"],
    },
    {
        "id": "4",
        "name": "Katherine Johnson",
        "email": "katherine@example.com",
        "address": {"street": "1 NASA Drive", "city": "Hampton", "zip": "23666", "country": "US"},
        "tags": ["math", "space"],
    },
    {
        "id": "5",
        "name": "Edsger Dijkstra",
        "email": "edsger@example.com",
        "address": None,
        "tags": ["algorithms"],
    },
)

_POSTS: tuple[tuple[str, str, str, list[str], str], ...] = (
    (
        "1",
        "Notes on the Analytical Engine",
        "The engine weaves algebraic patterns.",
        ["math", "history"],
        "1843-09-01",
    ),
    ("1", "On Bernoulli numbers", "A program, before there were programs.", ["math"], "1843-10-01"),
    ("2", "The first bug", "A moth, taped into the log book.", ["history", "debugging"], "1947-09-09"),
    ("2", "Nanoseconds", "Eleven point eight inches of wire.", ["hardware"], "1985-03-01"),
    (
        "3",
        "Computable numbers",
        "On a machine that reads and writes a tape.",
        ["math", "theory"],
        "1936-11-12",
    ),
    (
        "4",
        "Orbital mechanics by hand",
        "Check the numbers, then check them again.",
        ["space", "math"],
        "1962-02-20",
    ),
    (
        "5",
        "Go To considered harmful",
        "Structured programming, in one letter.",
        ["algorithms", "style"],
        "1968-03-01",
    ),
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class _State:
    users: dict[str, dict[str, Any]]
    posts: dict[str, dict[str, Any]]
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    @classmethod
    def fresh(cls) -> _State:
        users = {u["id"]: {**u, "internalScore": 42} for u in _USERS}
        posts = {
            str(n): {
                "id": str(n),
                "userId": uid,
                "title": title,
                "body": body,
                "tags": tags,
                "createdAt": f"{day}T12:00:00Z",
            }
            for n, (uid, title, body, tags, day) in enumerate(_POSTS, start=1)
        }
        return cls(users=users, posts=posts)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _authorized(request: Request) -> bool:
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials == DEMO_TOKEN:
        return True
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except ValueError:
            return False
        return tuple(decoded.partition(":")[::2]) == DEMO_BASIC
    return DEMO_API_KEY in (request.headers.get("x-api-key"), request.query_params.get("api_key"))


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """The client's id and secret: HTTP Basic (each form-encoded, RFC 6749 2.3.1) or form fields."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(credentials, validate=True).decode().partition(":")
        except ValueError:
            return "", ""
        return unquote_plus(client_id), unquote_plus(secret)
    return form.get("client_id", ""), form.get("client_secret", "")


def _oauth_error(status: int, error: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status, headers=headers)


async def _token_endpoint(request: Request) -> Response:
    """OAuth2 client credentials: a form-encoded POST answered with a signed bearer token."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    if _client_credentials(request, form) != (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET):
        return _oauth_error(401, "invalid_client", headers={"WWW-Authenticate": 'Basic realm="demo"'})
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type")
    scopes = frozenset(form.get("scope", "").split()) or DEMO_SCOPES
    if not scopes <= DEMO_SCOPES:
        return _oauth_error(400, "invalid_scope")
    grant = Grant(DEMO_CLIENT_ID, scopes, time.time() + TOKEN_LIFETIME)
    return JSONResponse(
        {
            "access_token": issue(grant),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "scope": " ".join(sorted(scopes)),
        },
        headers={"Cache-Control": "no-store"},
    )


def _guarded(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        if not _authorized(request):
            return _error(
                401, "missing or wrong demo credentials", headers={"WWW-Authenticate": 'Bearer realm="demo"'}
            )
        return await handler(request)

    return endpoint


def _int_param(request: Request, name: str, default: int) -> int | Response:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return _error(400, f"query parameter {name} must be an integer, got {raw!r}")


async def _json_object(request: Request) -> dict[str, Any] | Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body must be JSON")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    return body


def _tags(body: dict[str, Any]) -> list[str] | Response:
    tags = body.get("tags") or []
    if not isinstance(tags, list):
        return _error(422, "tags must be a list of strings")
    return [str(t) for t in tags]


def create_rest_app() -> Starlette:
    """The demo REST API, mounted under ``/api``, and its token endpoint at ``/oauth/token``."""
    state = _State.fresh()

    async def list_users(request: Request) -> Response:
        limit = _int_param(request, "limit", 100)
        if isinstance(limit, Response):
            return limit
        tag = request.query_params.get("tag")
        ids = set(request.query_params.getlist("ids"))
        users = [
            u
            for u in state.users.values()
            if (tag is None or tag in u["tags"]) and (not ids or u["id"] in ids)
        ]
        return JSONResponse(users[: max(limit, 0)])

    async def get_user(request: Request) -> Response:
        user = state.users.get(request.path_params["id"])
        if user is None:
            return _error(404, f"no user {request.path_params['id']}")
        return JSONResponse(user)

    async def user_posts(request: Request) -> Response:
        user_id = request.path_params["id"]
        if user_id not in state.users:
            return _error(404, f"no user {user_id}")
        return JSONResponse([p for p in state.posts.values() if p["userId"] == user_id])

    async def get_post(request: Request) -> Response:
        post = state.posts.get(request.path_params["id"])
        if post is None:
            return _error(404, f"no post {request.path_params['id']}")
        return JSONResponse(post)

    async def create_user(request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        missing = [k for k in ("name", "email") if not body.get(k)]
        if missing:
            return _error(422, f"missing {', '.join(missing)}")
        tags = _tags(body)
        if isinstance(tags, Response):
            return tags
        user_id = str(len(state.users) + 1)
        address = body.get("address")
        user = {
            "id": user_id,
            "name": str(body["name"]),
            "email": str(body["email"]),
            "address": address if isinstance(address, dict) else None,
            "tags": tags,
        }
        state.users[user_id] = user
        return JSONResponse(user, status_code=201, headers={"Location": f"/api/users/{user_id}"})

    async def create_post(request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        missing = [k for k in ("userId", "title") if not body.get(k)]
        if missing:
            return _error(422, f"missing {', '.join(missing)}")
        if str(body["userId"]) not in state.users:
            return _error(422, f"no user {body['userId']}")
        tags = _tags(body)
        if isinstance(tags, Response):
            return tags
        post_id = str(len(state.posts) + 1)
        post = {
            "id": post_id,
            "userId": str(body["userId"]),
            "title": str(body["title"]),
            "body": str(body.get("body") or ""),
            "tags": tags,
            "createdAt": _now(),
        }
        state.posts[post_id] = post
        return JSONResponse(post, status_code=201, headers={"Location": f"/api/posts/{post_id}"})

    async def search(request: Request) -> Response:
        limit = _int_param(request, "limit", 10)
        if isinstance(limit, Response):
            return limit
        q = request.query_params.get("q", "").lower()
        tags = set(request.query_params.getlist("tags"))
        posts = [
            p
            for p in state.posts.values()
            if q in f"{p['title']} {p['body']}".lower() and tags <= set(p["tags"])
        ][: max(limit, 0)]
        result: dict[str, Any] = {"query": q, "tags": sorted(tags), "total": len(posts), "posts": posts}
        if request.query_params.get("includeUsers") == "true":
            result["users"] = [u for u in state.users.values() if q and q in u["name"].lower()]
        return JSONResponse(result)

    async def recommendations(request: Request) -> Response:
        # Flaky on purpose: fails a `fail` share of calls with 503 and answers after `delayMs`.
        try:
            fail = float(request.query_params.get("fail", "0.5"))
        except ValueError:
            return _error(400, "query parameter fail must be a number between 0 and 1")
        delay_ms = _int_param(request, "delayMs", 0)
        if isinstance(delay_ms, Response):
            return delay_ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if state.rng.random() < fail:
            return _error(503, "recommendations are overloaded, try again", headers={"Retry-After": "1"})
        user_id = request.path_params["userId"]
        if user_id not in state.users:
            return _error(404, f"no user {user_id}")
        liked = set(state.users[user_id]["tags"])
        picks = [p for p in state.posts.values() if p["userId"] != user_id and liked & set(p["tags"])]
        return JSONResponse(
            [
                {
                    "postId": p["id"],
                    "title": p["title"],
                    "score": round(len(liked & set(p["tags"])) / len(liked), 2),
                }
                for p in picks[:3]
            ]
        )

    routes = [
        Route("/api/users", _guarded(list_users), methods=["GET"]),
        Route("/api/users", _guarded(create_user), methods=["POST"]),
        Route("/api/users/{id}", _guarded(get_user), methods=["GET"]),
        Route("/api/users/{id}/posts", _guarded(user_posts), methods=["GET"]),
        Route("/api/posts", _guarded(create_post), methods=["POST"]),
        Route("/api/posts/{id}", _guarded(get_post), methods=["GET"]),
        Route("/api/search", _guarded(search), methods=["GET"]),
        Route("/api/recommendations/{userId}", _guarded(recommendations), methods=["GET"]),
        Route("/oauth/token", _token_endpoint, methods=["POST"]),
    ]
    return Starlette(routes=routes)
