"""Micro benchmark: what the executor and the REST layer add to one upstream call.

    .venv/bin/python bench/executor_overhead.py [--calls 2000] [--rounds 7] [--uvloop]

A tiny keep-alive HTTP server answering a fixed JSON document runs in a subprocess on loopback (so
its work does not share this process's GIL or event loop). In this process, the same number of
sequential calls is timed, call by call, for:

  bare      httpx.AsyncClient.get + orjson.loads of the body   (the floor: a plain client call)
  same      the same GET on upstreams.http.UpstreamClient        (the floor on the client RestUpstream
            uses: it is not httpx's, so overheads are taken from here)
  upstream  RestUpstream.prepare + send                        (the REST layer, no executor)
  executor  Executor.run(RestUpstream.prepare + send)          (a real call's whole path)
  rejected  Executor.run with the breaker open                 (CIRCUIT_OPEN, nothing sent)

Variants alternate within every round so that drift on a noisy machine hits them alike. Reported:
median and p90 microseconds per call over all rounds, and what each layer adds to the one below it.
This is a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from aggregator.config.models import BreakerPolicy, Integration, Operation, Param, RetryPolicy, TypeExpr
from aggregator.errors import CircuitOpen, UpstreamUnavailable
from aggregator.resilience.executor import Executor
from aggregator.upstreams.http import UpstreamClient
from aggregator.upstreams.rest import RestUpstream

BODY = orjson.dumps({"id": "1", "name": "Ada Lovelace", "email": "ada@example.test", "tags": ["a", "b"]})
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    + BODY
)


# --- the upstream (subprocess) ------------------------------------------------------------------------


class _FixedAnswer(asyncio.Protocol):
    """Answers every request head (GETs without a body) with RESPONSE, keeping the connection open."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            self._buffer = self._buffer[end + 4 :]
            self._transport.write(RESPONSE)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_FixedAnswer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# --- the client side ----------------------------------------------------------------------------------

Call = Callable[[], Awaitable[Any]]


async def _time_calls(call: Call, count: int) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        with contextlib.suppress(CircuitOpen):
            await call()
        samples.append((clock() - started) / 1000.0)
    return samples


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _measure(base_url: str, calls: int, rounds: int) -> dict[str, list[float]]:
    logging.disable(logging.WARNING)  # the deliberately tripped breaker would log mid-table
    user_id = Param(name="id", type=TypeExpr(name="ID", non_null=True), location="path")
    operation = Operation(id="getUser", path="/users/{id}", params=(user_id,), timeout=5.0)
    integration = Integration(
        id="bench", base_url=base_url, retry=RetryPolicy(max_attempts=3), operations={"getUser": operation}
    )
    upstream = RestUpstream(integration)
    await upstream.start()
    bulkhead = {
        "max_concurrency": integration.max_concurrency,
        "max_queue": integration.max_queue,
        "queue_timeout": integration.queue_timeout,
    }
    executor = Executor("bench", retry=integration.retry, breaker=BreakerPolicy(), **bulkhead)
    tripped = Executor(
        "tripped",
        retry=RetryPolicy(),
        breaker=BreakerPolicy(threshold=1, failure_rate=0.0, reset_after=3600.0),
        **bulkhead,
    )

    async def broken() -> None:
        raise UpstreamUnavailable("down", sent=False)

    with contextlib.suppress(UpstreamUnavailable):
        await tripped.run("getUser", broken, timeout=5.0, idempotent=True)
    assert tripped.breaker.state == "open"

    bare_client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=100))
    same_client = UpstreamClient(max_connections=100)
    url = f"{base_url}/users/1"

    async def bare() -> Any:
        response = await bare_client.get(url)
        return orjson.loads(response.content)

    async def same() -> Any:
        response = await same_client.exchange(
            "GET", url, headers={}, content=None, timeout=5.0, limit=1 << 20
        )
        return orjson.loads(response.content)

    async def via_upstream() -> Any:
        return await upstream.send(upstream.prepare(operation, {"id": "1"}))

    async def via_executor() -> Any:
        return await executor.run("getUser", via_upstream, timeout=5.0, idempotent=True)

    async def rejected() -> Any:
        return await tripped.run("getUser", via_upstream, timeout=5.0, idempotent=True)

    variants: dict[str, Call] = {
        "bare": bare,
        "same": same,
        "upstream": via_upstream,
        "executor": via_executor,
        "rejected": rejected,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    try:
        assert await bare() == await same() == await via_executor() == orjson.loads(BODY)
        for call in variants.values():  # warm-up: connections, caches, code paths
            await _time_calls(call, min(calls, 500))
        order = list(variants)
        for round_ in range(rounds):
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                gc.collect()
                samples[name] += await _time_calls(variants[name], calls)
    finally:
        await bare_client.aclose()
        await same_client.aclose()
        await upstream.stop()
    return samples


def _report(samples: dict[str, list[float]], calls: int, rounds: int) -> None:
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"\n{calls} sequential calls x {rounds} rounds per variant, microseconds per call\n")
    print(f"{'variant':<44} {'median':>9} {'p90':>9}")
    labels = {
        "bare": "(a) bare httpx.AsyncClient GET + orjson",
        "same": "(a') same GET on UpstreamClient",
        "upstream": "    RestUpstream.prepare + send",
        "executor": "(b) Executor.run(RestUpstream)",
        "rejected": "(c) Executor.run, breaker open",
    }
    for name, label in labels.items():
        print(f"{label:<44} {median[name]:>9.1f} {_percentile(samples[name], 0.9):>9.1f}")
    print()
    rows = [
        ("overhead (b) - (a'), layer + executor", median["executor"] - median["same"]),
        ("  of which the executor: (b) - upstream", median["executor"] - median["upstream"]),
        ("  of which the REST layer: upstream - (a')", median["upstream"] - median["same"]),
        ("(b) - (a), against httpx's default client", median["executor"] - median["bare"]),
        ("rejection cost (c)", median["rejected"]),
    ]
    for label, value in rows:
        print(f"{label:<44} {value:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per variant per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--uvloop", action="store_true", help="run the client on uvloop")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        measuring = _measure(f"http://127.0.0.1:{port}", args.calls, args.rounds)
        if args.uvloop:
            import uvloop

            samples = uvloop.run(measuring)
        else:
            samples = asyncio.run(measuring)
    finally:
        server.terminate()
        server.wait()
    print(f"python {sys.version.split()[0]}, loop: {'uvloop' if args.uvloop else 'asyncio'}")
    _report(samples, args.calls, args.rounds)


if __name__ == "__main__":
    main()
