"""Third-party GraphQL clients from tests/node, run as subprocesses against the gateway.

``apollo_query(url, query)`` runs tests/node/client_query.mjs: Apollo Client 3 with its default error
policy (a response carrying any error throws), its cache told the schema's abstract types.
``apollo_persisted(url, query, get=...)`` runs tests/node/client_apq.mjs: Apollo Client 3 with its
automatic persisted queries link, sending the query twice.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from node_servers import NODE_DIR, require_node_packages

__all__ = ["ClientOutcome", "PersistedOutcome", "apollo_persisted", "apollo_query"]

_SECONDS = 60.0  # a cold Node start on a busy machine


@dataclass(frozen=True)
class ClientOutcome:
    """What the application got: ``data``, or the ``error`` the client threw."""

    data: Any = None
    error: str | None = None


@dataclass(frozen=True)
class PersistedOutcome:
    """The data of each of the two queries (or the ``error`` thrown), and each request the link made:
    ``{"method", "sentQuery", "sentHash", "status", "codes"}``."""

    requests: list[dict[str, Any]]
    results: list[Any] | None = None
    error: str | None = None


def apollo_query(url: str, query: str, variables: dict[str, Any] | None = None) -> ClientOutcome:
    args = [query] if variables is None else [query, json.dumps(variables)]
    return ClientOutcome(**_run("client_query.mjs", url, *args))


def apollo_persisted(url: str, query: str, *, get: bool) -> PersistedOutcome:
    return PersistedOutcome(**_run("client_apq.mjs", url, query, *(["get"] if get else [])))


def _run(script: str, *args: str) -> dict[str, Any]:
    """The last JSON line a client script printed (exit 0, or 1 when the query threw)."""
    require_node_packages()
    command = ["node", str(NODE_DIR / script), *args]
    done = subprocess.run(
        command, cwd=NODE_DIR, capture_output=True, text=True, timeout=_SECONDS, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode not in (0, 1) or not lines:
        raise RuntimeError(f"{script} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    outcome: dict[str, Any] = json.loads(lines[-1])
    return outcome
