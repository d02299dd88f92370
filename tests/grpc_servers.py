"""Real grpc.aio servers on loopback for the gRPC tests.

The services come from the .proto files under tests/protos, compiled when the tests run (no generated
code); each method is a generic handler calling a test's function with the request as proto3 JSON and
answering the JSON it returns. The server runs its own event loop in a thread, so that a test may
block on a synchronous client (the gateway's) while the server answers. Every request is recorded:
its method, message, metadata and the time its deadline left.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection

from aggregator.config.grpc_schema import Services
from aggregator.config.protos import compile_protos

PROTOS = Path(__file__).parent / "protos"

Handler = Callable[[dict[str, Any], grpc.aio.ServicerContext[Any, Any]], Awaitable[dict[str, Any]]]


def services(*files: str) -> Services:
    """The services of ``files`` (relative to tests/protos, which is also the import folder)."""
    return Services(compile_protos([PROTOS / file for file in files], [PROTOS]))


@dataclass
class Received:
    method: str
    request: dict[str, Any]
    metadata: dict[str, str]
    time_remaining: float | None


class GrpcServer:
    """``handlers`` maps ``/package.Service/Method`` to an async function of (request JSON, context)."""

    def __init__(
        self,
        services: Services,
        handlers: dict[str, Handler],
        *,
        reflection_services: tuple[str, ...] = (),
        credentials: grpc.ServerCredentials | None = None,
        port: int = 0,
    ) -> None:
        self.services = services
        self.handlers = handlers
        self.received: list[Received] = []
        self._reflection = reflection_services
        self._credentials = credentials
        self.port = port

    def _handler(self, path: str, handler: Handler) -> grpc.RpcMethodHandler[Any, Any]:
        service_name, method_name = path.strip("/").split("/")
        method = self.services.pool.FindServiceByName(service_name).methods_by_name[method_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)

        async def call(request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
            document = json_format.MessageToDict(request)
            metadata = {
                key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
            }
            self.received.append(Received(path, document, metadata, context.time_remaining()))
            answer = await handler(document, context)
            return json_format.ParseDict(answer, response_class())

        return grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=request_class.FromString, response_serializer=_serialize
        )

    async def _serve(self, started: threading.Event, stop: asyncio.Event) -> None:
        server = grpc.aio.server()
        by_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
        for path, handler in self.handlers.items():
            service_name, method_name = path.strip("/").split("/")
            by_service.setdefault(service_name, {})[method_name] = self._handler(path, handler)
        for service_name, methods in by_service.items():
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, methods),))
        if self._reflection:
            reflection.enable_server_reflection(
                (*self._reflection, reflection.SERVICE_NAME), server, pool=self.services.pool
            )
        address = f"127.0.0.1:{self.port}"
        if self._credentials is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, self._credentials)
        await server.start()
        started.set()
        await stop.wait()
        await server.stop(grace=None)

    @contextlib.contextmanager
    def running(self) -> Iterator[GrpcServer]:
        """Serve on a free loopback port (``self.port``) for the duration of the block."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        stop = asyncio.Event()

        def run() -> None:
            loop.run_until_complete(self._serve(started, stop))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            if not started.wait(10):
                raise RuntimeError("the gRPC test server did not start")
            yield self
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            loop.close()

    @property
    def url(self) -> str:
        scheme = "grpc" if self._credentials is None else "grpcs"
        return f"{scheme}://127.0.0.1:{self.port}"


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


async def echo(request: dict[str, Any], context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, Any]:
    """A handler answering the request itself."""
    return request
