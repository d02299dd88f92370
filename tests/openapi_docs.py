"""OpenAPI documents the tests import, and a Prism mock server answering from them.

``GITHUB`` is GitHub's published document (npm ``@octokit/openapi``, tests/node); ``cut`` keeps some of
its operations and exactly the components they reach, so that Prism (which reads the whole document
before it listens, ~45 s for GitHub's) starts in a few seconds. ``prism_mock(document)`` runs Stoplight
Prism 5 from tests/node on a free loopback port until the block ends.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

from node_servers import NODE_DIR, require_node_packages

__all__ = ["GITHUB", "OPENAPI_DIR", "cut", "prism_mock", "write_json"]

GITHUB = NODE_DIR / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
OPENAPI_DIR = Path(__file__).resolve().parent / "openapi"
PRISM = NODE_DIR / "node_modules" / ".bin" / "prism"
_STARTUP_SECONDS = 90.0  # Node and Prism on a busy 2-core machine
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def cut(document: dict[str, Any], operation_ids: Collection[str]) -> dict[str, Any]:
    """``document`` with only the operations named and the components their ``$ref``s reach."""
    paths: dict[str, Any] = {}
    for path, item in document["paths"].items():
        kept = {m: op for m, op in item.items() if m in _METHODS and op.get("operationId") in operation_ids}
        if kept:
            paths[path] = kept
    reached: set[tuple[str, str]] = set()
    pending: list[Any] = [paths]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                _, _, section, name = ref.split("/", 3)
                if (section, name) not in reached:
                    reached.add((section, name))
                    pending.append(document["components"][section][name])
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    components: dict[str, dict[str, Any]] = {}
    for section, name in sorted(reached):
        components.setdefault(section, {})[name] = document["components"][section][name]
    kept = {k: v for k, v in document.items() if not k.startswith("x-") and k != "webhooks"}
    return {**kept, "paths": paths, "components": components}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def prism_mock(document: Path, *, dynamic: bool = False) -> Iterator[str]:
    """Prism mocking ``document`` on loopback; yields its base URL. ``dynamic`` answers with data
    generated from the schemas (seeded, so every run gets the same) instead of the examples."""
    require_node_packages()
    port = _free_port()
    command = [str(PRISM), "mock", "-p", str(port), "-h", "127.0.0.1", "-v", "warn", str(document)]
    if dynamic:
        command += ["--dynamic", "--seed", "1"]
    # Prism's log goes to a file: a pipe nobody reads would block it once full.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=NODE_DIR, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_listening(process, port, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(process: subprocess.Popen[str], port: int, log: IO[str]) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"prism exited with {process.returncode}:\n{log.read()[-4000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"prism did not listen on port {port} within {_STARTUP_SECONDS:g}s")


def write_json(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path
