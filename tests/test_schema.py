"""The schema generated from a config: names, types and arguments as a client sees them in SDL."""

from __future__ import annotations

from aggregator.config import loads
from aggregator.module import IntegrationModule
from aggregator.schema import build_schema

CONFIG = """
types:
  User: {id: "ID!", class: String, from: String, friends: "[User!]", address: Address}
  Address: {city: String}
  Unused: {note: String}
integrations:
  users:
    base_url: http://127.0.0.1:9/api
    operations:
      getUser: {path: "/users/{id}", params: {id: "ID!", expand: Boolean}, returns: User}
      listUsers: {path: /users, params: {tags: "[String!]"}, returns: "[User!]"}
      createUser: {method: POST, path: /users, params: {input: {type: "User!", in: body}}, returns: User}
      ping: {path: /ping, field: ping}
"""


def sdl() -> str:
    config = loads(CONFIG)
    return str(build_schema(config, IntegrationModule(config)))


def test_operations_become_fields_named_integration_underscore_operation() -> None:
    """GET operations are Query fields, POST ones Mutation fields; `field:` renames."""
    text = sdl()
    assert "users_getUser(id: ID!, expand: Boolean): User" in text
    assert "users_listUsers(tags: [String!]): [User!]" in text
    assert "users_createUser(input: UserInput!): User" in text
    assert "  ping: JSON" in text


def test_field_names_are_kept_exactly_even_python_keywords() -> None:
    """Config field names reach the schema unchanged: no camel-casing, keywords allowed."""
    text = sdl()
    assert "  class: String\n  from: String\n  friends: [User!]" in text


def test_object_types_used_as_params_get_input_types() -> None:
    """A named type used as a param type also becomes <Name>Input, recursively."""
    text = sdl()
    assert "input UserInput {" in text
    assert "input AddressInput {" in text


def test_declared_types_no_field_returns_are_still_in_the_schema() -> None:
    """A type in `types:` that no operation returns is part of the schema, not a crash."""
    assert "type Unused {\n  note: String\n}" in sdl()


def test_integration_stats_is_always_on_query() -> None:
    """integrationStats is part of every schema."""
    assert "integrationStats(id: String = null): [IntegrationStats!]!" in sdl()
