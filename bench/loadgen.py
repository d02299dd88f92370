"""Load with wrk: one run at a fixed number of connections, its figures read from load.lua's result line."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scenarios import Request

LUA_SCRIPT = Path(__file__).with_name("load.lua")
MAX_THREADS = 2  # the machine's cores; more wrk threads only steal CPU from the servers


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    # non-2xx answers plus connect/read/write errors and timeouts
    http_errors: int
    # answers whose body holds "errors" (GraphQL errors, 200 or not)
    graphql_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(base_url: str, request: Request, *, connections: int, seconds: float) -> LoadResult:
    """Run wrk against ``base_url`` with ``request``; raise with wrk's output when it fails."""
    env = {**os.environ, "BENCH_METHOD": request.method, "BENCH_PATH": request.path}
    if request.body is not None:
        env["BENCH_BODY"] = request.body
    command = [
        "wrk",
        f"-t{min(MAX_THREADS, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            return LoadResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                http_errors=raw["non2xx"] + raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
                graphql_errors=raw["graphql_errors"],
            )
    raise RuntimeError(f"wrk failed (status {done.returncode}):\n{done.stdout}\n{done.stderr}")
