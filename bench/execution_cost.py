"""Micro benchmark: the CPU cost of executing one validated request, graphql-core against a compiled plan.

    .venv/bin/python bench/execution_cost.py [--requests 2000] [--rounds 7] [--asyncio]

In process, no server and no network: the benchmark's config (bench/aggregator.yaml) and its queries
(bench/scenarios.py), the module's calls answered at once with canned JSON (the failing upstream's with
CIRCUIT_OPEN, as behind its open breaker). Per scenario, every round times ``--requests`` requests of
each variant, the variants alternating within the round so that drift on a noisy machine hits both:

  graphql-core  graphql.execute with Strawberry's execution context class, as the runner called it
  compiled      CompiledOperation.execute (aggregator/schema/compiled.py), as the runner calls it now

Parsing and validation are cached in the server and left out of both. Reported: the median over rounds
of CPU microseconds per request, the ratio, and the one-off cost of a first request (it makes the plan).
Both variants must give the same result (checked first); nothing else is asserted: this is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from inspect import isawaitable
from pathlib import Path
from typing import Any, TypeGuard, cast

from graphql import DocumentNode, ExecutionResult, OperationDefinitionNode, execute, get_operation_ast, parse
from strawberry.execution import optimized_is_awaitable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The config names upstream URLs; nothing is contacted.
os.environ.setdefault("BENCH_REST_URL", "http://127.0.0.1:9")
os.environ.setdefault("BENCH_GQL_URL", "http://127.0.0.1:9/graphql")
os.environ.setdefault("BENCH_GRPC_URL", "grpc://127.0.0.1:9")

from scenarios import fill, request_for  # noqa: E402

from aggregator.config import load  # noqa: E402
from aggregator.errors import CircuitOpen  # noqa: E402
from aggregator.module import IntegrationModule  # noqa: E402
from aggregator.schema import RequestContext, build_schema  # noqa: E402
from aggregator.schema.compiled import compile_operation  # noqa: E402
from aggregator.upstreams.selection import ClientSelection  # noqa: E402

USER = {
    "id": "1",
    "name": "User 1",
    "email": "u1@example.test",
    "address": {"street": "1 Main", "city": "Osaka", "zip": "123", "country": "JP"},
    "tags": ["a", "b", "c"],
}
ORDER = {
    "id": "1",
    "userId": "2",
    "status": "PAID",
    "total": {"amount": "12.00", "currency": "EUR"},
    "items": [{"productId": "p1", "quantity": 2}, {"productId": "p2", "quantity": 1}],
}
PRODUCT = {
    "id": "1",
    "title": "Product 1",
    "description": "A product",
    "price": {"amount": 9.5, "currency": "EUR"},
    "inStock": True,
    "tags": ["x", "y"],
}
# Beside the benchmark's scenarios: the fan-out with @include on variables, alternating per request, which
# makes the plan keep one variant per combination.
INCLUDE_QUERY = (
    "query Fanout($a: ID, $b: ID, $full: Boolean!) {"
    " u1: accounts_getUser(id: $a) { id name address @include(if: $full) { city } tags }"
    " o1: accounts_getOrder(id: $b) { id status items @include(if: $full) { productId quantity } } }"
)
# Strawberry's check, as the runner passes it (typed as graphql-core wants it).
IS_AWAITABLE = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)
SCENARIOS = ("trivial", "rest", "graphql", "fanout", "include", "breaker")


async def answer(
    integration_id: str,
    operation: str,
    params: Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    selection: ClientSelection | None = None,
) -> Any:
    if integration_id == "broken":
        raise CircuitOpen("circuit open", integration=integration_id, operation=operation)
    return {"getUser": USER, "getOrder": ORDER, "product": PRODUCT}[operation]


@dataclass
class Case:
    """One scenario's request, and a way to run it with each variant."""

    name: str
    variants: dict[str, Callable[[dict[str, Any]], Awaitable[ExecutionResult]]]
    variables: list[dict[str, Any]]
    document: DocumentNode


def request_body(scenario: str) -> tuple[str, list[dict[str, Any]]]:
    if scenario == "include":
        return INCLUDE_QUERY, [{"a": "1", "b": "2", "full": full} for full in (True, False)]
    found = request_for("aggregator", scenario, "", "")
    assert found is not None
    assert found[1].body is not None
    body = json.loads(fill(found[1].body, 1))
    return body["query"], [body.get("variables") or {}]


def make_case(schema: Any, scenario: str) -> Case:
    core = schema._schema
    query, variables = request_body(scenario)
    document = parse(query)
    operation = get_operation_ast(document)
    assert isinstance(operation, OperationDefinitionNode)
    plan = compile_operation(core, document, operation)
    assert plan is not None, f"no plan for {scenario}"
    executor_class = schema.execution_context_class

    async def graphql_core(values: dict[str, Any]) -> ExecutionResult:
        result = execute(
            core,
            document,
            context_value=RequestContext(),
            variable_values=values,
            is_awaitable=IS_AWAITABLE,
            executor_class=executor_class,
        )
        return await result if isawaitable(result) else result

    async def compiled(values: dict[str, Any]) -> ExecutionResult:
        result = await plan.execute(values, RequestContext(), None)
        assert result is not None
        return result

    return Case(scenario, {"graphql-core": graphql_core, "compiled": compiled}, variables, document)


async def first_request_us(schema: Any, case: Case) -> float:
    """CPU microseconds of a first request: making the plan (and its variant), then running it once."""
    operation = get_operation_ast(case.document)
    assert isinstance(operation, OperationDefinitionNode)
    started = time.process_time()
    plan = compile_operation(schema._schema, case.document, operation)
    assert plan is not None
    await plan.execute(case.variables[0], RequestContext(), None)
    return (time.process_time() - started) * 1e6


async def check_same(case: Case) -> None:
    for values in case.variables:
        first, second = [await run(values) for run in case.variants.values()]
        assert first.data == second.data, (case.name, first.data, second.data)
        assert [e.formatted for e in first.errors or ()] == [e.formatted for e in second.errors or ()]


async def time_batch(
    run: Callable[[dict[str, Any]], Awaitable[ExecutionResult]], case: Case, n: int
) -> float:
    """CPU microseconds per request over ``n`` requests (variable sets taken in turn)."""
    variables = case.variables
    gc.collect()
    started = time.process_time()
    for index in range(n):
        await run(variables[index % len(variables)])
    return (time.process_time() - started) / n * 1e6


async def measure(requests: int, rounds: int) -> list[tuple[str, float, float, float]]:
    config = load(HERE / "aggregator.yaml")
    module = IntegrationModule(config)
    module.call = answer  # type: ignore[method-assign]
    schema = build_schema(config, module)
    cases = [make_case(schema, scenario) for scenario in SCENARIOS]
    firsts = {case.name: await first_request_us(schema, case) for case in cases}
    for case in cases:
        await check_same(case)
    # As the server does after start-up: the long-lived objects leave the collector's generations.
    gc.freeze()
    rows = []
    for case in cases:
        samples: dict[str, list[float]] = {name: [] for name in case.variants}
        await time_batch(case.variants["compiled"], case, requests // 4)  # warm-up (plan variants)
        await time_batch(case.variants["graphql-core"], case, requests // 4)
        for round_ in range(rounds):
            order = list(case.variants.items())
            if round_ % 2:
                order.reverse()
            for name, run in order:
                samples[name].append(await time_batch(run, case, requests))
        core_us = statistics.median(samples["graphql-core"])
        compiled_us = statistics.median(samples["compiled"])
        rows.append((case.name, core_us, compiled_us, firsts[case.name]))
    return rows


def report(rows: list[tuple[str, float, float, float]], loop: str) -> str:
    lines = [
        f"execution CPU per request, median over rounds ({loop}; parse and validation cached, not timed)",
        f"{'scenario':10} {'graphql-core µs':>16} {'compiled µs':>12} {'ratio':>7} {'first request µs':>17}",
    ]
    for name, core_us, compiled_us, first_us in rows:
        ratio = core_us / compiled_us
        lines.append(f"{name:10} {core_us:16.1f} {compiled_us:12.1f} {ratio:6.1f}x {first_us:17.0f}")
    lines.append("first request: making the plan (and its first @skip/@include variant) and running it, once")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--asyncio", action="store_true", help="asyncio's own loop instead of uvloop")
    args = parser.parse_args()
    if args.asyncio:
        rows, loop = asyncio.run(measure(args.requests, args.rounds)), "asyncio"
    else:
        import uvloop

        rows, loop = uvloop.run(measure(args.requests, args.rounds)), "uvloop"
    print(report(rows, loop))


if __name__ == "__main__":
    main()
