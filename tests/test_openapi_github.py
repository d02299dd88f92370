"""GitHub's published OpenAPI document imported whole and cut by include, served end to end over HTTP:
the gateway in front of Stoplight Prism mocking the same document (seeded dynamic answers)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway import Gateway, serve_gateway
from openapi_docs import GITHUB, cut, prism_mock, write_json

FIVE = ("repos/get", "issues/list-for-repo", "users/get-by-username", "repos/list-languages", "issues/create")


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prism answering the five operations from GitHub's document (cut to them so that it starts fast)."""
    if not GITHUB.exists():
        pytest.skip("tests/node packages missing: run `make tests/node/node_modules/.installed`")
    document = cut(json.loads(GITHUB.read_bytes()), FIVE)
    with prism_mock(
        write_json(tmp_path_factory.mktemp("github") / "github.json", document), dynamic=True
    ) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(prism: str) -> Iterator[Gateway]:
    """The gateway from a config with only base_url, openapi: and include: (the whole document)."""
    config = f"""
integrations:
  github:
    base_url: {prism}
    openapi: {GITHUB}
    include: [{", ".join(FIVE)}]
"""
    with serve_gateway(config) as served:
        yield served


def upstream(prism: str, method: str, path: str, **kwargs: Any) -> Any:
    """What Prism answers the same request directly (seeded: the same request, the same answer)."""
    response = httpx.request(method, prism + path, timeout=30, **kwargs)
    assert response.is_success, response.text
    return response.json()


def data(gateway: Gateway, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = gateway.query(query, variables)
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]
    return result


def test_a_repository_is_typed_with_its_id_as_big_int(gateway: Gateway, prism: str) -> None:
    """repos/get answers a full_repository whose id is the upstream's 64-bit id, exactly."""
    got = data(
        gateway,
        '{ github_repos_get(owner: "octocat", repo: "hello") { id name full_name owner { login id } } }',
    )["github_repos_get"]
    expected = upstream(prism, "GET", "/repos/octocat/hello")
    assert got == {
        "id": expected["id"],
        "name": expected["name"],
        "full_name": expected["full_name"],
        "owner": {"login": expected["owner"]["login"], "id": expected["owner"]["id"]},
    }


def test_issues_are_listed_with_their_query_params_and_reaction_counts(gateway: Gateway, prism: str) -> None:
    """issues/list-for-repo sends state/per_page/page and exposes reactions +1/-1 as plus_1/minus_1."""
    got = data(
        gateway,
        """{ github_issues_list_for_repo(owner: "octocat", repo: "hello", state: closed, per_page: 2, page: 3)
             { id number title state reactions { total_count plus_1 minus_1 } } }""",
    )["github_issues_list_for_repo"]
    expected = upstream(
        prism, "GET", "/repos/octocat/hello/issues", params={"state": "closed", "per_page": 2, "page": 3}
    )
    assert got == [
        {
            "id": issue["id"],
            "number": issue["number"],
            "title": issue["title"],
            "state": issue["state"],
            "reactions": {
                "total_count": issue["reactions"]["total_count"],
                "plus_1": issue["reactions"]["+1"],
                "minus_1": issue["reactions"]["-1"],
            },
        }
        for issue in expected
    ]
    # Seeded answers: the same ids every run, beyond what GraphQL's 32-bit Int can hold.
    assert any(abs(issue["id"]) >= 2**31 for issue in got)


def test_a_user_is_the_member_of_the_union_its_fields_match(gateway: Gateway, prism: str) -> None:
    """users/get-by-username answers oneOf private-user/public-user: a union, resolved by the keys."""
    got = data(
        gateway,
        """{ github_users_get_by_username(username: "octocat") {
               __typename ... on public_user { login id } ... on private_user { login id } } }""",
    )["github_users_get_by_username"]
    expected = upstream(prism, "GET", "/users/octocat")
    assert got["__typename"] in ("public_user", "private_user")
    assert (got["login"], got["id"]) == (expected["login"], expected["id"])


def test_a_map_of_languages_is_json(gateway: Gateway, prism: str) -> None:
    """repos/list-languages answers an object of additionalProperties only: JSON, as sent."""
    got = data(gateway, '{ github_repos_list_languages(owner: "octocat", repo: "hello") }')
    assert got["github_repos_list_languages"] == upstream(prism, "GET", "/repos/octocat/hello/languages")


def test_an_issue_is_created_from_the_input_type(gateway: Gateway, prism: str) -> None:
    """issues/create is a mutation taking the JSON body as `input`, answering the created issue."""
    body = {"title": "Found a bug", "body": "It crashes", "labels": ["bug"], "assignees": ["octocat"]}
    got = data(
        gateway,
        """mutation($input: issues_create_bodyInput!) {
             github_issues_create(owner: "octocat", repo: "hello", input: $input) {
               id number title state } }""",
        {"input": body},
    )["github_issues_create"]
    expected = upstream(prism, "POST", "/repos/octocat/hello/issues", json=body)
    assert got == {k: expected[k] for k in ("id", "number", "title", "state")}


def test_the_whole_document_is_served_every_operation_a_field(prism: str) -> None:
    """Without include, each of GitHub's operations is a field named by the rule, but the two whose
    request body is not JSON; an imported field answers from the upstream."""
    document = json.loads(GITHUB.read_bytes())
    operations = [op for item in document["paths"].values() for op in item.values() if "operationId" in op]
    not_json = {
        op["operationId"]
        for op in operations
        if "requestBody" in op and not any("json" in kind for kind in op["requestBody"]["content"])
    }
    expected = {
        "github_" + re.sub(r"[^_0-9A-Za-z]+", "_", op["operationId"])
        for op in operations
        if op["operationId"] not in not_json
    }
    config = f"integrations:\n  github:\n    base_url: {prism}\n    openapi: {GITHUB}\n"
    # Generous: building 2,000 types takes seconds, more on a busy machine (bench/openapi_startup.py).
    with serve_gateway(config, startup_seconds=120) as gateway:
        roots = data(
            gateway, "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }"
        )
        repo = data(gateway, '{ github_repos_get(owner: "octocat", repo: "hello") { id full_name } }')
    fields = {f["name"] for root in roots["__schema"].values() for f in root["fields"]}
    assert (len(not_json), fields - {"integrationStats"}) == (2, expected)
    assert repo["github_repos_get"]["id"] == upstream(prism, "GET", "/repos/octocat/hello")["id"]
