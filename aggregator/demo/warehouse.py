"""The demo warehouse: a gRPC inventory service (protos/inventory.proto) on a grpc.aio server.

The messages are built at run time from the proto, compiled as the gateway compiles it for the
``warehouse`` integration. Product ids are the catalog's. ``GetItem`` answers NOT_FOUND for an unknown
product; ``Reserve`` answers FAILED_PRECONDITION when fewer units are available than asked for.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from aggregator.config.grpc_schema import Services
from aggregator.config.protos import compile_protos

__all__ = ["PROTO", "BackgroundGrpcServer", "Warehouse"]

PROTO = Path(__file__).resolve().with_name("protos") / "inventory.proto"
SERVICE = "inventory.v1.Inventory"
_START_TIMEOUT = 10.0


class Warehouse:
    """The stock, and the two methods over it."""

    def __init__(self) -> None:
        self._stock = {
            str(n): {
                "productId": str(n),
                "quantity": 10 * n,
                "reserved": 0,
                "location": "BERLIN" if n % 2 else "LYON",
                "restockedAt": f"2024-0{n % 9 + 1}-15T08:00:00Z",
                "unitWeightGrams": str(250 * n),
            }
            for n in range(1, 7)
        }
        self._ids = itertools.count(1)

    async def get_item(
        self, request: dict[str, Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> dict[str, Any]:
        item = self._stock.get(request.get("productId", ""))
        if item is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no product {request.get('productId', '')!r}")
        return item

    async def reserve(
        self, request: dict[str, Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> dict[str, Any]:
        item = await self.get_item(request, context)
        wanted = int(request.get("quantity", 0))
        if wanted <= 0 or item["quantity"] - item["reserved"] < wanted:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"cannot reserve {wanted} units")
        item["reserved"] += wanted
        return {"reservationId": f"res-{next(self._ids)}", "item": item}


def _handlers(warehouse: Warehouse) -> grpc.GenericRpcHandler:
    services = Services(compile_protos([PROTO], []))
    service = services.pool.FindServiceByName(SERVICE)
    methods = {"GetItem": warehouse.get_item, "Reserve": warehouse.reserve}
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for name, method in methods.items():
        descriptor = service.methods_by_name[name]
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        response_class = message_factory.GetMessageClass(descriptor.output_type)

        async def call(
            request: Message,
            context: grpc.aio.ServicerContext[Any, Any],
            method: Any = method,
            response_class: Any = response_class,
        ) -> Message:
            answer = await method(json_format.MessageToDict(request), context)
            response: Message = json_format.ParseDict(answer, response_class())
            return response

        handlers[name] = grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=request_class.FromString, response_serializer=_serialize
        )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class BackgroundGrpcServer:
    """The warehouse served by grpc.aio from a daemon thread with an event loop of its own."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = f"{host}:{port}"
        self._host = host
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo warehouse", daemon=True)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as error:  # reported by start() to the thread that asked
            self._error = error
            self._started.set()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_handlers(Warehouse()),))
        port = server.add_insecure_port(self._address)
        await server.start()
        self.url = f"grpc://{self._host}:{port}"
        self._started.set()
        await self._stopping.wait()
        await server.stop(grace=1)

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"the demo warehouse did not start: {self._error}")

    def stop(self) -> None:
        if self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=_START_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()
