"""The third-party server launcher (tests/node/graphql_server.mjs) the GraphQL upstream tests run against."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from node_servers import graphql_server

PETS = Path(__file__).parent / "schemas" / "pets.graphql"
QUERY = '{ pets { __typename ... on Cat { name color } ... on Dog { barks } } node(id: "1") { id } }'


def post(url: str, query: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, json.dumps({"query": query}).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.parametrize("apollo", [False, True], ids=["graphql-yoga", "apollo-server"])
def test_the_server_answers_mocked_data_the_same_every_time_and_records_requests(apollo: bool) -> None:
    """Mocked answers are stable across requests, and /received lists what was sent."""
    with graphql_server(PETS, apollo=apollo) as server:
        first = post(server.url, QUERY)
        assert first[0] == 200
        assert "errors" not in first[1]
        assert post(server.url, QUERY) == first
        assert [r["query"] for r in server.received()] == [QUERY, QUERY]


@pytest.mark.parametrize("apollo", [False, True], ids=["graphql-yoga", "apollo-server"])
def test_introspection_can_be_turned_off(apollo: bool) -> None:
    """With introspection off, a __schema query gets errors and no data."""
    with graphql_server(PETS, apollo=apollo, introspection=False) as server:
        _, answer = post(server.url, "{ __schema { queryType { name } } }")
        assert answer.get("data") is None
        assert "introspection" in answer["errors"][0]["message"].lower()
