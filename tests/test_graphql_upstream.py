"""GraphQL upstreams end to end: the gateway in front of a real GraphQL service on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway import Gateway, serve_gateway
from graphql import FieldNode, OperationDefinitionNode, parse
from graphql_upstream_app import Catalog
from servers import serve_asgi

from aggregator.config import loads
from aggregator.module import IntegrationModule
from aggregator.upstreams.selection import ClientSelection

OPERATIONS = """
    operations:
      product:
        document: |
          query Product($id: ID!) {{ product(id: $id) {{ id title price {{ amount currency }} stock tags }} }}
        params: {{id: "ID!"}}
      products:
        document: |
          query Products($ids: [ID!]!, $minPrice: Float) {{
            products(ids: $ids, minPrice: $minPrice) {{ id title }}
          }}
        params: {{ids: "[ID!]!", minPrice: Float}}
      slow:
        document: "query Slow($id: ID!) {{ slowProduct(id: $id) {{ id }} }}"
        params: {{id: "ID!"}}
        timeout: 300ms
      broken:
        document: "{{ broken }}"
      addReview:
        document: |
          mutation AddReview($productId: ID!, $stars: Int!) {{
            addReview(productId: $productId, stars: $stars) {{ id stars }}
          }}
        params: {{productId: "ID!", stars: "Int!"}}
"""

CONFIG = (
    """
integrations:
  catalog:
    type: graphql
    base_url: {url}/graphql
    {extra}
    retry: {{max_attempts: 3, initial_wait: 10ms, max_wait: 20ms}}
    circuit_breaker: {breaker}
"""
    + OPERATIONS
)


@pytest.fixture
def catalog() -> Catalog:
    return Catalog()


def config(url: str, *, extra: str = "", breaker: str = "{threshold: 50}") -> str:
    return CONFIG.format(url=url, extra=extra, breaker=breaker)


def start(catalog: Catalog, breaker: str = "{threshold: 50}") -> Iterator[Gateway]:
    with serve_asgi(catalog.app()) as url, serve_gateway(config(url, breaker=breaker)) as gateway:
        yield gateway


@pytest.fixture
def gateway(catalog: Catalog) -> Iterator[Gateway]:
    yield from start(catalog)


def test_returns_are_derived_from_the_selection_by_introspection(gateway: Gateway) -> None:
    """With no `returns`, the field is typed from the upstream's schema: clients select sub-fields."""
    body = gateway.query('{ catalog_product(id: "3") { title price { amount currency } tags } }')
    assert body == {
        "data": {
            "catalog_product": {
                "title": "Product 3",
                "price": {"amount": 4.5, "currency": "EUR"},
                "tags": ["a", "b"],
            }
        }
    }


def test_derived_types_appear_in_the_gateway_schema(gateway: Gateway) -> None:
    """The derived Product type carries only what the documents select, all nullable."""
    body = gateway.query('{ __type(name: "Product") { fields { name type { kind name } } } }')
    fields = {f["name"]: f["type"] for f in body["data"]["__type"]["fields"]}
    assert set(fields) == {"id", "title", "price", "stock", "tags"}
    assert fields["price"] == {"kind": "OBJECT", "name": "Price"}
    assert fields["stock"] == {"kind": "SCALAR", "name": "Int"}


def test_types_come_from_a_schema_file_without_introspection(catalog: Catalog, tmp_path: Path) -> None:
    """`schema:` gives the upstream's SDL: derived types without asking the upstream."""
    catalog.app()
    schema_file = tmp_path / "catalog.graphql"
    schema_file.write_text(str(catalog.schema))
    with serve_asgi(catalog.app()) as url:
        text = config(url, extra=f"schema: {schema_file}")
        with serve_gateway(text, base_dir=tmp_path) as gateway:
            requests_before = catalog.requests
            body = gateway.query('{ catalog_product(id: "2") { price { currency } } }')
            assert body == {"data": {"catalog_product": {"price": {"currency": "EUR"}}}}
            assert catalog.requests == requests_before + 1


def test_variables_of_every_kind_reach_the_upstream(gateway: Gateway) -> None:
    """Lists, optional floats and IDs travel as GraphQL variables."""
    body = gateway.query('{ catalog_products(ids: ["1", "4", "99"], minPrice: 2.0) { id title } }')
    assert body == {"data": {"catalog_products": [{"id": "4", "title": "Product 4"}]}}


def test_a_mutation_is_sent_once_and_typed(gateway: Gateway, catalog: Catalog) -> None:
    """A mutation document becomes a Mutation field; its result is typed from the selection."""
    body = gateway.query('mutation { catalog_addReview(productId: "3", stars: 5) { id stars } }')
    assert body == {"data": {"catalog_addReview": {"id": "1", "stars": 5}}}
    assert len(catalog.reviews) == 1


def test_a_mutation_is_not_retried_on_a_5xx(gateway: Gateway, catalog: Catalog) -> None:
    """A 503 after a mutation may have been applied: it is reported, not sent again."""
    catalog.failing = True
    before = catalog.requests
    body = gateway.query('mutation { catalog_addReview(productId: "3", stars: 5) { id } }')
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_HTTP_ERROR"
    assert body["errors"][0]["extensions"]["status"] == 503
    assert catalog.requests == before + 1


def test_a_query_is_retried_on_a_5xx(gateway: Gateway, catalog: Catalog) -> None:
    """Queries are idempotent: a 503 is retried up to max_attempts."""
    catalog.failing = True
    before = catalog.requests
    body = gateway.query('{ catalog_product(id: "3") { id } }')
    assert body["errors"][0]["extensions"]["attempts"] == 3
    assert catalog.requests == before + 3


def test_partial_data_is_returned_with_the_upstream_errors(gateway: Gateway) -> None:
    """Data with errors: the data is kept and each upstream error is added at the gateway's path."""
    body = gateway.query('{ catalog_product(id: "13") { id stock } }')
    assert body["data"] == {"catalog_product": {"id": "13", "stock": None}}
    (error,) = body["errors"]
    assert error["message"] == "stock service unavailable for product 13"
    assert error["path"] == ["catalog_product", "stock"]
    assert error["extensions"]["code"] == "UPSTREAM_GRAPHQL_ERROR"
    assert error["extensions"]["upstreamPath"] == ["product", "stock"]


def flat(query: str) -> str:
    return " ".join(query.split())


def test_only_the_selected_fields_are_sent_upstream(gateway: Gateway, catalog: Catalog) -> None:
    """A client selecting `{ id title }` causes an upstream document with only those fields."""
    gateway.query('{ catalog_product(id: "3") { id title } }')
    assert flat(catalog.received[-1]["query"]) == "query Product($id: ID!) { product(id: $id) { id title } }"
    assert catalog.received[-1]["variables"] == {"id": "3"}


def test_an_error_at_a_field_the_client_did_not_select_never_reaches_it(gateway: Gateway) -> None:
    """Product 13's stock fails upstream; a client that did not select it gets its data and no error."""
    body = gateway.query('{ catalog_product(id: "13") { id title } }')
    assert body == {"data": {"catalog_product": {"id": "13", "title": "Product 13"}}}


@pytest.mark.parametrize(
    ("first", "second", "requests"),
    [("{ id }", "{ id }", 1), ("{ id }", "{ title }", 2), ("{ id }", "{ id ...on Product { id } }", 1)],
)
def test_calls_share_a_flight_only_when_they_send_the_same_document(
    gateway: Gateway, catalog: Catalog, first: str, second: str, requests: int
) -> None:
    """Two identical calls in flight at once share one upstream request unless their cut documents differ."""
    before = catalog.requests
    body = gateway.query(f'{{ a: catalog_product(id: "3") {first} b: catalog_product(id: "3") {second} }}')
    assert "errors" not in body
    assert catalog.requests == before + requests


async def test_kept_fields_are_fetched_but_their_errors_stay_with_the_gateway(catalog: Catalog) -> None:
    """Fields the gateway keeps for itself are sent and answered; their errors never reach the client."""
    client = parse('{ catalog_product(id: "13") { id } }').definitions[0]
    assert isinstance(client, OperationDefinitionNode)
    root = client.selection_set.selections[0]
    assert isinstance(root, FieldNode)
    with serve_asgi(catalog.app()) as url:
        module = IntegrationModule(loads(config(url)))
        module.keep_fields("catalog", "product", [("stock",), ("price", "currency")])
        async with module:
            result = await module.call(
                "catalog", "product", {"id": "13"}, selection=ClientSelection([root], {}, {})
            )
    assert flat(catalog.received[-1]["query"]) == (
        "query Product($id: ID!) { product(id: $id) { id price { currency } stock } }"
    )
    assert result == {"id": "13", "price": {"currency": "EUR"}, "stock": None}


def test_errors_without_data_are_an_upstream_graphql_error(gateway: Gateway, catalog: Catalog) -> None:
    """No data at all: UPSTREAM_GRAPHQL_ERROR with the upstream's messages; not retried."""
    before = catalog.requests
    body = gateway.query("{ catalog_broken }")
    assert body["data"] == {"catalog_broken": None}
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "UPSTREAM_GRAPHQL_ERROR"
    assert extensions["upstreamErrors"][0]["message"] == "broken on purpose"
    assert catalog.requests == before + 1


def _circuit(gateway: Gateway) -> str:
    body = gateway.query('{ integrationStats(id: "catalog") { circuitState failures } }')
    return str(body["data"]["integrationStats"][0]["circuitState"])


def test_graphql_errors_do_not_trip_the_breaker_by_default(catalog: Catalog) -> None:
    """A GraphQL error means the service answered: by default it is no breaker failure."""
    for gateway in start(catalog, breaker="{threshold: 2}"):
        for _ in range(4):
            gateway.query("{ catalog_broken }")
        assert _circuit(gateway) == "CLOSED"


def test_listed_graphql_error_codes_trip_the_breaker(catalog: Catalog) -> None:
    """circuit_breaker.graphql_error_codes: "*" makes every errors-only answer a failure."""
    for gateway in start(catalog, breaker='{threshold: 2, graphql_error_codes: ["*"]}'):
        for _ in range(2):
            gateway.query("{ catalog_broken }")
        assert _circuit(gateway) == "OPEN"


def test_a_slow_resolver_times_out(gateway: Gateway, catalog: Catalog) -> None:
    """The operation's timeout bounds each attempt against a slow upstream."""
    catalog.delay = 2.0
    body = gateway.query('{ catalog_slow(id: "1") { id } }')
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"


def test_the_gateway_starts_with_the_upstream_down_and_types_it_later(catalog: Catalog) -> None:
    """Introspection failing at start-up leaves JSON fields; once the upstream is back they are typed."""
    with serve_asgi(catalog.app()) as url:
        catalog.failing = True
        with serve_gateway(config(url)) as gateway:
            assert gateway.http.get("/readyz").status_code == 200
            body = gateway.query('{ __type(name: "Query") { fields { name type { name } } } }')
            types = {f["name"]: f["type"]["name"] for f in body["data"]["__type"]["fields"]}
            assert types["catalog_product"] == "JSON"
            catalog.failing = False
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                body = gateway.query('{ catalog_product(id: "1") { title } }')
                if "errors" not in body:
                    break
                time.sleep(0.2)
            assert body == {"data": {"catalog_product": {"title": "Product 1"}}}
