"""Micro benchmark: the CPU cost of refusing an oversized GraphQL document, against small valid requests.

    .venv/bin/python bench/refusal_cost.py [--requests 200] [--rounds 7]

In process, no network: requests go through the gateway's ASGI app (``create_app``, the benchmark's
config bench/aggregator.yaml, default limits: max_aliases 200, max_depth 15, 10,000 tokens) as uvicorn
would hand them over, ``POST /graphql``, and the whole handling is timed: reading the body, the limits,
parsing, validation, execution or refusal, the answer's JSON. Every refused document is new to the
server (a counter in a trailing comment makes each text unique), so it misses every cache, as an
attacker's would. Per case, every round times ``--requests`` requests of each case in turn (so that
drift on a noisy machine hits all of them); reported: the median over rounds of CPU milliseconds per
request, its ratio to the small valid query missing the cache (the baseline), and the error count
(answers that were not what the case expects: data for the valid queries, the refusal's code for the
others). Nothing is asserted: this is not a test.

Cases:
  valid, cached          `{ __typename }`, the same text every time: the document cache answers
  valid, new             a small valid query, a new text every time: parsed and validated (baseline)
  1,000 aliases          `{ a: nope a: nope ... }` x 1,000, as tests/test_bad_requests.py sends it
  1,000 __typename       1,000 aliased `__typename` (introspection fields weigh two fifths)
  fragment bomb          ten fragments each spreading the previous one twice: 2^10 fields, 400 bytes
  30,000 aliases         over the 10,000-token limit
  too deep               30 nested fields under the field limit: refused on the parsed document
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

HERE = Path(__file__).resolve().parent
# The config names upstream URLs; nothing is contacted.
os.environ.setdefault("BENCH_REST_URL", "http://127.0.0.1:9")
os.environ.setdefault("BENCH_GQL_URL", "http://127.0.0.1:9/graphql")
os.environ.setdefault("BENCH_GRPC_URL", "grpc://127.0.0.1:9")

from aggregator.config import load  # noqa: E402
from aggregator.server.app import create_app  # noqa: E402

BOMB = "query Bomb { ...F9 } fragment F0 on Query { __typename } " + " ".join(
    f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, 10)
)
# Case name -> (a new document text for request number n, the extensions.code expected; None: data).
CASES: dict[str, tuple[Callable[[int], str], str | None]] = {
    "valid, cached": (lambda n: "{ __typename }", None),
    "valid, new": (lambda n: f"query Q{n} {{ __typename t: __typename }}", None),
    "1,000 aliases": (lambda n: "{ " + "a: nope " * 1000 + f"}} # {n}", "QUERY_TOO_LARGE"),
    "1,000 __typename": (
        lambda n: "{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + f" }} # {n}",
        "QUERY_TOO_LARGE",
    ),
    "fragment bomb": (lambda n: f"{BOMB} # {n}", "QUERY_TOO_LARGE"),
    "900 KB comment": (lambda n: f"{{ __typename }} # {n}" + "x" * 900_000, "QUERY_TOO_LARGE"),
    "30,000 aliases": (
        lambda n: "{ " + " ".join(f"a{i}: __typename" for i in range(30_000)) + f" }} # {n}",
        "QUERY_TOO_LARGE",  # 420 KB: over max_query_bytes
    ),
    "20,000 tokens": (lambda n: "{ " + "a " * 20_000 + f"}} # {n}", "GRAPHQL_PARSE_FAILED"),
    "too deep": (
        lambda n: "{ " + "accounts_getUser(id: 1) { " * 30 + "id" + " }" * 31 + f" # {n}",
        "QUERY_TOO_DEEP",
    ),
}
BASELINE = "valid, new"


class Client:
    """Sends one ``POST /graphql`` to the ASGI app as uvicorn would, and returns the answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def post(self, body: bytes) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"bench"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def errors_in(status: int, answer: bytes, code: str | None) -> int:
    """1 when the answer is not what the case expects, else 0."""
    body = orjson.loads(answer)
    if code is None:
        return int(status != 200 or "errors" in body or "data" not in body)
    return int([e.get("extensions", {}).get("code") for e in body.get("errors", [])] != [code])


async def time_batch(client: Client, case: str, start: int, n: int) -> tuple[float, int]:
    """CPU milliseconds per request over ``n`` requests of ``case``, and the errors among them."""
    make, code = CASES[case]
    bodies = [orjson.dumps({"query": make(start + i)}) for i in range(n)]
    answers = []
    gc.collect()
    started = time.process_time()
    for body in bodies:
        answers.append(await client.post(body))
    elapsed = time.process_time() - started
    return elapsed / n * 1e3, sum(errors_in(status, answer, code) for status, answer in answers)


async def measure(requests: int, rounds: int) -> dict[str, tuple[float, int]]:
    app = create_app(load(HERE / "aggregator.yaml"))
    client = Client(app)
    for case in CASES:  # warm-up: first-use imports and the cached document
        await time_batch(client, case, -requests, 3)
    gc.freeze()  # as the server does after start-up
    samples: dict[str, list[float]] = {case: [] for case in CASES}
    errors = dict.fromkeys(CASES, 0)
    for round_ in range(rounds):
        order = list(CASES) if round_ % 2 == 0 else list(reversed(CASES))
        for case in order:
            ms, failed = await time_batch(client, case, round_ * requests, requests)
            samples[case].append(ms)
            errors[case] += failed
    return {case: (statistics.median(samples[case]), errors[case]) for case in CASES}


def report(rows: dict[str, tuple[float, int]], loop: str, requests: int, rounds: int) -> str:
    baseline = rows[BASELINE][0]
    lines = [
        f"CPU per request through the ASGI app, median of {rounds} rounds of {requests} ({loop}); "
        "refused documents all new to the server",
        f"{'case':18} {'CPU ms':>8} {'x baseline':>11} {'errors':>7}",
    ]
    for case, (ms, errors) in rows.items():
        lines.append(f"{case:18} {ms:8.3f} {ms / baseline:10.1f}x {errors:7d}")
    lines.append(f"baseline: '{BASELINE}' (a small valid query, parsed and validated)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="requests per case per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    # The server's own loop: uvicorn picks uvloop.
    print(report(uvloop.run(measure(args.requests, args.rounds)), "uvloop", args.requests, args.rounds))


if __name__ == "__main__":
    main()
