"""GraphQL upstreams as real servers run them: a Hasura-shaped schema on graphql-yoga, Apollo Server 5
with introspection off, an upstream down at start-up that comes back, and what the log says of each."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway import Gateway, serve_gateway
from node_servers import NodeGraphQLServer, graphql_server
from servers import closed_port_url

from aggregator.config import loads
from aggregator.testing import FakeClock
from aggregator.upstreams.graphql import GraphQLUpstream

SCHEMAS = Path(__file__).parent / "schemas"
HASURA = SCHEMAS / "hasura.graphql"
PETS = SCHEMAS / "pets.graphql"

HASURA_CONFIG = """
integrations:
  hasura:
    type: graphql
    base_url: {url}
    operations:
      users:
        document: |
          query Users($limit: Int = 10, $order: [users_order_by!], $where: users_bool_exp) {{
            users(limit: $limit, order_by: $order, where: $where) {{
              id name created_at posts_aggregate {{ aggregate {{ count }} }}
            }}
          }}
        params: {{limit: Int, order: "[users_order_by!]", where: users_bool_exp}}
      stats:
        document: |
          query Stats {{ users_aggregate {{ aggregate {{ count max {{ name created_at }} }} }} }}
"""
PETS_CONFIG = """
integrations:
  pets:
    type: graphql
    base_url: {url}
    timeout: 10s
    {schema}
    operations:
      pets:
        document: |
          query Pets($first: Int = 2) {{
            pets(first: $first) {{ ... on Cat {{ name color }} ... on Dog {{ barks }} }}
          }}
        params: {{first: Int}}
"""


def direct(server: NodeGraphQLServer, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(server.url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def hasura() -> Iterator[tuple[NodeGraphQLServer, Gateway]]:
    with graphql_server(HASURA) as server, serve_gateway(HASURA_CONFIG.format(url=server.url)) as gateway:
        yield server, gateway


@pytest.mark.parametrize(
    "expected",
    [
        "type users {",
        "type users_aggregate_fields {",
        "input users_order_by {\n  created_at: order_by\n  name: order_by = asc\n}",
        "input users_bool_exp {\n  _and: [users_bool_exp!]\n  name: String_comparison_exp\n}",
        '"""column ordering options"""\nenum order_by {',
        "scalar timestamptz",
        "hasura_users(limit: Int = 10, order: [users_order_by!], where: users_bool_exp): [users!]",
        "hasura_stats: users_aggregate",
    ],
)
def test_hasura_names_and_input_types_are_kept(
    hasura: tuple[NodeGraphQLServer, Gateway], expected: str
) -> None:
    """Underscored names, _aggregate types and order_by inputs appear as Hasura declares them."""
    _, gateway = hasura
    sdl = gateway.app.state.schema.as_str()
    assert expected in sdl


def test_hasura_input_arguments_are_checked_and_sent_as_given(
    hasura: tuple[NodeGraphQLServer, Gateway],
) -> None:
    """order_by and where inputs reach the upstream as variables; the data is the upstream's."""
    server, gateway = hasura
    answer = gateway.query(
        '{ hasura_users(limit: 2, order: [{name: desc}], where: {name: {_ilike: "%a%"}})'
        " { id name created_at posts_aggregate { aggregate { count } } }"
        " hasura_stats { aggregate { count max { name created_at } } } }"
    )
    assert "errors" not in answer, answer
    sent = {r["operationName"] or r["query"].split("(")[0]: r for r in server.received()[-2:]}
    users = next(r for r in sent.values() if "users(" in r["query"] and "Users" in r["query"])
    assert users["variables"] == {
        "limit": 2,
        "order": [{"name": "desc"}],
        "where": {"name": {"_ilike": "%a%"}},
    }
    upstream = direct(server, users["query"], users["variables"])["data"]
    assert answer["data"]["hasura_users"] == upstream["users"]


def test_a_value_outside_an_upstream_enum_is_refused_before_anything_is_sent(
    hasura: tuple[NodeGraphQLServer, Gateway],
) -> None:
    """The gateway validates the argument against the upstream's enum: an error, no upstream request."""
    server, gateway = hasura
    before = len(server.received())
    answer = gateway.query("{ hasura_users(order: [{name: sideways}]) { id } }")
    assert answer.get("data") is None
    assert "order_by" in answer["errors"][0]["message"]
    assert len(server.received()) == before


def test_apollo_server_with_introspection_off_is_typed_from_the_schema_file() -> None:
    """`schema:` gives the types that introspection cannot; the query is answered as the upstream does."""
    with graphql_server(PETS, apollo=True, introspection=False) as server:
        config = PETS_CONFIG.format(url=server.url, schema=f"schema: {PETS.name}")
        with serve_gateway(config, base_dir=SCHEMAS) as gateway:
            assert "pets_pets(first: Int = 2): [Pet!]" in gateway.app.state.schema.as_str()
            answer = gateway.query("{ pets_pets { __typename ... on Cat { name } ... on Dog { barks } } }")
            assert "errors" not in answer, answer
            sent = server.received()[-1]
            upstream = direct(server, sent["query"], sent["variables"])["data"]["pets"]
            assert answer["data"]["pets_pets"] == upstream


class GatedClock(FakeClock):
    """A FakeClock whose sleeps wait until the test lets them end, one at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.released = asyncio.Queue[None]()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.released.get()


def pets_upstream(url: str, clock: FakeClock) -> GraphQLUpstream:
    config = loads(PETS_CONFIG.format(url=url, schema=""))
    return GraphQLUpstream(config.integrations["pets"], clock=clock)


async def wait_for(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_an_upstream_that_refuses_introspection_is_logged_once_and_asked_every_ten_minutes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Apollo Server in production: one WARNING with the reason and the fix, then a retry per 10 min."""
    clock = GatedClock()
    with graphql_server(PETS, apollo=True, introspection=False) as server:
        upstream = pets_upstream(server.url, clock)
        with caplog.at_level(logging.DEBUG, logger="aggregator.upstreams.graphql"):
            await upstream.start()
            try:
                await wait_for(lambda: len(clock.sleeps) == 1)
                clock.released.put_nowait(None)
                await wait_for(lambda: len(clock.sleeps) == 2)
            finally:
                await upstream.stop()
    assert clock.sleeps == [600.0, 600.0]
    assert upstream.schema is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "refused the introspection query" in warnings[0]
    assert "introspection is not allowed" in warnings[0]
    assert "schema: FILE" in warnings[0]


async def test_an_unreachable_upstream_is_retried_with_backoff_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connection refused: one WARNING naming the cause and the fix, retries 1 s, 2 s, 4 s apart."""
    clock = GatedClock()
    upstream = pets_upstream(closed_port_url() + "/graphql", clock)
    with caplog.at_level(logging.DEBUG, logger="aggregator.upstreams.graphql"):
        await upstream.start()
        try:
            for count in (1, 2):
                await wait_for(lambda count=count: len(clock.sleeps) == count)
                clock.released.put_nowait(None)
            await wait_for(lambda: len(clock.sleeps) == 3)
        finally:
            await upstream.stop()
    assert clock.sleeps == [1.0, 2.0, 4.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "introspection at http://127.0.0.1:" in warnings[0]
    assert "retrying in the background" in warnings[0]


def test_an_upstream_down_at_start_types_its_fields_when_it_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fields work as JSON meanwhile; once introspection succeeds the schema is rebuilt, the change
    logged at WARNING, and the fields are typed."""
    url = closed_port_url()
    port = int(url.rsplit(":", 1)[1])
    with (
        caplog.at_level(logging.INFO),
        serve_gateway(PETS_CONFIG.format(url=f"{url}/graphql", schema="")) as gateway,
    ):
        assert "pets_pets(first: Int = 2): JSON" in gateway.app.state.schema.as_str()
        with graphql_server(PETS, port=port) as server:
            deadline = time.monotonic() + 60  # retries 1, 2, 4, 8, 16 s apart: generous on a busy machine
            while "Pet" not in gateway.app.state.schema._schema.type_map and time.monotonic() < deadline:
                time.sleep(0.2)
            answer = gateway.query("{ pets_pets { __typename ... on Dog { barks } ... on Cat { name } } }")
            assert "errors" not in answer, answer
            sent = server.received()[-1]
            assert (
                answer["data"]["pets_pets"]
                == direct(server, sent["query"], sent["variables"])["data"]["pets"]
            )
    changes = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "schema was rebuilt" in r.getMessage()
    ]
    assert len(changes) == 1
    assert "Query.pets_pets: JSON -> [Pet!]" in changes[0]
    assert "type Pet added" in changes[0]
