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
from graphql import (
    DocumentNode,
    ObjectTypeDefinitionNode,
    build_client_schema,
    get_introspection_query,
    parse,
    print_ast,
    print_schema,
)
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
def gateway(repos_upstream: NodeGraphQLServer) -> Iterator[Gateway]:
    with serve_gateway(CONFIG.format(url=repos_upstream.url, schema=REPOS)) as served:
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
    gateway: Gateway, repos_upstream: NodeGraphQLServer
) -> None:
    """Enum arguments, aliases, fragments on a union and an interface: the upstream's own data comes back."""
    body = gateway.query(QUERY, {"states": ["OPEN"], "withOwner": False})
    assert "errors" not in body
    sent = repos_upstream.received()[-3:]
    answers = {}
    for request in sent:
        answer = post(repos_upstream.url, request["query"], request["variables"])
        (root,) = answer["data"].values()
        answers[request["operationName"]] = root
    repo = without_typename(answers["Query_repository"])
    assert body["data"]["repo"] == repo
    assert body["data"]["found"] == answers["Query_search"]
    assert body["data"]["gh_node"] == without_typename(answers["Query_node"])
    kinds = {item["__typename"] for item in body["data"]["found"]}
    assert kinds <= {"Repository", "Issue", "User"}


def test_the_upstream_receives_the_clients_selection(
    gateway: Gateway, repos_upstream: NodeGraphQLServer
) -> None:
    """Aliases and arguments go as written, @include is decided, the client's enum variable goes with it."""
    gateway.query(QUERY, {"states": ["OPEN", "CLOSED"], "withOwner": False})
    repository = next(r for r in repos_upstream.received()[-3:] if "repository(" in r["query"])
    assert flat(repository["query"]) == (
        "query Query_repository($owner: String!, $name: String!, $states: [IssueState!]) "
        "{ repository(owner: $owner, name: $name) { id title: name "
        "open: issues(first: 2, states: $states) { number state } "
        "closed: issues(states: [CLOSED]) { number } } }"
    )
    assert repository["variables"] == {"owner": "octo", "name": "hello", "states": ["OPEN", "CLOSED"]}


def test_abstract_selections_sent_upstream_ask_for_typename(
    gateway: Gateway, repos_upstream: NodeGraphQLServer
) -> None:
    """The gateway resolves a union's or interface's concrete type from the `__typename` it adds."""
    gateway.query('{ gh_node(id: "1") { id } }')
    assert flat(repos_upstream.received()[-1]["query"]) == (
        "query Query_node($id: ID!) { node(id: $id) { __typename id } }"
    )


def test_an_enum_value_the_upstream_does_not_have_is_refused_before_sending(
    gateway: Gateway, repos_upstream: NodeGraphQLServer
) -> None:
    """The gateway checks an enum argument itself: nothing is sent for a value the upstream lacks."""
    before = len(repos_upstream.received())
    body = gateway.query('{ gh_repository(owner: "o", name: "n") { issues(states: [REOPENED]) { id } } }')
    assert body.get("data") is None
    assert "REOPENED" in body["errors"][0]["message"]
    assert len(repos_upstream.received()) == before


def test_an_exposed_mutation_is_a_mutation_field(gateway: Gateway, repos_upstream: NodeGraphQLServer) -> None:
    """Mutation fields are exposed on Mutation; an argument left out takes the upstream's default."""
    body = gateway.query('mutation { gh_closeIssue(id: "7") { id state } }')
    assert "errors" not in body
    assert repos_upstream.received()[-1]["variables"] == {"id": "7", "reason": "done"}


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


GITHUB = Path(__file__).parent / "node" / "node_modules" / "@octokit" / "graphql-schema" / "schema.graphql"
GITHUB_QUERY = """
query Gh($states: [IssueState!]) {
  repo: gh_repository(owner: "octo", name: "hello") {
    nameWithOwner
    open: issues(first: 2, states: $states, orderBy: {field: CREATED_AT, direction: DESC}) {
      totalCount
      nodes { number state }
    }
  }
  found: gh_search(query: "is:open", type: ISSUE, first: 3) {
    nodes { __typename ... on Issue { title } ... on PullRequest { number } }
  }
  thing: gh_node(id: "1") { __typename id ... on Repository { name } }
}
"""


def without_duplicate_fields(sdl: str) -> str:
    """GitHub's published SDL defines two fields of EnterpriseOwnerInfo twice, which graphql-js refuses
    too: the first definition of each is kept."""
    document = parse(sdl)
    definitions = []
    for definition in document.definitions:
        if isinstance(definition, ObjectTypeDefinitionNode):
            fields = {f.name.value: f for f in reversed(definition.fields or ())}
            if len(fields) != len(definition.fields or ()):
                kept = tuple(f for f in definition.fields or () if fields[f.name.value] is f)
                parts = {
                    key: getattr(definition, key) for key in definition.keys if key not in ("loc", "fields")
                }
                definition = ObjectTypeDefinitionNode(**parts, fields=kept)
        definitions.append(definition)
    return print_ast(DocumentNode(definitions=tuple(definitions)))


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeGraphQLServer]:
    """GitHub's public schema served by graphql-yoga with mocks, introspection on."""
    sdl = tmp_path_factory.mktemp("github") / "github.graphql"
    sdl.write_text(without_duplicate_fields(GITHUB.read_text(encoding="utf-8")), encoding="utf-8")
    with graphql_server(sdl) as server:
        yield server


@pytest.fixture(scope="module")
def github_gateway(github: NodeGraphQLServer) -> Iterator[Gateway]:
    text = f"integrations:\n  gh:\n    type: graphql\n    base_url: {github.url}\n    timeout: 20s\n"
    # Building a gateway schema of GitHub's 1,000 types takes Strawberry several seconds of CPU.
    with serve_gateway(
        text + "    expose: [repository, viewer, search, node]\n", startup_seconds=180
    ) as served:
        yield served


def test_githubs_schema_answers_enums_aliases_and_abstract_fragments_with_the_upstreams_data(
    github_gateway: Gateway, github: NodeGraphQLServer
) -> None:
    """GitHub's schema by introspection: a query with enum arguments, an input object, aliases, an inline
    fragment on a union and on an interface gets exactly what the upstream answers the forwarded documents."""
    body = github_gateway.query(GITHUB_QUERY, {"states": ["OPEN"]})
    assert "errors" not in body
    upstream = {}
    for request in github.received()[-3:]:
        answer = post(github.url, request["query"], request["variables"])
        (root,) = answer["data"].values()
        upstream[request["operationName"]] = root
    # GitHub's Query implements Node: the gateway's own Query takes that name, the upstream's is gh_Query.
    thing = upstream["Query_node"]
    renamed = {"Query": "gh_Query", "Mutation": "gh_Mutation"}
    assert body["data"] == {
        "repo": upstream["Query_repository"],
        "found": upstream["Query_search"],
        "thing": {**thing, "__typename": renamed.get(thing["__typename"], thing["__typename"])},
    }


def test_githubs_types_keep_their_names_and_kinds(github_gateway: Gateway) -> None:
    """Enums, interfaces, unions and custom scalars of GitHub's schema are the gateway's, by name."""
    kinds = {
        name: github_gateway.query(f'{{ __type(name: "{name}") {{ kind }} }}')["data"]["__type"]["kind"]
        for name in ("IssueState", "Node", "SearchResultItem", "URI", "Repository")
    }
    assert kinds == {
        "IssueState": "ENUM",
        "Node": "INTERFACE",
        "SearchResultItem": "UNION",
        "URI": "SCALAR",
        "Repository": "OBJECT",
    }


def test_apollo_client_queries_githubs_schema_through_the_gateway(github_gateway: Gateway) -> None:
    """Apollo Client, default error policy, possibleTypes from the gateway: data and no error."""
    outcome = apollo_query(github_gateway.url + "/graphql", GITHUB_QUERY, {"states": ["OPEN", "CLOSED"]})
    assert outcome.error is None
    assert outcome.data["repo"]["nameWithOwner"]
