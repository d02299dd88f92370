"""The gateway end to end: a real server on loopback in front of real upstreams, queried over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gateway import Directory, Gateway, serve_gateway
from servers import closed_port_url, serve_asgi

CONFIG = """
types:
  User: {{id: "ID!", name: String, email: String, address: Address, tags: "[String!]"}}
  Address: {{city: String, zip: String}}
  Search: {{users: "[User!]!", active: String, tags: "[String!]"}}
integrations:
  users:
    base_url: {users}
    retry: {{max_attempts: 2, initial_wait: 10ms, max_wait: 20ms}}
    circuit_breaker: {{threshold: 3, failure_rate: 0.5, window: 60s, reset_after: {reset_after}}}
    operations:
      getUser:
        path: /users/{{id}}
        params: {{id: "ID!"}}
        returns: User
      searchUsers:
        path: /users
        params:
          tag: "[String!]"
          active: Boolean
          trace: {{type: String, in: header}}
        returns: Search
      createUser:
        method: POST
        path: /users
        params: {{name: "String!", email: String}}
        returns: User
      importUser:
        method: POST
        path: /users
        params: {{user: {{type: "User!", in: body}}}}
        returns: User
      rendezvous:
        path: /rendezvous/{{n}}
        params: {{n: "Int!"}}
  down:
    base_url: {down}
    timeout: 2s
    operations:
      ping: {{path: /ping}}
"""


@pytest.fixture
def directory() -> Directory:
    return Directory()


def start(directory: Directory, *, reset_after: str = "30s") -> Iterator[Gateway]:
    with (
        serve_asgi(directory.app) as users_url,
        serve_gateway(CONFIG.format(users=users_url, down=closed_port_url(), reset_after=reset_after)) as gw,
    ):
        yield gw


@pytest.fixture
def gateway(directory: Directory) -> Iterator[Gateway]:
    yield from start(directory)


def test_typed_selection_returns_only_the_declared_fields_selected(gateway: Gateway) -> None:
    """A named type is a real GraphQL type: the client gets exactly the sub-fields it selected."""
    body = gateway.query('{ users_getUser(id: "1") { name address { city } tags } }')
    assert body == {
        "data": {"users_getUser": {"name": "Ada", "address": {"city": "London"}, "tags": ["admin"]}}
    }


def test_undeclared_upstream_keys_are_not_exposed(gateway: Gateway) -> None:
    """A key the upstream sends but the type does not declare cannot be queried."""
    body = gateway.query('{ users_getUser(id: "1") { internal_note } }')
    assert "data" not in body
    assert "internal_note" in body["errors"][0]["message"]


def test_declared_field_the_upstream_omits_is_null(gateway: Gateway) -> None:
    """Grace has no email key upstream: the field is null, not an error."""
    body = gateway.query('{ users_getUser(id: "2") { name email } }')
    assert body == {"data": {"users_getUser": {"name": "Grace", "email": None}}}


def test_query_list_boolean_and_header_arguments_reach_the_upstream(
    gateway: Gateway, directory: Directory
) -> None:
    """Lists become repeated query keys, booleans true/false, header params headers."""
    body = gateway.query(
        "query($t: [String!]) {"
        ' users_searchUsers(tag: $t, active: false, trace: "abc") { users { id } active tags } }',
        {"t": ["admin", "ops"]},
    )
    assert body["data"]["users_searchUsers"] == {
        "users": [{"id": "1"}],
        "active": "false",
        "tags": ["admin", "ops"],
    }
    sent = directory.requests[-1]
    assert sent["query"] == [("tag", "admin"), ("tag", "ops"), ("active", "false")]
    assert sent["headers"]["trace"] == "abc"


def test_mutation_sends_a_json_body_once(gateway: Gateway, directory: Directory) -> None:
    """A POST operation is a Mutation field whose params form the JSON body."""
    body = gateway.query('mutation { users_createUser(name: "Linus", email: "l@example.com") { id name } }')
    assert body == {"data": {"users_createUser": {"id": "101", "name": "Linus"}}}
    assert directory.created == [{"name": "Linus", "email": "l@example.com"}]


def test_one_upstream_down_leaves_the_rest_of_the_request_resolved(gateway: Gateway) -> None:
    """The failing field is null with a located error; its sibling still has data."""
    body = gateway.query('{ users_getUser(id: "1") { name } down_ping }')
    assert body["data"] == {"users_getUser": {"name": "Ada"}, "down_ping": None}
    (error,) = body["errors"]
    assert error["path"] == ["down_ping"]
    assert error["extensions"] == {
        "code": "UPSTREAM_UNAVAILABLE",
        "integration": "down",
        "operation": "ping",
        "attempts": 1,
    }


def test_http_error_extensions_carry_the_status_and_attempts(gateway: Gateway, directory: Directory) -> None:
    """A 500 is retried (GET is idempotent) and reported with its status and the attempts made."""
    directory.failing = True
    body = gateway.query('{ users_getUser(id: "1") { name } }')
    assert body["data"] == {"users_getUser": None}
    extensions = body["errors"][0]["extensions"]
    assert extensions == {
        "code": "UPSTREAM_HTTP_ERROR",
        "integration": "users",
        "operation": "getUser",
        "attempts": 2,
        "status": 500,
    }


def test_a_404_is_not_retried(gateway: Gateway, directory: Directory) -> None:
    """A 4xx means the upstream is healthy and the answer is final."""
    body = gateway.query('{ users_getUser(id: "404") { name } }')
    assert body["errors"][0]["extensions"]["status"] == 404
    assert body["errors"][0]["extensions"]["attempts"] == 1
    assert len(directory.requests) == 1


def test_sibling_fields_call_their_upstreams_concurrently(gateway: Gateway, directory: Directory) -> None:
    """Five sibling fields are in flight at the upstream at the same time, not one after another."""
    directory.expected = 5
    fields = " ".join(f"r{n}: users_rendezvous(n: {n})" for n in range(5))
    body = gateway.query(f"{{ {fields} }}")
    assert "errors" not in body
    assert directory.max_in_flight == 5


def _stats(gateway: Gateway, integration: str) -> dict[str, object]:
    body = gateway.query(
        "query($id: String) { integrationStats(id: $id) { integrationId type circuitState windowFailures "
        "calls "
        "successes retries rejected lastFailure openedAt latencyMs { p50 } "
        "operations { operationId calls } } }",
        {"id": integration},
    )
    (stats,) = body["data"]["integrationStats"]
    return stats  # type: ignore[no-any-return]


def test_breaker_opens_after_repeated_failures_and_stats_show_it(
    gateway: Gateway, directory: Directory
) -> None:
    """The third failed attempt trips a threshold of 3: the second call's retry and the third call
    are refused by the breaker, and neither reaches the upstream."""
    directory.failing = True
    for _ in range(2):
        gateway.query('{ users_getUser(id: "1") { name } }')
    sent_before = len(directory.requests)
    assert sent_before == 3
    body = gateway.query('{ users_getUser(id: "1") { name } }')
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "CIRCUIT_OPEN"
    assert extensions["retryAfter"] > 0
    assert len(directory.requests) == sent_before
    stats = _stats(gateway, "users")
    assert stats["circuitState"] == "OPEN"
    assert stats["rejected"] == 2
    assert stats["openedAt"] is not None
    assert stats["lastFailure"] is not None
    health = gateway.http.get("/healthz").json()
    assert health == {"status": "degraded", "openCircuits": ["users"]}


def test_breaker_recovers_after_reset_after(directory: Directory) -> None:
    """Once reset_after has passed and the upstream is back, one trial call closes the breaker."""
    # 2 s: long enough that a busy machine still sees OPEN before the reset, short enough to wait for.
    for gateway in start(directory, reset_after="2s"):
        directory.failing = True
        for _ in range(2):
            gateway.query('{ users_getUser(id: "1") { name } }')
        assert _stats(gateway, "users")["circuitState"] == "OPEN"
        directory.failing = False
        deadline = time.monotonic() + 10
        body = gateway.query('{ users_getUser(id: "1") { name } }')
        while "errors" in body and time.monotonic() < deadline:
            time.sleep(0.1)
            body = gateway.query('{ users_getUser(id: "1") { name } }')
        assert body == {"data": {"users_getUser": {"name": "Ada"}}}
        assert _stats(gateway, "users")["circuitState"] == "CLOSED"


def test_integration_stats_lists_every_integration(gateway: Gateway) -> None:
    """Without an id, integrationStats has one entry per integration, with its type."""
    body = gateway.query("{ integrationStats { integrationId type circuitState } }")
    assert body["data"]["integrationStats"] == [
        {"integrationId": "users", "type": "rest", "circuitState": "CLOSED"},
        {"integrationId": "down", "type": "rest", "circuitState": "CLOSED"},
    ]


def test_integration_stats_counts_calls_per_operation(gateway: Gateway) -> None:
    """Stats are the module's own counters, per integration and per operation."""
    gateway.query('{ users_getUser(id: "1") { name } }')
    stats = _stats(gateway, "users")
    assert stats["calls"] == 1
    assert stats["successes"] == 1
    assert {"operationId": "getUser", "calls": 1} in stats["operations"]  # type: ignore[operator]
    assert stats["latencyMs"]["p50"] > 0  # type: ignore[index]


def test_unknown_integration_in_stats_is_bad_user_input(gateway: Gateway) -> None:
    """Asking for the stats of an integration that does not exist is the caller's mistake, and the
    message lists the ids that exist."""
    body = gateway.query('{ integrationStats(id: "nope") { integrationId } }')
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["message"] == "integrationStats: no integration 'nope'; the known ids are: down, users"
    assert error["path"] == ["integrationStats"]


STATS_FIELD = 'integrationStats(id: "users") { circuitState calls failuresTotal rejected windowFailures }'


@pytest.mark.parametrize("stats_first", [True, False], ids=["stats-first", "stats-last"])
def test_integration_stats_shows_the_effect_of_its_own_request(
    gateway: Gateway, directory: Directory, stats_first: bool
) -> None:
    """integrationStats resolves after the request's other root fields, wherever it stands: the call
    that opens the breaker ends with CIRCUIT_OPEN, and the same answer's stats say OPEN."""
    directory.failing = True
    gateway.query('{ users_getUser(id: "1") { name } }')  # two failed attempts of three
    call = 'users_getUser(id: "1") { name }'
    body = gateway.query(
        f"{{ {STATS_FIELD if stats_first else call} {call if stats_first else STATS_FIELD} }}"
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["CIRCUIT_OPEN"]
    assert list(body["data"]) == (
        ["integrationStats", "users_getUser"] if stats_first else ["users_getUser", "integrationStats"]
    )
    assert body["data"]["integrationStats"] == [
        {"circuitState": "OPEN", "calls": 2, "failuresTotal": 1, "rejected": 1, "windowFailures": 3}
    ]


def test_gateway_is_ready_while_every_upstream_is_down(gateway: Gateway) -> None:
    """Start-up does not depend on upstreams; readiness and liveness answer 200."""
    assert gateway.http.get("/readyz").status_code == 200
    assert gateway.http.get("/healthz").json() == {"status": "healthy", "openCircuits": []}


def test_request_id_is_forwarded_to_the_upstream(gateway: Gateway, directory: Directory) -> None:
    """The client's X-Request-Id reaches every upstream call of its request."""
    gateway.query('{ users_getUser(id: "1") { name } }', headers={"x-request-id": "req-77"})
    assert directory.requests[-1]["headers"]["x-request-id"] == "req-77"


def test_generated_request_id_is_forwarded_answered_and_logged(
    gateway: Gateway, directory: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    """Without one from the client, the gateway makes an id, sends it upstream, returns it and logs it."""
    directory.failing = True
    response = gateway.http.post("/graphql", json={"query": '{ users_getUser(id: "1") { name } }'})
    request_id = response.headers["x-request-id"]
    assert directory.requests[-1]["headers"]["x-request-id"] == request_id
    assert any(getattr(r, "request_id", None) == request_id for r in caplog.records)


def test_an_object_typed_param_is_an_input_type_sent_as_the_json_body(
    gateway: Gateway, directory: Directory
) -> None:
    """A `types:` name as a param type becomes <Name>Input; alone in the body, it is the body."""
    body = gateway.query(
        'mutation { users_importUser(user: {id: "7", name: "Hedy", address: {city: "Vienna"}}) { id name } }'
    )
    assert body == {"data": {"users_importUser": {"id": "7", "name": "Hedy"}}}
    assert directory.created == [{"id": "7", "name": "Hedy", "address": {"city": "Vienna"}}]
