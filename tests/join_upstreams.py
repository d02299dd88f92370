"""Upstreams for join tests: a blog REST API (posts, comments, users, a batch of users) recording the
calls it gets, each switchable to fail."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["USERS", "Blog", "posts"]

USERS: dict[str, dict[str, Any]] = {str(n): {"id": str(n), "name": f"User {n}"} for n in range(1, 31)}


def posts(count: int, *, authors: int = 30) -> list[dict[str, Any]]:
    """``count`` posts; post n is written by user ((n - 1) % authors) + 1 (repeats make duplicates)."""
    return [
        {"id": str(n), "title": f"Post {n}", "userId": str((n - 1) % authors + 1), "sku": str(n)}
        for n in range(1, count + 1)
    ]


class Blog:
    """A REST upstream; ``calls`` counts requests per route name, ``failing`` names routes that answer 503."""

    def __init__(self, post_list: list[dict[str, Any]] | None = None) -> None:
        self.posts = post_list if post_list is not None else posts(20)
        self.calls: Counter[str] = Counter()
        self.batches: list[list[str]] = []
        self.failing: set[str] = set()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/posts", self._posts),
                Route("/posts/{id}/comments", self._comments),
                Route("/users", self._users),
                Route("/users/{id}", self._user),
                Route("/users/{id}/posts", self._user_posts),
            ]
        )

    def _refused(self, route: str) -> Response | None:
        self.calls[route] += 1
        if route in self.failing:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        return None

    async def _posts(self, request: Request) -> Response:
        return self._refused("posts") or JSONResponse(self.posts)

    async def _comments(self, request: Request) -> Response:
        post_id = request.path_params["id"]
        limit = int(request.query_params.get("limit", "3"))
        comments = [{"id": f"{post_id}.{n}", "postId": post_id, "text": f"comment {n}"} for n in range(1, 4)]
        return self._refused("comments") or JSONResponse(comments[:limit])

    async def _users(self, request: Request) -> Response:
        ids = request.query_params.getlist("ids")
        self.batches.append(ids)
        return self._refused("users") or JSONResponse([USERS[i] for i in ids if i in USERS])

    async def _user(self, request: Request) -> Response:
        found = USERS.get(request.path_params["id"])
        refused = self._refused("user")
        if refused is not None:
            return refused
        return JSONResponse(found) if found else JSONResponse({"error": "no such user"}, status_code=404)

    async def _user_posts(self, request: Request) -> Response:
        user_id = request.path_params["id"]
        mine = [post for post in self.posts if post["userId"] == user_id]
        return self._refused("user_posts") or JSONResponse(mine)
