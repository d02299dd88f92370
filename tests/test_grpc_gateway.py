"""A gRPC integration served by the gateway over HTTP, beside REST and GraphQL integrations."""

from __future__ import annotations

import textwrap
from typing import Any

from gateway import Directory, serve_gateway
from graphql_upstream_app import Catalog
from grpc_servers import PROTOS, GrpcServer, services
from servers import serve_asgi

SERVICES = services("inventory/v1/inventory.proto")


async def get_item(request: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"item": {"itemId": request["itemId"], "name": "Lamp", "quantity": 3, "price": {"units": "12"}}}


async def reserve(request: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"reservationId": "r-9", "item": {"itemId": request["itemId"], "quantity": request["quantity"]}}


HANDLERS = {"/inventory.v1.Inventory/GetItem": get_item, "/inventory.v1.Inventory/Reserve": reserve}

CONFIG = textwrap.dedent(
    """\
    types:
      User: {{id: "ID!", name: String}}
    integrations:
      users:
        base_url: {users}
        operations:
          getUser: {{path: "/users/{{id}}", params: {{id: "ID!"}}, returns: User}}
      catalog:
        type: graphql
        base_url: {catalog}/graphql
        operations:
          product:
            document: "query P($id: ID!) {{ product(id: $id) {{ id title }} }}"
            params: {{id: "ID!"}}
      inventory:
        type: grpc
        base_url: {inventory}
        {source}
        operations:
          getItem: {{rpc: inventory.v1.Inventory/GetItem, select: item}}
          reserve: {{rpc: inventory.v1.Inventory/Reserve}}
    """
)
PROTO_SOURCE = "proto: inventory/v1/inventory.proto\n    proto_paths: [.]"


def test_a_grpc_field_answers_beside_rest_and_graphql_fields_in_one_request() -> None:
    """One query reads a user (REST), a product (GraphQL) and an item (gRPC), each typed."""
    directory, catalog = Directory(), Catalog()
    grpc_server = GrpcServer(SERVICES, HANDLERS)
    with (
        serve_asgi(directory.app) as users,
        serve_asgi(catalog.app()) as catalog_url,
        grpc_server.running(),
    ):
        text = CONFIG.format(users=users, catalog=catalog_url, inventory=grpc_server.url, source=PROTO_SOURCE)
        with serve_gateway(text, base_dir=PROTOS) as gateway:
            body = gateway.query(
                '{ users_getUser(id: "1") { id } catalog_product(id: "2") { id title } '
                'inventory_getItem(itemId: "lamp") { itemId name quantity price { units } } }',
                headers={"X-Request-Id": "one-request"},
            )
    assert "errors" not in body, body
    assert body["data"]["users_getUser"] == {"id": "1"}
    assert body["data"]["catalog_product"] == {"id": "2", "title": "Product 2"}
    assert body["data"]["inventory_getItem"] == {
        "itemId": "lamp",
        "name": "Lamp",
        "quantity": 3,
        "price": {"units": 12},
    }
    assert grpc_server.received[0].metadata["x-request-id"] == "one-request"


def test_a_grpc_method_without_side_effects_is_a_query_and_another_a_mutation() -> None:
    """Reserve (no idempotency level) is a mutation; its input arguments reach the server."""
    grpc_server = GrpcServer(SERVICES, HANDLERS)
    with (
        serve_asgi(Directory().app) as users,
        serve_asgi(Catalog().app()) as catalog_url,
        grpc_server.running(),
    ):
        text = CONFIG.format(users=users, catalog=catalog_url, inventory=grpc_server.url, source=PROTO_SOURCE)
        with serve_gateway(text, base_dir=PROTOS) as gateway:
            body = gateway.query(
                'mutation { inventory_reserve(itemId: "lamp", quantity: 2) '
                "{ reservationId item { quantity } } }"
            )
    assert body == {"data": {"inventory_reserve": {"reservationId": "r-9", "item": {"quantity": 2}}}}


def test_a_reflected_service_is_typed_when_the_gateway_starts() -> None:
    """With reflection: true the gateway's schema has the typed field once it is ready."""
    grpc_server = GrpcServer(SERVICES, HANDLERS, reflection_services=("inventory.v1.Inventory",))
    with (
        serve_asgi(Directory().app) as users,
        serve_asgi(Catalog().app()) as catalog_url,
        grpc_server.running(),
    ):
        text = CONFIG.format(
            users=users, catalog=catalog_url, inventory=grpc_server.url, source="reflection: true"
        )
        with serve_gateway(text) as gateway:
            body = gateway.query('{ inventory_getItem(itemId: "x") { itemId quantity } }')
    assert body == {"data": {"inventory_getItem": {"itemId": "x", "quantity": 3}}}
