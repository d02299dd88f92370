"""Joined fields end to end: the gateway served on loopback, real REST and GraphQL upstreams, and the
upstream calls counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway import Gateway, serve_gateway
from graphql_upstream_app import Catalog
from join_upstreams import USERS, Blog, posts
from servers import serve_asgi

from aggregator.config import loads
from aggregator.errors import ConfigError
from aggregator.module import IntegrationModule
from aggregator.schema import build_schema

TYPES = """
types:
  User:
    id: ID!
    name: String
    posts:
      type: "[Post]"
      resolve: {{operation: blog.userPosts, args: {{id: $parent.id}}}}
    products:
      type: "[Product]"
      resolve: {{operation: catalog.product, args: {{id: $parent.id}}}}
      batch: {{operation: catalog.products, arg: ids, key: id}}
  Comment: {{id: ID!, text: String}}
  Post:
    id: ID!
    title: String
    userId: ID
    sku: ID
    author:
      type: User
      resolve: {{operation: people.getUser, args: {{id: $parent.userId}}}}
      batch: {{operation: people.getUsers, arg: ids, key: id, max_size: {max_size}}}
    writer:
      type: User
      resolve: {{operation: people.getUser, args: {{id: $parent.userId}}}}
    comments:
      type: "[Comment!]"
      args: {{first: Int}}
      resolve: {{operation: blog.comments, args: {{id: $parent.id, limit: $args.first}}}}
    product:
      type: Product
      resolve: {{operation: catalog.product, args: {{id: $parent.sku}}}}
      batch: {{operation: catalog.products, arg: ids, key: id}}
  Product:
    id: ID!
    title: String
    stock: Int
    owner:
      type: User
      resolve: {{operation: people.getUser, args: {{id: $parent.id}}}}
      batch: {{operation: people.getUsers, arg: ids, key: id}}
"""
INTEGRATIONS = """
integrations:
  blog:
    base_url: {blog}
    operations:
      posts: {{path: /posts, returns: "[Post]"}}
      userPosts: {{path: "/users/{{id}}/posts", params: {{id: ID!}}, returns: "[Post]"}}
      comments: {{path: "/posts/{{id}}/comments", params: {{id: ID!, limit: Int}}, returns: "[Comment]"}}
  people:
    base_url: {blog}
    circuit_breaker: {{consecutive_failures: 2, reset_after: 60s}}
    operations:
      getUser: {{path: "/users/{{id}}", params: {{id: ID!}}, returns: User}}
      getUsers: {{path: /users, params: {{ids: "[ID!]!"}}, returns: "[User]"}}
  catalog:
    type: graphql
    base_url: {catalog}
    operations:
      product:
        document: "query P($id: ID!) {{ product(id: $id) {{ title }} }}"
        params: {{id: ID!}}
        returns: Product
      products:
        document: "query Ps($ids: [ID!]!) {{ products(ids: $ids) {{ title stock }} }}"
        params: {{ids: "[ID!]!"}}
        returns: "[Product]"
"""


@pytest.fixture
def blog() -> Blog:
    return Blog()


@pytest.fixture
def catalog() -> Catalog:
    return Catalog()


def _gateway(blog: Blog, catalog: Catalog, *, max_size: int = 100) -> Iterator[Gateway]:
    with serve_asgi(blog.app()) as blog_url, serve_asgi(catalog.app()) as catalog_url:
        config = TYPES.format(max_size=max_size) + INTEGRATIONS.format(blog=blog_url, catalog=catalog_url)
        with serve_gateway(config) as gateway:
            yield gateway


@pytest.fixture
def gw(blog: Blog, catalog: Catalog) -> Iterator[Gateway]:
    yield from _gateway(blog, catalog)


def _queries(catalog: Catalog) -> list[str]:
    """The documents the catalog was sent, its introspection at start left out."""
    return [body["query"] for body in catalog.received if "__schema" not in body["query"]]


def _data(body: dict[str, Any]) -> Any:
    assert "errors" not in body, body["errors"]
    return body["data"]


def test_twenty_posts_with_their_authors_take_two_upstream_calls(gw: Gateway, blog: Blog) -> None:
    """The benchmark's request: the posts in one call, their twenty authors in one batch."""
    data = _data(gw.query("{ blog_posts { title author { name } } }"))
    assert [post["author"]["name"] for post in data["blog_posts"]] == [f"User {n}" for n in range(1, 21)]
    assert sum(blog.calls.values()) == 2
    assert blog.batches == [[str(n) for n in range(1, 21)]]


def test_a_batch_sends_each_key_once_and_a_missing_key_gives_null(catalog: Catalog) -> None:
    """Duplicate keys go once; a parent whose key the batch does not answer gets null, not an error."""
    blog = Blog([*posts(6, authors=2), {"id": "99", "title": "orphan", "userId": "404"}])
    for gateway in _gateway(blog, catalog):
        data = _data(gateway.query("{ blog_posts { id author { id } } }"))
    authors = [post["author"] for post in data["blog_posts"]]
    assert authors == [{"id": "1"}, {"id": "2"}] * 3 + [None]
    assert blog.batches == [["1", "2", "404"]]


def test_a_batch_larger_than_max_size_is_split(catalog: Catalog) -> None:
    """Twenty keys with max_size 7: three calls of 7, 7 and 6 keys."""
    blog = Blog()
    for gateway in _gateway(blog, catalog, max_size=7):
        data = _data(gateway.query("{ blog_posts { author { id } } }"))
    assert [post["author"]["id"] for post in data["blog_posts"]] == [str(n) for n in range(1, 21)]
    assert sorted(len(batch) for batch in blog.batches) == [6, 7, 7]
    assert sorted(key for batch in blog.batches for key in batch) == sorted(str(n) for n in range(1, 21))


def test_a_one_to_one_join_without_batch_makes_each_distinct_call_once(catalog: Catalog) -> None:
    """Without batch:, one call per distinct key: identical calls of one request are made once."""
    blog = Blog(posts(6, authors=2))
    for gateway in _gateway(blog, catalog):
        data = _data(gateway.query("{ blog_posts { writer { name } } }"))
    assert [post["writer"]["name"] for post in data["blog_posts"]] == ["User 1", "User 2"] * 3
    assert blog.calls["user"] == 2


def test_a_one_to_many_join_passes_the_fields_own_arguments(catalog: Catalog) -> None:
    """A list field per parent, with the client's argument given to the joined call."""
    blog = Blog(posts(2))
    for gateway in _gateway(blog, catalog):
        data = _data(gateway.query("{ blog_posts { id comments(first: 2) { id } } }"))
    assert data["blog_posts"] == [
        {"id": "1", "comments": [{"id": "1.1"}, {"id": "1.2"}]},
        {"id": "2", "comments": [{"id": "2.1"}, {"id": "2.2"}]},
    ]
    assert blog.calls["comments"] == 2


@pytest.mark.parametrize(
    "query",
    [
        '{ integrationStats(id: "people") { calls } blog_posts { author { name } } }',
        '{ blog_posts { author { name } } integrationStats(id: "people") { calls } }',
    ],
)
def test_integration_stats_in_the_same_request_counts_its_joined_calls(gw: Gateway, query: str) -> None:
    """integrationStats waits for the joined calls its siblings make, wherever it stands."""
    body = _data(gw.query(query))
    assert body["integrationStats"] == [{"calls": 1}]


def test_a_failed_join_nulls_only_the_joined_field(gw: Gateway, blog: Blog) -> None:
    """The batch fails: every author is null with its error at its path, the posts are all there."""
    blog.failing.add("users")
    body = gw.query("{ blog_posts { id title author { name } } }")
    assert [post["title"] for post in body["data"]["blog_posts"]] == [f"Post {n}" for n in range(1, 21)]
    assert all(post["author"] is None for post in body["data"]["blog_posts"])
    assert [error["path"] for error in body["errors"]] == [["blog_posts", n, "author"] for n in range(20)]
    assert {error["extensions"]["code"] for error in body["errors"]} == {"UPSTREAM_HTTP_ERROR"}


def test_an_open_breaker_on_the_joined_integration_refuses_the_join_not_the_parents(
    gw: Gateway, blog: Blog
) -> None:
    """Two failed batches open people's breaker; the third request's join is refused without a call."""
    blog.failing.add("users")
    for _ in range(2):
        gw.query("{ blog_posts { author { name } } }")
    assert blog.calls["users"] == 2
    body = gw.query("{ blog_posts { id author { name } } }")
    assert blog.calls["users"] == 2
    assert [post["id"] for post in body["data"]["blog_posts"]] == [str(n) for n in range(1, 21)]
    assert {error["extensions"]["code"] for error in body["errors"]} == {"CIRCUIT_OPEN"}
    assert blog.calls["posts"] == 3


def test_a_rest_parent_joins_a_graphql_upstream_that_sends_the_key_it_was_not_asked_for(
    gw: Gateway, blog: Blog, catalog: Catalog
) -> None:
    """REST -> GraphQL: one batched GraphQL call; its document selects the key the join matches by."""
    data = _data(gw.query("{ blog_posts { id product { title } } }"))
    titles = [post["product"] and post["product"]["title"] for post in data["blog_posts"]]
    assert titles == [f"Product {n}" for n in range(1, 20)] + [None]
    sent = _queries(catalog)
    assert len(sent) == 1
    assert "id" in sent[0]


def test_a_graphql_parent_joins_a_rest_upstream_with_the_key_the_client_left_out(
    gw: Gateway, blog: Blog, catalog: Catalog
) -> None:
    """GraphQL -> REST: the products' ids are fetched although not selected, and batched to one call."""
    data = _data(gw.query('{ catalog_products(ids: ["1", "2", "3"]) { title owner { name } } }'))
    assert data["catalog_products"] == [
        {"title": f"Product {n}", "owner": {"name": f"User {n}"}} for n in range(1, 4)
    ]
    assert (len(_queries(catalog)), blog.calls["users"]) == (1, 1)


def test_joins_nest_and_cycle_level_by_level(gw: Gateway, blog: Blog) -> None:
    """Post.author -> User.posts -> Post.author: one batch per level, keys already fetched not again."""
    query = "{ blog_posts { author { posts { title author { name } } } } }"
    data = _data(gw.query(query))
    first = data["blog_posts"][0]["author"]
    assert first == {"posts": [{"title": "Post 1", "author": {"name": "User 1"}}]}
    assert blog.batches == [[str(n) for n in range(1, 21)]]
    assert blog.calls["user_posts"] == 20


def test_a_request_nesting_a_join_deeper_than_max_depth_is_refused_before_any_call(
    gw: Gateway, blog: Blog
) -> None:
    """Post.author four times on one path, max_depth 3: a validation error, nothing called."""
    deep = "author { posts { " * 4 + "id" + " } }" * 4
    body = gw.query(f"{{ blog_posts {{ {deep} }} }}")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "Post.author" in body["errors"][0]["message"]
    assert sum(blog.calls.values()) == 0


PETSTORE = Path(__file__).resolve().parent / "openapi"
EXTEND_PET = """
integrations:
  petstore:
    base_url: http://127.0.0.1:9/v1
    openapi: petstore.yaml
extend:
  Pet:
    twin:
      type: Pet
      resolve: {{operation: petstore.showPetById, args: {{petId: $parent.{key}}}}}
"""


def test_an_openapi_imported_type_gains_a_joined_field_under_extend() -> None:
    """extend: of a type the OpenAPI import made: checked at load and built into the schema."""
    config = loads(EXTEND_PET.format(key="id"), base_dir=PETSTORE)
    join = config.joins["Pet"]["twin"]
    assert (join.integration, join.operation) == ("petstore", "showPetById")
    sdl = build_schema(config, IntegrationModule(config)).as_str()
    assert "twin: Pet" in sdl


def test_a_parent_path_into_an_openapi_imported_type_is_checked_at_its_line() -> None:
    """$parent.<key> must be a key of the imported type: the problem names the line and the keys."""
    with pytest.raises(ConfigError) as caught:
        loads(EXTEND_PET.format(key="petId"), "gateway.yaml", base_dir=PETSTORE)
    assert [str(p) for p in caught.value.problems] == [
        "gateway.yaml:10: extend.Pet.twin.resolve.args.petId: $parent.petId: Pet has no field read from"
        " the key 'petId' (paths are upstream JSON keys: id, name, tag)"
    ]


# A root field only graphql-core runs: asked for with it, a document gets no compiled plan.
@pytest.mark.parametrize(
    "extra", ["", ' integrationStats(id: "blog") { __typename }'], ids=["plan", "graphql-core"]
)
def test_a_batch_item_error_of_a_graphql_upstream_stands_at_the_parent_that_asked_for_it(
    gw: Gateway, catalog: Catalog, extra: str
) -> None:
    """Product 13's stock fails inside the one batched call: its error stands at post 13's product,
    whose other fields are there, and every other post's product is whole (either executor)."""
    body = gw.query(f"{{ blog_posts {{ id product {{ title stock }} }}{extra} }}")
    (error,) = body["errors"]
    assert error["path"] == ["blog_posts", 12, "product", "stock"]
    assert (error["extensions"]["code"], error["extensions"]["operation"]) == (
        "UPSTREAM_GRAPHQL_ERROR",
        "products",
    )
    products = [post["product"] for post in body["data"]["blog_posts"]]
    assert products[12] == {"title": "Product 13", "stock": None}
    assert products[:12] == [{"title": f"Product {n}", "stock": 7} for n in range(1, 13)]
    assert len(_queries(catalog)) == 1


def test_a_batch_item_error_under_a_list_join_stands_at_the_item_in_the_parents_list(gw: Gateway) -> None:
    """A list join's matched items are the parent's list: product 13's error stands at its index there."""
    body = gw.query("{ blog_posts { author { id products { id stock } } } }")
    (error,) = body["errors"]
    assert error["path"] == ["blog_posts", 12, "author", "products", 0, "stock"]
    assert body["data"]["blog_posts"][12]["author"]["products"] == [{"id": "13", "stock": None}]


@pytest.mark.parametrize(
    ("extra", "batched"),
    [("", ["1", "3"]), (' integrationStats(id: "blog") { __typename }', ["1", "2", "3"])],
    ids=["plan", "graphql-core"],
)
def test_a_parent_nulled_by_its_non_null_field_has_no_join_error(extra: str, batched: list[str]) -> None:
    """Post 2 has no id (ID!): it is null with that one error, and the failed batch's errors stand at
    the other posts only. A plan leaves post 2's key out of the batch; graphql-core has already called
    the joined field selected before `id` when `id` fails."""
    blog = Blog([{**post, "id": None} if post["id"] == "2" else post for post in posts(3)])
    blog.failing.add("users")
    for gateway in _gateway(blog, Catalog()):
        body = gateway.query(f"{{ blog_posts {{ author {{ name }} id }}{extra} }}")
    assert body["data"]["blog_posts"][1] is None
    assert sorted(error["path"] for error in body["errors"]) == [
        ["blog_posts", 0, "author"],
        ["blog_posts", 1, "id"],
        ["blog_posts", 2, "author"],
    ]
    assert blog.batches == [batched]


@pytest.mark.parametrize(
    "extra", ["", ' integrationStats(id: "blog") { __typename }'], ids=["plan", "graphql-core"]
)
@pytest.mark.parametrize(
    ("field", "operation"), [("author", "getUsers"), ("writer", "getUser")], ids=["batched", "single"]
)
def test_a_wrong_value_in_a_joined_answer_names_the_operation_that_answered_it(
    monkeypatch: pytest.MonkeyPatch, extra: str, field: str, operation: str
) -> None:
    """User 2's name is an object: the error at post 2's joined user names the people operation that
    answered it (the batch, or the single call), not blog.posts under whose root field it stands."""
    monkeypatch.setitem(USERS, "2", {"id": "2", "name": {"first": "Ada"}})
    for gateway in _gateway(Blog(posts(3)), Catalog()):
        body = gateway.query(f"{{ blog_posts {{ id {field} {{ name }} }}{extra} }}")
    (error,) = body["errors"]
    assert error["path"] == ["blog_posts", 1, field, "name"]
    assert error["extensions"] == {
        "code": "UPSTREAM_BAD_RESPONSE",
        "integration": "people",
        "operation": operation,
    }
    assert error["message"].startswith(
        f"people.{operation}: the answer does not fit the schema at blog_posts.1.{field}"
    )
