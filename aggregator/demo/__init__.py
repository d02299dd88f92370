"""The bundled demo: upstream APIs served on loopback, the config that points at them, a sample query.

``aggregator demo`` runs :func:`running_upstreams`, which serves each demo upstream (the REST API of
``upstreams.py``, the GraphQL catalog of ``catalog.py`` and the gRPC warehouse of ``warehouse.py``)
from a background thread on a free loopback port and yields the environment variables
``integrations.yaml`` reads to find them; the gateway then loads :data:`CONFIG_PATH` as any other
config.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from aggregator.demo.catalog import create_catalog_app
from aggregator.demo.upstreams import create_rest_app
from aggregator.demo.warehouse import BackgroundGrpcServer

__all__ = [
    "CONFIG_PATH",
    "GRPC_UPSTREAM",
    "SAMPLE_QUERY",
    "UPSTREAMS",
    "BackgroundServer",
    "running_upstreams",
]

CONFIG_PATH = Path(__file__).resolve().with_name("integrations.yaml")

# Environment variable the demo config reads -> the app serving it.
UPSTREAMS: Mapping[str, Callable[[], ASGIApp]] = {
    "DEMO_REST_URL": create_rest_app,
    "DEMO_CATALOG_URL": create_catalog_app,
}
# Environment variable the demo config reads -> the gRPC warehouse (warehouse.py).
GRPC_UPSTREAM = "DEMO_WAREHOUSE_URL"

SAMPLE_QUERY = """\
query Demo {
  users_getUser(id: "1") { name email address { city country } tags }
  posts_search(q: "numbers", tags: ["math"]) { total posts { title createdAt author { name } } }
  recommendations_forUser(userId: "1") { title score }
  catalog_product(id: "1") { name price { amount currency } rating reviews { stars text } stock { quantity } }
  inventory_stock(productId: "1") { quantity warehouse }
  warehouse_getItem(productId: "1") { quantity reserved location restockedAt unitWeightGrams }
  integrationStats { integrationId circuitState calls successes failuresTotal }
}
"""

_START_TIMEOUT = 10.0
_THREAD_PREFIX = "demo upstream "


class _QuietLifecycle(logging.Filter):
    """uvicorn's logger is one per process: without this, each demo upstream would announce its own
    start and shutdown ("Shutting down" three times on Ctrl-C). Their warnings and errors still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        thread = record.threadName or ""
        return record.levelno >= logging.WARNING or not thread.startswith(_THREAD_PREFIX)


class BackgroundServer:
    """An ASGI app served by uvicorn from a daemon thread on an already-bound loopback socket.

    Binding first means the port is known (and reserved) before the thread starts, and a port in use
    fails here with an OSError instead of inside the thread.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.create_server((host, port))
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        # log_config=None: uvicorn logging is process-wide; the gateway configures it.
        config = uvicorn.Config(app, log_config=None, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"{_THREAD_PREFIX}{self.url}",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the demo upstream at {self.url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=_START_TIMEOUT)
        self._socket.close()


@contextmanager
def running_upstreams(host: str = "127.0.0.1") -> Iterator[dict[str, str]]:
    """Serve every demo upstream on a free port; yields the env vars the demo config reads."""
    with ExitStack() as stack:
        quiet, logger = _QuietLifecycle(), logging.getLogger("uvicorn.error")
        logger.addFilter(quiet)
        stack.callback(logger.removeFilter, quiet)
        env: dict[str, str] = {}
        for name, factory in UPSTREAMS.items():
            server = BackgroundServer(factory(), host)
            stack.callback(server.stop)
            server.start()
            env[name] = server.url
        warehouse = BackgroundGrpcServer(host)
        stack.callback(warehouse.stop)
        warehouse.start()
        env[GRPC_UPSTREAM] = warehouse.url
        yield env
