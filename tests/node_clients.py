"""Third-party GraphQL clients from tests/node, run as subprocesses against the gateway.

``apollo_query(url, query)`` runs tests/node/client_query.mjs: Apollo Client 3 with its default error
policy (a response carrying any error throws), its cache told the schema's abstract types.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from node_servers import NODE_DIR, require_node_packages

__all__ = ["ClientOutcome", "apollo_query"]

_SECONDS = 60.0  # a cold Node start on a busy machine


@dataclass(frozen=True)
class ClientOutcome:
    """What the application got: ``data``, or the ``error`` the client threw."""

    data: Any = None
    error: str | None = None


def apollo_query(url: str, query: str, variables: dict[str, Any] | None = None) -> ClientOutcome:
    require_node_packages()
    command = ["node", str(NODE_DIR / "client_query.mjs"), url, query]
    if variables is not None:
        command.append(json.dumps(variables))
    done = subprocess.run(
        command, cwd=NODE_DIR, capture_output=True, text=True, timeout=_SECONDS, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode not in (0, 1) or not lines:
        raise RuntimeError(f"client_query.mjs failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return ClientOutcome(**json.loads(lines[-1]))
