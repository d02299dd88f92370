"""Third-party GraphQL servers from tests/node, run as subprocesses on loopback.

``graphql_server(schema)`` starts tests/node/graphql_server.mjs (graphql-yoga 5, or Apollo Server 5 with
``apollo=True``) serving the SDL file ``schema`` with @graphql-tools/mock answers, waits for the port it
prints, and stops it when the block ends. The npm packages come from tests/node's committed lockfile
(``make tests/node/node_modules/.installed``); without them the test is skipped with that command.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["NODE_DIR", "NodeGraphQLServer", "graphql_server", "require_node_packages"]

NODE_DIR = Path(__file__).resolve().parent / "node"
LAUNCHER = NODE_DIR / "graphql_server.mjs"
_STARTUP_SECONDS = 60.0  # a cold Node start with a schema the size of GitHub's, on a busy machine
_STOP_SECONDS = 10.0


def require_node_packages() -> None:
    """Skip, saying how to install them, when Node or tests/node's packages are missing."""
    if shutil.which("node") is None:
        pytest.skip("node is not on the PATH; the third-party server tests need Node 20")
    if not (NODE_DIR / "node_modules" / ".installed").exists():
        pytest.skip("tests/node packages missing: run `make tests/node/node_modules/.installed`")


@dataclass
class NodeGraphQLServer:
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def received(self) -> list[dict[str, Any]]:
        """Every GraphQL request the server received so far: query, variables and operationName."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/received", timeout=10) as answer:
            found: list[dict[str, Any]] = json.load(answer)
        return found


def _read_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + _STARTUP_SECONDS
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(timeout=left):
                continue
            line = process.stdout.readline()
            if not line:
                break  # the process ended
            if line.startswith("PORT "):
                return int(line.split()[1])
            seen.append(line)
    process.kill()
    _, err = process.communicate(timeout=_STOP_SECONDS)
    raise RuntimeError(f"graphql_server.mjs did not start:\n{''.join(seen)}{err}")


@contextlib.contextmanager
def graphql_server(
    schema: str | os.PathLike[str],
    *,
    apollo: bool = False,
    introspection: bool = True,
    port: int = 0,
    mocks: str | os.PathLike[str] | None = None,
) -> Iterator[NodeGraphQLServer]:
    """Serve ``schema`` (an SDL file) with mocks until the block ends; ``port=0`` picks a free one."""
    require_node_packages()
    command = ["node", str(LAUNCHER), os.fspath(schema), "--port", str(port)]
    if apollo:
        command.append("--apollo")
    if not introspection:
        command.append("--no-introspection")
    if mocks is not None:
        command += ["--mocks", os.fspath(mocks)]
    process = subprocess.Popen(
        command, cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield NodeGraphQLServer(process, _read_port(process))
    finally:
        process.terminate()
        try:
            process.communicate(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
