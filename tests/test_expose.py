"""`expose:`: an upstream's root fields served as gateway fields with its own types, the client's selection
delegated, against a real third-party server (graphql-yoga with mocks) that records what it receives."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway import Gateway, serve_gateway
from graphql import build_client_schema, get_introspection_query, print_schema
from node_clients import apollo_query
from node_servers import NodeGraphQLServer, graphql_server

from aggregator.config import loads
from aggregator.errors import ConfigError

SCHEMAS = Path(__file__).parent / "schemas"
REPOS = SCHEMAS / "repos.graphql"

CONFIG = """
integrations:
  gh:
    type: graphql
    base_url: {url}
    schema: {schema}
    expose: all
    operations:
      viewer:                      # a curated operation of the same name wins over the exposed field
        document: "{{ viewer {{ login }} }}"
"""

QUERY = """
query Q($states: [IssueState!], $withOwner: Boolean!) {
  repo: gh_repository(owner: "octo", name: "hello") {
    id
    title: name
    open: issues(first: 2, states: $states) { number state }
    closed: issues(states: [CLOSED]) { number }
    owner @include(if: $withOwner) { login }
  }
  found: gh_search(query: "x") {
    __typename
    ... on Issue { title state }
    ...OnRepo
  }
  gh_node(id: "1") { id ... on User { login } }
}
fragment OnRepo on Repository { stargazerCount }
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[NodeGraphQLServer]:
    with graphql_server(REPOS, mocks=SCHEMAS / "repos_mocks.mjs") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: NodeGraphQLServer) -> Iterator[Gateway]:
    with serve_gateway(CONFIG.format(url=upstream.url, schema=REPOS)) as served:
        yield served


def post(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        found: dict[str, Any] = json.load(answer)
    return found


def flat(query: str) -> str:
    return " ".join(query.split())


def without_typename(value: Any) -> Any:
    """The upstream's answer without the `__typename`s the gateway asked for on its own account."""
    if isinstance(value, dict):
        return {k: without_typename(v) for k, v in value.items() if k != "__typename"}
    if isinstance(value, list):
        return [without_typename(item) for item in value]
    return value


def test_exposed_fields_take_the_upstreams_arguments_with_their_defaults(gateway: Gateway) -> None:
    """Each exposed root field is `<integration>_<field>`, its arguments and defaults the upstream's."""
    body = gateway.query(
        "{ __schema { queryType { fields { name args { name defaultValue type { kind name } } } } } }"
    )
    fields = {f["name"]: f["args"] for f in body["data"]["__schema"]["queryType"]["fields"]}
    assert {"gh_repository", "gh_node", "gh_search", "gh_viewer"} <= set(fields)
    search = {arg["name"]: arg for arg in fields["gh_search"]}
    assert search["first"]["defaultValue"] == "3"
    assert search["first"]["type"] == search["query"]["type"] == {"kind": "NON_NULL", "name": None}


def test_a_document_operation_of_the_same_name_wins(gateway: Gateway) -> None:
    """`gh_viewer` is the curated operation's: its type has only what its document selects."""
    body = gateway.query('{ __type(name: "Query") { fields { name type { name ofType { name } } } } }')
    types = {f["name"]: f["type"] for f in body["data"]["__type"]["fields"]}
    assert types["gh_viewer"]["name"] == "gh_User"
    assert types["gh_repository"]["name"] == "Repository"


def test_a_client_query_with_enums_aliases_and_abstract_fragments_gets_the_upstreams_data(
    gateway: Gateway, upstream: NodeGraphQLServer
) -> None:
    """Enum arguments, aliases, fragments on a union and an interface: the upstream's own data comes back."""
    body = gateway.query(QUERY, {"states": ["OPEN"], "withOwner": False})
    assert "errors" not in body
    sent = upstream.received()[-3:]
    answers = {}
    for request in sent:
        answer = post(upstream.url, request["query"], request["variables"])
        (root,) = answer["data"].values()
        answers[request["operationName"]] = root
    repo = without_typename(answers["Query_repository"])
    assert body["data"]["repo"] == repo
    assert body["data"]["found"] == answers["Query_search"]
    assert body["data"]["gh_node"] == without_typename(answers["Query_node"])
    kinds = {item["__typename"] for item in body["data"]["found"]}
    assert kinds <= {"Repository", "Issue", "User"}


def test_the_upstream_receives_the_clients_selection(gateway: Gateway, upstream: NodeGraphQLServer) -> None:
    """Aliases and arguments go as written, @include is decided, the client's enum variable goes with it."""
    gateway.query(QUERY, {"states": ["OPEN", "CLOSED"], "withOwner": False})
    repository = next(r for r in upstream.received()[-3:] if "repository(" in r["query"])
    assert flat(repository["query"]) == (
        "query Query_repository($owner: String!, $name: String!, $states: [IssueState!]) "
        "{ repository(owner: $owner, name: $name) { id title: name "
        "open: issues(first: 2, states: $states) { number state } "
        "closed: issues(states: [CLOSED]) { number } } }"
    )
    assert repository["variables"] == {"owner": "octo", "name": "hello", "states": ["OPEN", "CLOSED"]}


def test_abstract_selections_sent_upstream_ask_for_typename(
    gateway: Gateway, upstream: NodeGraphQLServer
) -> None:
    """The gateway resolves a union's or interface's concrete type from the `__typename` it adds."""
    gateway.query('{ gh_node(id: "1") { id } }')
    assert flat(upstream.received()[-1]["query"]) == (
        "query Query_node($id: ID!) { node(id: $id) { __typename id } }"
    )


def test_an_enum_value_the_upstream_does_not_have_is_refused_before_sending(
    gateway: Gateway, upstream: NodeGraphQLServer
) -> None:
    """The gateway checks an enum argument itself: nothing is sent for a value the upstream lacks."""
    before = len(upstream.received())
    body = gateway.query('{ gh_repository(owner: "o", name: "n") { issues(states: [REOPENED]) { id } } }')
    assert body.get("data") is None
    assert "REOPENED" in body["errors"][0]["message"]
    assert len(upstream.received()) == before


def test_an_exposed_mutation_is_a_mutation_field(gateway: Gateway, upstream: NodeGraphQLServer) -> None:
    """Mutation fields are exposed on Mutation; an argument left out takes the upstream's default."""
    body = gateway.query('mutation { gh_closeIssue(id: "7") { id state } }')
    assert "errors" not in body
    assert upstream.received()[-1]["variables"] == {"id": "7", "reason": "done"}


def test_apollo_client_gets_the_data_of_fragments_on_abstract_types(gateway: Gateway) -> None:
    """Apollo Client (default error policy, possibleTypes from introspection) gets data and no error."""
    outcome = apollo_query(gateway.url + "/graphql", QUERY, {"states": ["OPEN"], "withOwner": True})
    assert outcome.error is None
    assert outcome.data["repo"]["owner"]["login"]
    assert {item["__typename"] for item in outcome.data["found"]} <= {"Repository", "Issue", "User"}


def test_the_gateways_introspection_round_trips_through_build_client_schema(gateway: Gateway) -> None:
    """graphql-core rebuilds the gateway's schema from its introspection: enums, interfaces, unions,
    scalars and defaults as the upstream declares them."""
    schema = build_client_schema(gateway.query(get_introspection_query(descriptions=True))["data"])
    state = schema.type_map["IssueState"]
    assert list(state.values) == ["OPEN", "CLOSED", "MERGED"]  # type: ignore[attr-defined]
    assert state.values["MERGED"].deprecation_reason == "use CLOSED"  # type: ignore[attr-defined]
    assert {t.name for t in schema.get_possible_types(schema.type_map["Node"])} >= {"Repository", "Issue"}  # type: ignore[arg-type]
    assert "union SearchResult = Repository | Issue | User" in print_schema(schema)
    assert "scalar URI" in print_schema(schema)
    assert "issues(first: Int = 2, states: [IssueState!]): [Issue!]!" in print_schema(schema)


@pytest.mark.parametrize(
    ("expose", "message"),
    [
        (
            "[repositry]",
            "'repositry' is not a Query or Mutation field of the upstream's schema (repos.graphql); "
            "did you mean 'repository'?",
        ),
        ("[repository, repository]", "'repository' is listed twice"),
        ("some", "must be all or a non-empty list of root field names"),
    ],
)
def test_check_refuses_a_bad_expose_with_file_line_and_fix(expose: str, message: str) -> None:
    """A bad `expose:` is a config error naming the file, line and key, and what to write instead."""
    head = "integrations:\n  gh:\n    type: graphql\n    base_url: http://h/graphql\n"
    text = f"{head}    schema: {REPOS}\n    expose: {expose}\n"
    with pytest.raises(ConfigError) as raised:
        loads(text, "integrations.yaml")
    assert message in str(raised.value)
    assert "integrations.yaml:6: integrations.gh.expose" in str(raised.value)


def test_check_refuses_expose_on_a_rest_integration() -> None:
    """`expose:` belongs to graphql integrations."""
    text = "integrations:\n  api:\n    base_url: http://h\n    expose: all\n    operations: {a: {path: /a}}\n"
    with pytest.raises(ConfigError, match="expose: is for graphql integrations"):
        loads(text, "integrations.yaml")


def test_an_explicitly_exposed_field_taken_by_an_operation_is_refused() -> None:
    """Listing a root field whose gateway field a document operation already has is a conflict to fix."""
    text = CONFIG.format(url="http://h/graphql", schema=REPOS).replace("expose: all", "expose: [viewer]")
    with pytest.raises(ConfigError, match="GraphQL field 'gh_viewer' is already taken"):
        loads(text, "integrations.yaml")
