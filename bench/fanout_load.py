#!/usr/bin/env python3
"""Load run of the gateway alone: the five-call fan-out from 64, 128 and 256 concurrent clients,
with the gateway's DEFAULT config, against the fast loopback REST upstream. No Hive Gateway.

    python3 bench/fanout_load.py                     # 7 s per cell, about 1 minute
    python3 bench/fanout_load.py --duration 3 --clients 64,256

It answers one question: does a default gateway fail healthy calls when it is busy? Every cell
reports requests/s, p50 and p99, the answers with an error (HTTP errors plus answers holding GraphQL
``errors``) and, from ``integrationStats``, the calls the bulkhead refused and the most that waited
for a slot at once. Everything (wrk, the Node upstream, the gateway) shares the machine's cores, so
the gateway is CPU-bound from about 16 clients on: that is the situation under test.

Needs wrk (installed with apt-get when missing, as bench/run.py does) and Node (bench/node's when
installed, else ``node`` on PATH: the upstream uses only node:http). Writes the report to
bench/results/<timestamp>-fanout-load.md and prints it. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from loadgen import LoadResult, run_wrk
from procs import Server, free_port, http_ok, start, wait_ready
from run import BENCH, NODE, REPO, RESULTS, ensure_wrk, find_aggregator, host_info, log, send, tool_version
from scenarios import Request, request_for

CONFIG = BENCH / "aggregator-defaults.yaml"
STATS_QUERY = (
    '{ integrationStats(id: "accounts") { calls successes failuresTotal clientErrors rejected '
    "bulkheadRejected queuedPeak latencyMs { p50 } } }"
)


@dataclass(frozen=True)
class Cell:
    clients: int
    load: LoadResult
    stats: dict[str, int]  # integrationStats counters accrued during the cell
    call_p50_ms: float

    @property
    def errors(self) -> int:
        return self.load.http_errors + self.load.graphql_errors


def node_binary() -> str:
    if NODE.exists():
        return str(NODE)
    found = shutil.which("node")
    if found is None:
        sys.exit("bench: no Node: install it, or run `npm ci` in bench/node")
    return found


def stats(server: Server) -> tuple[dict[str, int], float]:
    """The integration's counters, and the p50 of its recent calls' latency in ms as its executor saw
    it (slot taken to answer read): how long a call stays in flight, mostly waiting for the CPU."""
    _, answer = send(server.url, Request("POST", "/graphql", json.dumps({"query": STATS_QUERY})), 0)
    found: dict[str, Any] = answer["data"]["integrationStats"][0]
    latency = found.pop("latencyMs")["p50"] or 0.0
    return {key: int(value) for key, value in found.items()}, float(latency)


def run_cell(server: Server, request: Request, clients: int, seconds: float) -> Cell:
    before, _ = stats(server)
    load = run_wrk(server.url, request, connections=clients, seconds=seconds)
    after, call_p50 = stats(server)
    # queuedPeak is a high-water mark since start, not a counter: shown as it is after the cell.
    accrued = {key: after[key] - before[key] if key != "queuedPeak" else after[key] for key in after}
    return Cell(clients, load, accrued, call_p50)


def render(cells: Sequence[Cell], command: str, seconds: float, machine: Sequence[str]) -> str:
    lines = [
        "# Five-call fan-out, default config, fast upstream",
        "",
        f"`{command}`: {seconds:g} s per cell after a warm-up, wrk with new ids on every request.",
        "",
        *(f"- {line}" for line in machine),
        f"- config: `{CONFIG.relative_to(REPO)}` (no policy set: the gateway's defaults)",
        "",
        "| clients | requests/s | p50 ms | p99 ms | answers with an error | calls | "
        "refused by the bulkhead | most calls waiting for a slot | call p50 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        s = cell.stats
        lines.append(
            f"| {cell.clients} | {cell.load.rps:,.0f} | {cell.load.p50_ms:.1f} | {cell.load.p99_ms:.1f} | "
            f"{cell.errors} | {s['calls']:,} | {s['bulkheadRejected']} | {s['queuedPeak']} | "
            f"{cell.call_p50_ms:.1f} |"
        )
    total = sum(cell.errors for cell in cells)
    lines += ["", f"Answers with an error over the whole run: {total}."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=7.0, help="seconds per cell (default 7)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up at 16 clients")
    parser.add_argument("--clients", default="64,128,256", help="concurrent connections, comma-separated")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the gateway's config to serve")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"{stamp}-fanout-load-logs"
    logs.mkdir(parents=True, exist_ok=True)
    ensure_wrk()

    with ExitStack() as stack:
        port = free_port()
        upstream = start(
            "rest-upstream",
            f"http://127.0.0.1:{port}",
            [node_binary(), str(BENCH / "upstreams" / "rest.mjs"), "--port", str(port)],
            log_dir=logs,
            cwd=BENCH,
        )
        stack.callback(upstream.stop)
        wait_ready(upstream, lambda: http_ok(f"{upstream.url}/healthz"))
        gateway_port = free_port()
        argv_ = [find_aggregator(), "serve", "-c", str(args.config), "--port", str(gateway_port)]
        gateway = start(
            "aggregator",
            f"http://127.0.0.1:{gateway_port}",
            [*argv_, "--log-level", "warning"],
            log_dir=logs,
            cwd=REPO,
            env={"BENCH_REST_URL": upstream.url},
        )
        stack.callback(gateway.stop)
        wait_ready(gateway, lambda: http_ok(f"{gateway.url}/readyz"))

        found = request_for("aggregator", "fanout", upstream.url, "")
        assert found is not None
        request = found[1]
        status, answer = send(gateway.url, request, 1)
        if status != 200 or answer.get("errors") or len(answer.get("data") or {}) != 5:
            sys.exit(f"bench: the fan-out's sample answer is wrong: HTTP {status}: {str(answer)[:300]}")
        log(f"warm-up: 16 clients, {args.warmup:g} s")
        run_wrk(gateway.url, request, connections=16, seconds=args.warmup)
        cells = []
        for count in clients:
            cell = run_cell(gateway, request, count, args.duration)
            log(f"{count} clients: {cell.load.rps:,.0f} req/s, {cell.errors} with an error, {cell.stats}")
            cells.append(cell)
            if not gateway.alive():
                sys.exit(f"bench: the gateway died:\n{gateway.log_tail()}")
        machine = [
            *host_info(),
            f"upstream on Node {tool_version([node_binary()])}; load: {tool_version(['wrk'])}",
            "wrk, the upstream and the gateway share the cores",
        ]

    text = render(cells, shlex.join(["python3", "bench/fanout_load.py", *argv]), args.duration, machine)
    out = RESULTS / f"{stamp}-fanout-load.md"
    out.write_text(text)
    print(text)
    log(f"written to {out}")
    return 1 if any(cell.errors for cell in cells) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
