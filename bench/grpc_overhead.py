"""Micro benchmark: the gateway's overhead per call on a gRPC upstream, next to a REST call, same run.

    .venv/bin/python bench/grpc_overhead.py [--calls 2000] [--rounds 7]

Two upstreams run in a subprocess on loopback (so their work shares neither this process's GIL nor
its event loop): the fixed-answer HTTP/1.1 server of executor_overhead.py, and a grpc.aio server whose
``inventory.v1.Inventory/GetItem`` (the demo warehouse's proto) answers a fixed, pre-serialized Item.
In this process the same number of sequential calls is timed, call by call, for:

  rest-floor     the GET on upstreams.http.UpstreamClient + orjson.loads    (the REST wire floor)
  rest-gateway   IntegrationModule.call on a REST integration              (executor + REST layer)
  grpc-floor     the unary call on a bare grpc.aio channel + MessageToDict (the gRPC wire floor)
  grpc-gateway   IntegrationModule.call on a grpc integration              (executor + gRPC layer)

Variants alternate within every round so that drift on a noisy machine hits them alike. Reported:
median and p90 microseconds per call, the overhead of each kind over its floor, and the error count of
every variant. This is a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import orjson
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

sys.path.insert(0, str(Path(__file__).parent))
from executor_overhead import BODY, _serve

from aggregator.config import loads
from aggregator.config.grpc_schema import Services
from aggregator.config.protos import compile_protos
from aggregator.demo.warehouse import PROTO
from aggregator.module import IntegrationModule
from aggregator.upstreams.http import UpstreamClient

METHOD = "/inventory.v1.Inventory/GetItem"
ITEM = {
    "productId": "1",
    "quantity": 10,
    "reserved": 2,
    "location": "BERLIN",
    "restockedAt": "2024-02-15T08:00:00Z",
    "unitWeightGrams": "250",
}
CONFIG = """
integrations:
  rest:
    base_url: {rest}
    timeout: 5s
    retry: {{max_attempts: 3}}
    operations:
      getUser: {{path: "/users/{{id}}", params: {{id: "ID!"}}}}
  grpc:
    type: grpc
    base_url: {grpc}
    proto: {proto}
    timeout: 5s
    retry: {{max_attempts: 3}}
    operations:
      getItem: {{rpc: inventory.v1.Inventory/GetItem}}
"""


def _messages() -> tuple[type[Message], type[Message]]:
    method = Services(compile_protos([PROTO], [])).pool.FindMethodByName("inventory.v1.Inventory.GetItem")
    return message_factory.GetMessageClass(method.input_type), message_factory.GetMessageClass(
        method.output_type
    )


async def _serve_grpc() -> None:
    response_class = _messages()[1]
    answer = json_format.ParseDict(ITEM, response_class()).SerializeToString()

    async def get_item(request: bytes, context: Any) -> bytes:
        return answer

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(get_item)  # bytes in, bytes out: no decoding at all
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("inventory.v1.Inventory", {"GetItem": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


Call = Callable[[], Awaitable[Any]]


async def _time_calls(call: Call, count: int, errors: list[int]) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        try:
            await call()
        except Exception:
            errors[0] += 1
        samples.append((clock() - started) / 1000.0)
    return samples


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _measure(
    rest: str, grpc_url: str, calls: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    logging.disable(logging.WARNING)
    config = loads(CONFIG.format(rest=rest, grpc=grpc_url, proto=PROTO))
    module = IntegrationModule(config)
    await module.start()
    client = UpstreamClient(max_connections=100)
    channel = grpc.aio.insecure_channel(grpc_url.removeprefix("grpc://"))
    request_class, response_class = _messages()
    stub = channel.unary_unary(
        METHOD,
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    request = request_class(product_id="1")

    async def rest_floor() -> Any:
        response = await client.exchange(
            "GET", f"{rest}/users/1", headers={}, content=None, timeout=5.0, limit=1 << 20
        )
        return orjson.loads(response.content)

    async def rest_gateway() -> Any:
        return await module.call("rest", "getUser", {"id": "1"})

    async def grpc_floor() -> Any:
        return json_format.MessageToDict(
            await stub(request, timeout=5.0), always_print_fields_with_no_presence=True
        )

    async def grpc_gateway() -> Any:
        return await module.call("grpc", "getItem", {"productId": "1"})

    variants: dict[str, Call] = {
        "rest-floor": rest_floor,
        "rest-gateway": rest_gateway,
        "grpc-floor": grpc_floor,
        "grpc-gateway": grpc_gateway,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    errors = {name: [0] for name in variants}
    try:
        assert await rest_floor() == await rest_gateway() == orjson.loads(BODY)
        assert await grpc_floor() == await grpc_gateway() == {**ITEM, "unitWeightGrams": "250"}
        for name, call in variants.items():  # warm-up: connections, caches, code paths
            await _time_calls(call, min(calls, 500), errors[name])
        errors = {name: [0] for name in variants}
        order = list(variants)
        for round_ in range(rounds):
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                gc.collect()
                samples[name] += await _time_calls(variants[name], calls, errors[name])
    finally:
        await client.aclose()
        await channel.close()
        await module.stop()
    return samples, {name: count[0] for name, count in errors.items()}


def _report(samples: dict[str, list[float]], errors: dict[str, int], calls: int, rounds: int) -> None:
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"\n{calls} sequential calls x {rounds} rounds per variant, microseconds per call\n")
    print(f"{'variant':<52} {'median':>9} {'p90':>9} {'errors':>7}")
    labels = {
        "rest-floor": "(a) REST: GET on UpstreamClient + orjson",
        "rest-gateway": "(b) REST: IntegrationModule.call",
        "grpc-floor": "(c) gRPC: bare grpc.aio unary call + MessageToDict",
        "grpc-gateway": "(d) gRPC: IntegrationModule.call",
    }
    for name, label in labels.items():
        p90 = _percentile(samples[name], 0.9)
        print(f"{label:<52} {median[name]:>9.1f} {p90:>9.1f} {errors[name]:>7}")
    rest = median["rest-gateway"] - median["rest-floor"]
    grpc_overhead = median["grpc-gateway"] - median["grpc-floor"]
    print()
    print(f"{'overhead per REST call (b) - (a)':<52} {rest:>9.1f}")
    print(f"{'overhead per gRPC call (d) - (c)':<52} {grpc_overhead:>9.1f}")
    print(f"{'gRPC overhead / REST overhead':<52} {grpc_overhead / rest:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per variant per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", choices=("rest", "grpc"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve() if args.serve == "rest" else _serve_grpc())
        return
    servers = [
        subprocess.Popen([sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True)
        for kind in ("rest", "grpc")
    ]
    try:
        rest_port, grpc_port = (int(server.stdout.readline()) for server in servers if server.stdout)
        samples, errors = asyncio.run(
            _measure(
                f"http://127.0.0.1:{rest_port}", f"grpc://127.0.0.1:{grpc_port}", args.calls, args.rounds
            )
        )
    finally:
        for server in servers:
            server.terminate()
    print(f"python {sys.version.split()[0]}, loop: asyncio, grpcio {grpc.__version__}")
    _report(samples, errors, args.calls, args.rounds)


if __name__ == "__main__":
    main()
