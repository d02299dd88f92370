"""What each benchmark scenario sends to each target.

The two gateways get the same query with their own field names (aliased to the same response keys, so
their answers can be compared byte for byte); the direct target gets the equivalent upstream call where
one exists. ``@ID0@``..``@ID4@`` are filled by load.lua (and by the sample check) with ids that move on
every request: Hive Gateway merges identical in-flight upstream calls, and varying ids keep both
gateways doing the same work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Literal

TargetKind = Literal["direct", "aggregator", "hive"]

USER_FIELDS = "id name email address { street city zip country } tags"
ORDER_FIELDS = "id userId status total { amount currency } items { productId quantity }"
PRODUCT_FIELDS = "id title description price { amount currency } inStock tags"
FANOUT_DELAY_MS = 20


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    # True where every answer carries a GraphQL error by design (the failing upstream).
    errors_expected: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("rest", "one REST call (a user with a nested address)"),
    Scenario("graphql", "one GraphQL call (a product with a price)"),
    Scenario("grpc", "one gRPC call (an item's stock: an enum, an int64, a Timestamp)"),
    Scenario("fanout", "fan-out: five REST calls in one query (three users, two orders)"),
    Scenario("fanout20", f"the same fan-out, every upstream call taking {FANOUT_DELAY_MS} ms"),
    Scenario("breaker", "a failing upstream (always 503) behind an open breaker", errors_expected=True),
    Scenario("trivial", "a trivial query ({ __typename }) on the same server"),
    Scenario("posts", "20 posts, one REST call (the baseline of join)"),
    Scenario("join", "20 posts with their authors: Post.author joined, batched into one more call"),
)


@dataclass(frozen=True)
class Request:
    """One HTTP request with id placeholders; ``note`` says what it stands for when not obvious."""

    method: Literal["GET", "POST"]
    path: str
    body: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Fields:
    """A gateway's root field names for the upstream operations, and the GraphQL type of their ids."""

    user: str
    order: str
    posts: str
    product: str
    broken: str
    rest_id: str
    # The gRPC GetItem field, and how its request and fields are spelled (Mesh keeps proto names).
    item: str
    item_args: str
    item_fields: str


FIELDS: dict[TargetKind, Fields] = {
    "aggregator": Fields(
        user="accounts_getUser",
        order="accounts_getOrder",
        posts="accounts_listPosts",
        product="catalog_product",
        broken="broken_getUser",
        rest_id="ID!",
        item="warehouse_getItem",
        item_args="productId: $id",
        item_fields="productId quantity reserved location unitWeightGrams",
    ),
    # Mesh names REST fields by operationId and types path ids as String!.
    "hive": Fields(
        user="getUser",
        order="getOrder",
        posts="listPosts",
        product="product",
        broken="getBroken",
        rest_id="String!",
        item="inventory_v1_Inventory_GetItem",
        item_args="input: {product_id: $id}",
        item_fields="productId: product_id quantity reserved location unitWeightGrams: unit_weight_grams",
    ),
}


def _graphql(query: str, variables: dict[str, str] | None = None) -> Request:
    payload: dict[str, object] = {"query": query}
    if variables:
        payload["variables"] = variables
    return Request("POST", "/graphql", json.dumps(payload, separators=(",", ":")))


def _product_query(field: str) -> str:
    return f"query Product($id: ID!) {{ product: {field}(id: $id) {{ {PRODUCT_FIELDS} }} }}"


def _fanout(f: Fields, delay_ms: int | None) -> Request:
    delay = f", delayMs: {delay_ms}" if delay_ms is not None else ""
    t = f.rest_id
    query = (
        f"query Fanout($a: {t}, $b: {t}, $c: {t}, $d: {t}, $e: {t}) {{"
        f" u1: {f.user}(id: $a{delay}) {{ {USER_FIELDS} }}"
        f" u2: {f.user}(id: $b{delay}) {{ {USER_FIELDS} }}"
        f" u3: {f.user}(id: $c{delay}) {{ {USER_FIELDS} }}"
        f" o1: {f.order}(id: $d{delay}) {{ {ORDER_FIELDS} }}"
        f" o2: {f.order}(id: $e{delay}) {{ {ORDER_FIELDS} }}"
        " }"
    )
    ids = {name: f"@ID{k}@" for k, name in enumerate("abcde")}
    return _graphql(query, ids)


def _gateway_request(f: Fields, scenario: str) -> Request:
    t = f.rest_id
    if scenario == "rest":
        return _graphql(
            f"query User($id: {t}) {{ user: {f.user}(id: $id) {{ {USER_FIELDS} }} }}", {"id": "@ID0@"}
        )
    if scenario == "graphql":
        return _graphql(_product_query(f.product), {"id": "@ID0@"})
    if scenario == "grpc":
        query = f"query Item($id: String) {{ item: {f.item}({f.item_args}) {{ {f.item_fields} }} }}"
        return _graphql(query, {"id": "@ID0@"})
    if scenario == "fanout":
        return _fanout(f, None)
    if scenario == "fanout20":
        return _fanout(f, FANOUT_DELAY_MS)
    if scenario == "breaker":
        return _graphql(
            f"query Broken($id: {t}) {{ user: {f.broken}(id: $id) {{ id name }} }}", {"id": "@ID0@"}
        )
    if scenario == "trivial":
        return _graphql("{ __typename }")
    if scenario in ("posts", "join"):
        author = " author { id name email }" if scenario == "join" else ""
        query = f"query Posts($s: Int) {{ posts: {f.posts}(start: $s) {{ id title userId{author} }} }}"
        request = _graphql(query, {"s": "@ID0@"})
        # An Int variable: the id goes in unquoted.
        return replace(request, body=(request.body or "").replace('"@ID0@"', "@ID0@"))
    raise ValueError(f"unknown scenario {scenario!r}")


def request_for(
    target: TargetKind, scenario: str, rest_base: str, graphql_base: str
) -> tuple[str, Request] | None:
    """The base URL and request of ``scenario`` on ``target``; None where it has no equivalent."""
    if target == "hive" and scenario == "breaker":
        # Hive Gateway has no circuit breaker (Hive Router, its Rust sibling, does).
        return "", replace(
            _gateway_request(FIELDS[target], scenario), note="no breaker: every call reaches the upstream"
        )
    if target != "direct":
        return "", _gateway_request(FIELDS[target], scenario)
    if scenario == "rest":
        return rest_base, Request("GET", "/users/@ID0@")
    if scenario == "graphql":
        return graphql_base, _graphql(_product_query("product"), {"id": "@ID0@"})
    if scenario == "fanout20":
        return rest_base, Request("GET", f"/users/@ID0@?delayMs={FANOUT_DELAY_MS}", note="one call")
    return None


def fill(template: str, base: int) -> str:
    """The template with ``@IDk@`` replaced by ``base + k``, as load.lua does."""
    for k in range(5):
        template = template.replace(f"@ID{k}@", str(base + k))
    return template
