"""GitHub's public GraphQL schema (npm @octokit/graphql-schema) behind the gateway: loaded from its SDL
file and by introspection of graphql-yoga serving it with mocks, typed faithfully (enums, interfaces,
unions, custom scalars under their names), and a client query with enum arguments, fragments on a
union and an interface, and aliases answered with the upstream's data."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import graphql
import pytest
from builders import gateway_sdl
from gateway import Gateway, serve_gateway
from node_servers import NODE_DIR, NodeGraphQLServer, graphql_server, require_node_packages

from aggregator.config import load, loads
from aggregator.config.upstream_schema import schema_from_introspection
from aggregator.errors import ConfigError

PUBLISHED = NODE_DIR / "node_modules" / "@octokit" / "graphql-schema"
OPERATIONS = """
    operations:
      repository:
        document: |
          query Repo($owner: String!, $name: String!, $states: [IssueState!], $first: Int = 2) {
            repository(owner: $owner, name: $name) {
              id name url createdAt
              issues(states: $states, first: $first) { totalCount nodes { id title state } }
            }
          }
        params: {owner: "String!", name: "String!", states: "[IssueState!]", first: Int}
      search:
        document: |
          query Search($q: String!, $type: SearchType!) {
            search(query: $q, type: $type, first: 3) {
              nodes {
                ... on Issue { title state }
                ... on PullRequest { title merged }
                ... on Repository { nameWithOwner }
              }
            }
          }
        params: {q: "String!", type: "SearchType!"}
      node:
        document: |
          query Node($id: ID!) { node(id: $id) { id ... on Issue { title createdAt } ... on User { login } } }
        params: {id: "ID!"}
"""


def without_duplicate_fields(text: str) -> str:
    """The SDL with the second definition of each field defined twice removed (as graphql-js needs)."""
    cuts = []
    for definition in graphql.parse(text).definitions:
        seen: set[str] = set()
        for field in getattr(definition, "fields", None) or ():
            if field.name.value in seen:
                cuts.append((field.loc.start, field.loc.end))
            seen.add(field.name.value)
    for start, end in sorted(cuts, reverse=True):
        text = text[:start] + text[end:]
    return text


@pytest.fixture(scope="module")
def github_sdl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_node_packages()
    path = tmp_path_factory.mktemp("github") / "github.graphql"
    path.write_text(without_duplicate_fields((PUBLISHED / "schema.graphql").read_text(encoding="utf-8")))
    return path


def config_text(schema_line: str, base_url: str = "http://127.0.0.1:9/graphql") -> str:
    return f"""
integrations:
  github:
    type: graphql
    base_url: {base_url}
    timeout: 60s
    {schema_line}
{OPERATIONS}
"""


def test_the_published_sdl_is_refused_with_the_line_of_each_duplicate_field(tmp_path: Path) -> None:
    """Two fields of EnterpriseOwnerInfo are defined twice: FILE:LINE for each of the four definitions."""
    require_node_packages()
    path = tmp_path / "integrations.yaml"
    path.write_text(config_text(f"schema: {PUBLISHED / 'schema.graphql'}"))
    with pytest.raises(ConfigError) as refused:
        load(path)
    published = str(PUBLISHED / "schema.graphql")
    located = sorted(p.line for p in refused.value.problems if p.file == published)
    assert located == [15003, 15008, 15153, 15158]
    assert all("can only be defined once" in p.message for p in refused.value.problems if p.file == published)


@pytest.fixture(scope="module")
def schema_text(github_sdl: Path) -> str:
    """What `aggregator schema` prints for a config whose `schema:` is the fixed SDL."""
    return gateway_sdl(loads(config_text(f"schema: {github_sdl.name}"), base_dir=github_sdl.parent))


@pytest.mark.parametrize(
    "expected",
    [
        "enum IssueState {",
        "enum SearchType {",
        "interface Node {",
        "union SearchResultItem = Issue | PullRequest | Repository",
        "scalar URI",
        "type Issue implements",
        "github_repository(owner: String!, name: String!, states: [IssueState!], first: Int = 2): Repository",
        "github_search(q: String!, type: SearchType!): SearchResultItemConnection",
        "github_node(id: ID!): Node",
    ],
)
def test_the_sdl_file_loads_and_the_schema_shows_githubs_own_types(schema_text: str, expected: str) -> None:
    """Enums, interfaces, unions and custom scalars under GitHub's names; defaults as declared."""
    assert expected in schema_text


def test_the_published_introspection_result_loads() -> None:
    """schema.json builds, though graphql-core 3.3 alone would refuse its twelve deprecations."""
    require_node_packages()
    data = json.loads((PUBLISHED / "schema.json").read_text(encoding="utf-8"))
    schema = schema_from_introspection(data.get("data", data))
    assert isinstance(schema.get_type("IssueState"), graphql.GraphQLEnumType)
    assert graphql.validate(schema, graphql.parse("{ viewer { login } }")) == []


@pytest.fixture(scope="module")
def yoga(github_sdl: Path) -> Iterator[NodeGraphQLServer]:
    with graphql_server(github_sdl) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(yoga: NodeGraphQLServer) -> Iterator[Gateway]:
    """The gateway, typed by introspecting graphql-yoga at start-up (no `schema:`)."""
    with serve_gateway(config_text("", yoga.url)) as served:
        yield served


def upstream_answer(yoga: NodeGraphQLServer) -> dict[str, Any]:
    """What the upstream answers to the last request the gateway sent it, asked again directly."""
    sent = yoga.received()[-1]
    body = json.dumps({"query": sent["query"], "variables": sent["variables"]}).encode()
    request = urllib.request.Request(yoga.url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        found: dict[str, Any] = json.load(answer)
    assert "errors" not in found
    return found["data"]


def test_the_gateway_introspects_githubs_schema_at_start(gateway: Gateway) -> None:
    """Introspection gives the same faithful types as the SDL file."""
    kinds = gateway.query('{ __type(name: "SearchResultItem") { kind possibleTypes { name } } }')
    assert kinds["data"]["__type"]["kind"] == "UNION"
    state = gateway.query('{ __type(name: "IssueState") { kind enumValues { name } } }')["data"]["__type"]
    assert state["kind"] == "ENUM"
    assert {"OPEN", "CLOSED"} <= {value["name"] for value in state["enumValues"]}


def test_enum_arguments_reach_the_upstream_and_enum_results_come_back(
    gateway: Gateway, yoga: NodeGraphQLServer
) -> None:
    """An enum list argument is sent as the upstream's values; the upstream's data comes back as is."""
    answer = gateway.query(
        '{ github_repository(owner: "octo", name: "cat", states: [OPEN, CLOSED]) {'
        " name issues { totalCount nodes { id title state } } } }"
    )
    assert "errors" not in answer, answer
    sent = yoga.received()[-1]
    assert sent["variables"]["states"] == ["OPEN", "CLOSED"]
    assert answer["data"]["github_repository"] == upstream_answer(yoga)["repository"]


def test_inline_fragments_on_a_union_return_the_upstreams_data(
    gateway: Gateway, yoga: NodeGraphQLServer
) -> None:
    """Each search result is completed as the type its __typename names."""
    answer = gateway.query(
        '{ github_search(q: "is:open", type: ISSUE) { nodes { __typename'
        " ... on Issue { title state } ... on PullRequest { title merged }"
        " ... on Repository { nameWithOwner } } } }"
    )
    assert "errors" not in answer, answer
    assert answer["data"]["github_search"] == upstream_answer(yoga)["search"]


def test_a_fragment_on_an_interface_and_aliases_return_the_upstreams_data(
    gateway: Gateway, yoga: NodeGraphQLServer
) -> None:
    """Aliases rename the gateway's fields; the values are the upstream's, the type its __typename."""
    answer = gateway.query(
        '{ one: github_node(id: "MDU6SXNzdWUx") {'
        " key: id kind: __typename ... on Issue { heading: title } } }"
    )
    assert "errors" not in answer, answer
    upstream = upstream_answer(yoga)["node"]
    expected = {"key": upstream["id"], "kind": upstream["__typename"]}
    if upstream["__typename"] == "Issue":
        expected["heading"] = upstream["title"]
    assert answer["data"]["one"] == expected
