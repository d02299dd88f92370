"""GraphQL over HTTP as the spec has it, and the request limits, against the served gateway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gateway import Directory, Gateway, serve_gateway
from servers import serve_asgi

GRAPHQL_RESPONSE = "application/graphql-response+json"

CONFIG = """
server: {{max_depth: 4, max_aliases: 20, max_body_bytes: 2048}}
types:
  User: {{id: "ID!", name: String, friend: User}}
integrations:
  users:
    base_url: {url}
    operations:
      getUser: {{path: "/users/{{id}}", params: {{id: "ID!"}}, returns: User}}
      createUser: {{method: POST, path: /users, params: {{name: "String!"}}, returns: User}}
"""


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    directory = Directory()
    with serve_asgi(directory.app) as url, serve_gateway(CONFIG.format(url=url)) as gw:
        yield gw


def test_get_runs_a_query(gateway: Gateway) -> None:
    """A query can be sent as GET with the document in the query string."""
    response = gateway.http.get("/graphql", params={"query": '{ users_getUser(id: "1") { name } }'})
    assert response.status_code == 200
    assert response.json() == {"data": {"users_getUser": {"name": "Ada"}}}


def test_get_refuses_a_mutation_with_405(gateway: Gateway) -> None:
    """Mutations are never run over GET: 405 with Allow: POST."""
    response = gateway.http.get(
        "/graphql", params={"query": 'mutation { users_createUser(name: "x") { id } }'}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "mutations are not allowed" in response.json()["errors"][0]["message"].lower()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        (f"application/json;q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (None, "application/json"),
    ],
)
def test_response_media_type_follows_accept(gateway: Gateway, accept: str | None, expected: str) -> None:
    """The server answers in the media type the client prefers among those it serves."""
    headers = {"accept": accept} if accept else {}
    response = gateway.http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(expected)


def test_unacceptable_accept_is_406(gateway: Gateway) -> None:
    """A client that accepts neither JSON media type gets 406."""
    response = gateway.http.post("/graphql", json={"query": "{ __typename }"}, headers={"accept": "text/csv"})
    assert response.status_code == 406


@pytest.mark.parametrize(("accept", "status"), [(GRAPHQL_RESPONSE, 400), ("application/json", 200)])
def test_validation_error_status_depends_on_media_type(gateway: Gateway, accept: str, status: int) -> None:
    """A document that fails validation is a 400 in graphql-response+json, a 200 in legacy JSON."""
    response = gateway.http.post("/graphql", json={"query": "{ nope }"}, headers={"accept": accept})
    assert response.status_code == status
    body = response.json()
    assert "data" not in body
    assert "nope" in body["errors"][0]["message"]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("accept", "status"), [(GRAPHQL_RESPONSE, 400), ("application/json", 200)])
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ users_getUser(id: ", "GRAPHQL_PARSE_FAILED"),
        ('{ users_getUser(id: "1) { id } }', "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        ("query($id: ID!) { __typename }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ " + " ".join(f"a{n}: __typename" for n in range(60)) + " }", "QUERY_TOO_LARGE"),
    ],
    ids=["syntax", "unterminated-string", "unknown-field", "unused-variable", "too-large"],
)
def test_request_errors_carry_the_codes_clients_know(
    gateway: Gateway, method: str, accept: str, status: int, query: str, code: str
) -> None:
    """Parse and validation errors carry Apollo's codes, over GET and POST, in both media types;
    the limits keep theirs."""
    headers = {"accept": accept}
    if method == "GET":
        response = gateway.http.get("/graphql", params={"query": query}, headers=headers)
    else:
        response = gateway.http.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == status
    body = response.json()
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code] * len(body["errors"])


@pytest.mark.parametrize("variables", [{"id": {"a": 1}}, {}], ids=["wrong-type", "missing"])
def test_variables_of_the_wrong_type_are_a_request_error(gateway: Gateway, variables: dict[str, Any]) -> None:
    """Variables that do not coerce stop the request before execution: 400, no data, BAD_USER_INPUT."""
    response = gateway.http.post(
        "/graphql",
        json={"query": "query($id: ID!) { users_getUser(id: $id) { name } }", "variables": variables},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b'[{"query": "{ __typename }"}]', "application/json", 400, "Batched requests"),
        (b'"just a string"', "application/json", 400, "JSON object"),
        (b'{"query": 42}', "application/json", 400, "'query'"),
        (b'{"query": "{ __typename }", "variables": [1]}', "application/json", 400, "'variables'"),
        (b"query { __typename }", "text/plain", 415, "Content-Type"),
        (b'{"query": "' + b"a" * 4096 + b'"}', "application/json", 413, "limit"),
    ],
)
def test_malformed_requests_get_a_graphql_error_and_a_4xx(
    gateway: Gateway, content: bytes, content_type: str, status: int, message: str
) -> None:
    """Requests that are not well-formed are refused with the right status and an errors payload."""
    response = gateway.http.post("/graphql", content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert message in response.json()["errors"][0]["message"]


def test_unknown_operation_name_is_a_400(gateway: Gateway) -> None:
    """An operationName that names no operation in the document is a request error."""
    response = gateway.http.post("/graphql", json={"query": "query A { __typename }", "operationName": "B"})
    assert response.status_code == 400
    assert "Unknown operation named 'B'" in response.json()["errors"][0]["message"]


def test_other_methods_are_405(gateway: Gateway) -> None:
    """GraphQL is served over GET and POST only."""
    response = gateway.http.put("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


def test_query_deeper_than_the_limit_is_refused(gateway: Gateway) -> None:
    """max_depth counts nested selections; deeper documents fail validation."""
    body = gateway.query('{ users_getUser(id: "1") { friend { friend { friend { friend { name } } } } } }')
    assert "data" not in body
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


def test_alias_bomb_is_refused(gateway: Gateway) -> None:
    """More aliased fields than max_aliases is refused before any upstream call."""
    aliases = " ".join(f'a{n}: users_getUser(id: "1") {{ id }}' for n in range(15))
    body = gateway.query(f"{{ {aliases} }}")
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_LARGE"


def test_fragment_bomb_is_refused(gateway: Gateway) -> None:
    """Fragments that each spread the previous one twice are counted expanded."""
    fragments = ["fragment F0 on User { id name }"]
    fragments += [f"fragment F{n} on User {{ ...F{n - 1} friend {{ ...F{n - 1} }} }}" for n in range(1, 4)]
    body = gateway.query('{ users_getUser(id: "1") { ...F3 } } ' + " ".join(fragments))
    assert "QUERY_TOO_LARGE" in [e["extensions"].get("code") for e in body["errors"]]


def test_fragment_cycle_is_a_validation_error(gateway: Gateway) -> None:
    """A fragment that spreads itself is refused, and the server keeps serving."""
    body = gateway.query('{ users_getUser(id: "1") { ...A } } fragment A on User { friend { ...A } }')
    assert "cannot spread fragment" in body["errors"][0]["message"].lower()
    assert gateway.query("{ __typename }") == {"data": {"__typename": "Query"}}


def test_response_carries_a_request_id(gateway: Gateway) -> None:
    """The client's X-Request-Id is echoed; one is generated when it sent none."""
    given = gateway.http.post("/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": "abc-1"})
    assert given.headers["x-request-id"] == "abc-1"
    generated = gateway.http.post("/graphql", json={"query": "{ __typename }"})
    assert len(generated.headers["x-request-id"]) == 32


LOCKED_DOWN = """
server: {{graphiql: false, introspection: false, cors_origins: ["https://app.example.com"]}}
integrations:
  users:
    base_url: {url}
    operations:
      getUser: {{path: "/users/{{id}}", params: {{id: "ID!"}}}}
"""


@pytest.fixture(scope="module")
def locked_down() -> Iterator[Gateway]:
    directory = Directory()
    with serve_asgi(directory.app) as url, serve_gateway(LOCKED_DOWN.format(url=url)) as gw:
        yield gw


def test_introspection_can_be_turned_off(locked_down: Gateway) -> None:
    """server.introspection: false refuses __schema queries; ordinary queries still run."""
    body = locked_down.query("{ __schema { queryType { name } } }")
    assert "data" not in body
    assert "introspection" in body["errors"][0]["message"].lower()
    assert locked_down.query('{ users_getUser(id: "1") }')["data"]["users_getUser"]["name"] == "Ada"


def test_graphiql_can_be_turned_off(locked_down: Gateway) -> None:
    """server.graphiql: false serves no page: a browser asking for HTML only gets 406 and a JSON error."""
    response = locked_down.http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 406
    assert response.headers["content-type"].startswith("application/json")
    assert "<html" not in response.text.lower()


@pytest.mark.parametrize(
    ("origin", "allowed"), [("https://app.example.com", True), ("https://evil.example", False)]
)
def test_cors_allows_only_the_configured_origins(locked_down: Gateway, origin: str, allowed: bool) -> None:
    """A preflight from a listed origin is allowed; any other origin gets no CORS grant."""
    response = locked_down.http.options(
        "/graphql",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert (response.headers.get("access-control-allow-origin") == origin) is allowed


def test_aliased_introspection_counts_against_the_field_limit(gateway: Gateway) -> None:
    """Introspection weighs less than operation fields, but hundreds of aliased __schema do not pass."""
    aliases = " ".join(f"s{n}: __schema {{ types {{ name fields {{ name }} }} }}" for n in range(40))
    body = gateway.query(f"{{ {aliases} }}")
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_LARGE"


def test_unknown_fragment_is_named_in_the_error(gateway: Gateway) -> None:
    """Spreading a fragment that is not defined says which one."""
    body = gateway.query('{ users_getUser(id: "1") { ...Missing } }')
    assert [e["message"] for e in body["errors"]] == ["Unknown fragment 'Missing'."]
