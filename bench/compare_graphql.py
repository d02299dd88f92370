#!/usr/bin/env python3
"""One GraphQL-upstream field through two aggregator checkouts, side by side in one run.

    python3 bench/compare_graphql.py --base /path/to/baseline-checkout
    python3 bench/compare_graphql.py --base ../main --duration 3 --rounds 2 --clients 1,16

Measures a change to the GraphQL path against a baseline without the Hive peer (bench/run.py needs
it): starts the benchmark's GraphQL upstream (bench/upstreams/graphql.mjs), then aggregator from
``--base`` and from this checkout, both on bench/aggregator.yaml with this repository's .venv (the
base's code first on PYTHONPATH), and loads each with wrk, targets alternating point by point. Two
queries: the benchmark's ``graphql`` scenario (every field of the product) and a narrow selection
(``{ id title }``). Prints, per query and client count, the median over the rounds of requests/s,
p50 and p99 latency, and the error count of every cell. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from loadgen import LoadResult, run_wrk
from procs import Server, free_port, http_ok, start, wait_ready
from scenarios import PRODUCT_FIELDS, Request

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = REPO / ".venv" / "bin" / "python"
QUERIES = {
    "all fields": PRODUCT_FIELDS,
    "{ id title }": "id title",
}


def request(fields: str) -> Request:
    query = f"query Product($id: ID!) {{ product: catalog_product(id: $id) {{ {fields} }} }}"
    body = json.dumps({"query": query, "variables": {"id": "@ID0@"}}, separators=(",", ":"))
    return Request("POST", "/graphql", body)


def node_modules() -> str:
    """Where graphql-js is: the bench's own Node side, else the tests' (tests/node)."""
    for folder in (BENCH / "node" / "node_modules", REPO / "tests" / "node" / "node_modules"):
        if (folder / "graphql").is_dir():
            return str(folder)
    sys.exit("compare_graphql: no graphql-js: run `make tests/node/node_modules/.installed`")


def start_upstream(stack: ExitStack, logs: Path) -> Server:
    port = free_port()
    command = ["node", str(BENCH / "upstreams" / "graphql.mjs"), "--port", str(port)]
    # graphql.mjs requires graphql from bench/node; NODE_PATH is Node's fallback when it is not there.
    env = {"NODE_PATH": node_modules()}
    server = start(
        "graphql-upstream", f"http://127.0.0.1:{port}/graphql", command, log_dir=logs, cwd=BENCH, env=env
    )
    stack.callback(server.stop)
    wait_ready(server, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
    return server


def start_gateway(stack: ExitStack, logs: Path, name: str, code: Path, upstream: Server) -> Server:
    port = free_port()
    argv = [str(PYTHON), "-m", "aggregator.cli", "serve", "-c", str(BENCH / "aggregator.yaml")]
    argv += ["--port", str(port), "--log-level", "warning"]
    env = {
        "PYTHONPATH": str(code),
        "BENCH_GQL_URL": upstream.url,
        # The REST integrations are not loaded by these queries; nothing listens there.
        "BENCH_REST_URL": f"http://127.0.0.1:{free_port()}",
    }
    server = start(name, f"http://127.0.0.1:{port}", argv, log_dir=logs, cwd=code, env=env)
    stack.callback(server.stop)
    wait_ready(server, lambda: http_ok(f"{server.url}/readyz"))
    return server


def cell(results: list[LoadResult]) -> str:
    rps = statistics.median(r.rps for r in results)
    p50 = statistics.median(r.p50_ms for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    errors = sum(r.http_errors + r.graphql_errors for r in results)
    return f"{rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}"


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, required=True, help="the baseline checkout (its aggregator/)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per point")
    parser.add_argument("--rounds", type=int, default=3, help="points per target, query and client count")
    parser.add_argument("--clients", default="1,16,64", help="concurrent connections, comma-separated")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("compare_graphql: wrk is missing (apt-get install wrk)")
    clients = [int(c) for c in args.clients.split(",")]
    targets = {"base": args.base.resolve(), "this": REPO}
    results: dict[tuple[str, str, int], list[LoadResult]] = {}
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-compare-")))
        upstream = start_upstream(stack, logs)
        gateways = {name: start_gateway(stack, logs, name, code, upstream) for name, code in targets.items()}
        for query, fields in QUERIES.items():
            load = request(fields)
            for gateway in gateways.values():  # warm-up: plans, cuts, connections
                run_wrk(gateway.url, load, connections=16, seconds=1)
            for connections in clients:
                for _ in range(args.rounds):
                    for name, gateway in gateways.items():
                        result = run_wrk(gateway.url, load, connections=connections, seconds=args.duration)
                        results.setdefault((query, name, connections), []).append(result)
    print(f"median of {args.rounds} points of {args.duration:g} s; base = {targets['base']}, this = {REPO}")
    for query in QUERIES:
        print(f"\n{query}")
        for connections in clients:
            for name in targets:
                print(f"  {connections:3d} clients  {name:5s} {cell(results[(query, name, connections)])}")
            base = statistics.median(r.rps for r in results[(query, "base", connections)])
            this = statistics.median(r.rps for r in results[(query, "this", connections)])
            print(f"  {connections:3d} clients  this/base req/s {this / base:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main(sys.argv[1:])
