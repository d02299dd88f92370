"""A small asyncio load generator for the gateway, and what makes an answer a clean one.

``run_clients`` runs N concurrent clients (one shared ``httpx.AsyncClient``) until a deadline; each
sends a request of a kind drawn from ``kinds`` with a short random pause between requests, and
every request becomes a ``Shot``: what was sent, how long it took, and ``problem`` -- why the answer
is not a well-formed GraphQL response, or None when it is.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

__all__ = ["ERROR_CODES", "Kind", "Shot", "percentile", "problem_with", "run_clients"]

# Every code the gateway's GraphQL errors may carry (executor codes and request errors).
ERROR_CODES = frozenset(
    {
        "CIRCUIT_OPEN",
        "BULKHEAD_FULL",
        "UPSTREAM_TIMEOUT",
        "UPSTREAM_UNAVAILABLE",
        "UPSTREAM_HTTP_ERROR",
        "RATE_LIMITED",
        "UPSTREAM_BAD_RESPONSE",
        "UPSTREAM_AUTH_ERROR",
        "UPSTREAM_GRAPHQL_ERROR",
        "UNKNOWN_OPERATION",
        "INVALID_PARAMS",
        "QUERY_TOO_LARGE",
        "BAD_REQUEST",
    }
)


@dataclass(frozen=True)
class Kind:
    """A kind of request: its name, its document, and its variables (called with a fresh unique ref)."""

    name: str
    query: str
    weight: float
    variables: Callable[[str], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Shot:
    kind: str
    started: float  # time.time() when sent
    latency: float  # seconds
    status: int | None
    body: Any
    problem: str | None
    ref: str | None = None

    def errors_at(self, field: str) -> list[dict[str, Any]]:
        errors = self.body.get("errors", []) if isinstance(self.body, dict) else []
        return [e for e in errors if e.get("path", [None])[0] == field]

    def data(self, field: str) -> Any:
        return self.body["data"].get(field) if isinstance(self.body, dict) and self.body.get("data") else None


def problem_with(status: int, content: bytes) -> str | None:
    """Why this is not a clean GraphQL answer to a valid request, or None if it is one."""
    if status != 200:
        return f"HTTP {status}"
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return "body is not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return "no data object"
    for error in body.get("errors", []):
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return f"malformed error {error!r}"
        if not isinstance(error.get("path"), list):
            return f"error without a path {error!r}"
        code = (error.get("extensions") or {}).get("code")
        if code not in ERROR_CODES:
            return f"unexpected error code {code!r}: {error['message']}"
    return None


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def _client(
    http: httpx.AsyncClient, kinds: Sequence[Kind], until: float, rng: random.Random, pause: float
) -> list[Shot]:
    shots: list[Shot] = []
    weights = [kind.weight for kind in kinds]
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        ref = uuid.uuid4().hex if kind.variables else None
        payload = {"query": kind.query, "variables": kind.variables(ref) if kind.variables and ref else None}
        started, clock = time.time(), time.perf_counter()
        try:
            response = await http.post("/graphql", json=payload)
        except httpx.HTTPError as error:
            shot = Shot(
                kind.name, started, time.perf_counter() - clock, None, None, f"{type(error).__name__}", ref
            )
        else:
            latency = time.perf_counter() - clock
            problem = problem_with(response.status_code, response.content)
            body = None if problem else orjson.loads(response.content)
            shot = Shot(kind.name, started, latency, response.status_code, body, problem, ref)
        shots.append(shot)
        await asyncio.sleep(rng.uniform(0, 2 * pause))
    return shots


async def run_clients(
    url: str, kinds: Sequence[Kind], *, clients: int, seconds: float, timeout: float, pause: float, seed: int
) -> list[Shot]:
    """Run ``clients`` concurrent clients for ``seconds``; every request they made, in no order."""
    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        runs = [_client(http, kinds, until, random.Random(seed + n), pause) for n in range(clients)]
        results = await asyncio.gather(*runs)
    return [shot for shots in results for shot in shots]
