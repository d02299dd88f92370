"""Only the selected fields go upstream, seen from a real third-party server (graphql-yoga) that records
every request it receives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway import Gateway, serve_gateway
from node_clients import apollo_query
from node_servers import NodeGraphQLServer

SCHEMAS = Path(__file__).parent / "schemas"
REPOS = SCHEMAS / "repos.graphql"

CONFIG = """
integrations:
  gh:
    type: graphql
    base_url: {url}
    schema: {schema}
    operations:
      repo:
        document: |
          query Repo($owner: String!, $name: String!) {{
            repository(owner: $owner, name: $name) {{
              id name description stargazerCount licenseInfo {{ key name }} owner {{ login name }}
            }}
          }}
        params: {{owner: "String!", name: "String!"}}
"""


@pytest.fixture(scope="module")
def gateway(repos_upstream: NodeGraphQLServer) -> Iterator[Gateway]:
    with serve_gateway(CONFIG.format(url=repos_upstream.url, schema=REPOS)) as served:
        yield served


def flat(query: str) -> str:
    return " ".join(query.split())


def test_a_narrow_selection_is_all_the_upstream_receives(
    gateway: Gateway, repos_upstream: NodeGraphQLServer
) -> None:
    """A client selecting `{ id name }` causes an upstream document with only those fields."""
    body = gateway.query('{ gh_repo(owner: "octo", name: "hello") { id name } }')
    assert set(body["data"]["gh_repo"]) == {"id", "name"}
    assert flat(repos_upstream.received()[-1]["query"]) == (
        "query Repo($owner: String!, $name: String!) { repository(owner: $owner, name: $name) { id name } }"
    )


def test_no_error_about_an_unselected_field_reaches_the_client(gateway: Gateway) -> None:
    """The license service is down; a client that did not select the license sees no error."""
    body = gateway.query('{ gh_repo(owner: "octo", name: "hello") { id name owner { login } } }')
    assert "errors" not in body
    assert body["data"]["gh_repo"]["owner"]["login"]


def test_an_error_at_a_selected_field_still_reaches_the_client(gateway: Gateway) -> None:
    """Selecting the license that fails upstream does bring its error, at the gateway's path."""
    body = gateway.query('{ gh_repo(owner: "octo", name: "hello") { id licenseInfo { key } } }')
    (error,) = body["errors"]
    assert error["message"] == "license service down"
    assert error["extensions"]["upstreamPath"] == ["repository", "licenseInfo", "key"]


def test_client_aliases_fragments_and_conditions_reach_the_upstream_as_a_cut(
    gateway: Gateway, repos_upstream: NodeGraphQLServer
) -> None:
    """Aliases stay at the gateway, fragments are merged, @skip/@include are evaluated with the variables."""
    query = """
        query Q($withOwner: Boolean!, $short: Boolean!) {
          repo: gh_repo(owner: "octo", name: "hello") {
            title: name
            ...Stars
            owner @include(if: $withOwner) { login }
            description @skip(if: $short)
          }
        }
        fragment Stars on Repository { stargazerCount }
    """
    body = gateway.query(query, {"withOwner": True, "short": True})
    assert set(body["data"]["repo"]) == {"title", "stargazerCount", "owner"}
    assert flat(repos_upstream.received()[-1]["query"]) == (
        "query Repo($owner: String!, $name: String!) "
        "{ repository(owner: $owner, name: $name) { name stargazerCount owner { login } } }"
    )


def test_apollo_client_gets_the_data_with_its_default_error_policy(gateway: Gateway) -> None:
    """Apollo Client, which throws on any error, gets the data of a selection avoiding the failing field."""
    outcome = apollo_query(gateway.url + "/graphql", '{ gh_repo(owner: "octo", name: "hello") { id name } }')
    assert outcome.error is None
    assert set(outcome.data["gh_repo"]) == {"__typename", "id", "name"}


def test_apollo_client_throws_when_the_selection_fails(gateway: Gateway) -> None:
    """The same client throws when its selection does fail upstream: the previous test could fail."""
    outcome = apollo_query(
        gateway.url + "/graphql", '{ gh_repo(owner: "o", name: "n") { licenseInfo { key } } }'
    )
    assert outcome.error == "license service down"
