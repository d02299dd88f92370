"""The type model beyond object types: enums, interfaces, unions, custom scalars and input types, as a
client sees them (SDL) and as they behave (values mapped, concrete types found), names kept exactly."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import strawberry

from aggregator.config import (
    Config,
    EnumType,
    EnumValue,
    InputType,
    InterfaceType,
    ObjectType,
    Operation,
    Param,
    ScalarType,
    TypeExpr,
    UnionType,
    loads,
)
from aggregator.module import IntegrationModule
from aggregator.schema import RequestContext, build_schema

BASE = """
types:
  Simple_User: {id: "ID!", first_name: String}
integrations:
  gh:
    base_url: http://127.0.0.1:9/api
    operations:
      user: {path: "/users/{id}", params: {id: "ID!", filter: Simple_User}, returns: Simple_User}
"""
ID = TypeExpr("ID", non_null=True)


def config() -> Config:
    base = loads(BASE)
    user = base.types["Simple_User"]
    assert isinstance(user, ObjectType)
    types = {
        **base.types,
        "Simple_User": replace(user, interfaces=("gh_Node",), field_deprecations={"first_name": "use name"}),
        "gh_Node": InterfaceType("gh_Node", {"id": ID}, description="Has an id"),
        "gh_Bot": ObjectType("gh_Bot", {"id": ID, "state": TypeExpr("issue_state")}, interfaces=("gh_Node",)),
        "gh_Actor": UnionType("gh_Actor", ("Simple_User", "gh_Bot")),
        "Pet": UnionType("Pet", ("gh_Bot",), discriminator="petType", mapping={"robot-dog": "gh_Bot"}),
        "issue_state": EnumType(
            "issue_state",
            (
                EnumValue("OPEN", "open", description="Still open"),
                EnumValue("closed_now", "closed"),
                EnumValue("MERGED", "merged", deprecation_reason="pull requests only"),
            ),
        ),
        "URI": ScalarType(
            "URI", description="An RFC 3986 URI", specified_by="https://www.rfc-editor.org/rfc/rfc3986"
        ),
        "issue_filter": InputType(
            "issue_filter",
            {"states": TypeExpr(of=TypeExpr("issue_state", non_null=True)), "first": TypeExpr("Int")},
            field_defaults={"first": 2},
        ),
    }
    integration = base.integrations["gh"]

    def op(oid: str, returns: TypeExpr, *params: Param) -> Operation:
        return Operation(oid, path=f"/{oid}", params=params, returns=returns, field=f"gh_{oid}")

    operations = {
        **integration.operations,
        "node": op("node", TypeExpr("gh_Node"), Param("id", ID, "query")),
        "actors": op("actors", TypeExpr(of=TypeExpr("gh_Actor"))),
        "pet": op("pet", TypeExpr("Pet")),
        "issues": op(
            "issues",
            TypeExpr(of=TypeExpr("issue_state")),
            Param("state", TypeExpr("issue_state"), "query"),
            Param("filter", TypeExpr("issue_filter"), "body"),
            Param("home", TypeExpr("URI"), "query"),
        ),
    }
    return replace(base, types=types, integrations={"gh": replace(integration, operations=operations)})


class Answers:
    """Answers the module's calls by operation id and records the params each call got."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, _integration: str, operation: str, params: Any = None, **_: Any) -> Any:
        self.calls.append((operation, dict(params or {})))
        return self.answers.get(operation)


def schema_with(answers: dict[str, Any]) -> tuple[strawberry.Schema, Answers]:
    cfg = config()
    module = IntegrationModule(cfg)
    fake = Answers(answers)
    module.call = fake.call  # type: ignore[method-assign]
    return build_schema(cfg, module), fake


async def run(schema: strawberry.Schema, query: str, variables: dict[str, Any] | None = None) -> Any:
    result = await schema.execute(query, variable_values=variables, context_value=RequestContext())
    return result.data, [error.message for error in result.errors or ()]


@pytest.mark.parametrize(
    "expected",
    [
        'enum issue_state {\n  """Still open"""\n  OPEN\n  closed_now\n'
        '  MERGED @deprecated(reason: "pull requests only")\n}',
        '"""Has an id"""\ninterface gh_Node {\n  id: ID!\n}',
        "type gh_Bot implements gh_Node {\n  id: ID!\n  state: issue_state\n}",
        "type Simple_User implements gh_Node {",
        '  first_name: String @deprecated(reason: "use name")',
        "union gh_Actor = Simple_User | gh_Bot",
        "union Pet = gh_Bot",
        '"""An RFC 3986 URI"""\nscalar URI @specifiedBy(url: "https://www.rfc-editor.org/rfc/rfc3986")',
        "input issue_filter {\n  states: [issue_state!]\n  first: Int = 2\n}",
        "gh_issues(state: issue_state, filter: issue_filter, home: URI): [issue_state]",
        "gh_user(id: ID!, filter: Simple_UserInput): Simple_User",
        "input Simple_UserInput {\n  id: ID!\n  first_name: String\n}",
    ],
)
def test_every_kind_of_type_is_in_the_sdl_under_its_exact_name(expected: str) -> None:
    """Enums (descriptions, deprecations), interfaces, unions, scalars and inputs, underscores kept."""
    schema, _ = schema_with({})
    assert expected in schema.as_str()


async def test_enum_results_are_shown_by_name_and_arguments_sent_as_wire_values() -> None:
    """The upstream's wire values come out as the enum's names; names given go upstream as wire values."""
    schema, fake = schema_with({"issues": ["open", "closed", None]})
    query = "query($f: issue_filter) { gh_issues(state: closed_now, filter: $f) }"
    data, errors = await run(schema, query, {"f": {"states": ["OPEN", "MERGED"]}})
    assert (data, errors) == ({"gh_issues": ["OPEN", "closed_now", None]}, [])
    assert fake.calls == [
        ("issues", {"state": "closed", "filter": {"states": ["open", "merged"], "first": 2}})
    ]


async def test_an_enum_value_the_upstream_should_not_send_is_an_error_at_its_path() -> None:
    """A wire value outside the enum nulls that item with graphql-core's error, as the operation's."""
    schema, _ = schema_with({"issues": ["open", "reopened"]})
    data, errors = await run(schema, "{ gh_issues }")
    assert data == {"gh_issues": ["OPEN", None]}
    assert errors == [
        "gh.issues: the answer does not fit the schema at gh_issues.1: "
        "Enum 'issue_state' cannot represent value: 'reopened'"
    ]


async def test_a_wrong_enum_argument_is_refused_before_any_call() -> None:
    """An argument that is not a value of the enum is a validation error; nothing is sent."""
    schema, fake = schema_with({})
    _, errors = await run(schema, "{ gh_issues(state: open) }")
    assert len(errors) == 1
    assert "issue_state" in errors[0]
    assert fake.calls == []


async def test_custom_scalars_pass_values_through_unchanged() -> None:
    """A custom scalar's argument reaches the upstream as given."""
    schema, fake = schema_with({"issues": []})
    await run(
        schema, 'query($h: URI) { gh_issues(home: $h) a: gh_issues(home: {x: [1, "y"]}) }', {"h": "x:/y"}
    )
    assert [call[1]["home"] for call in fake.calls] == ["x:/y", {"x": [1, "y"]}]


async def test_interfaces_and_unions_take_the_concrete_type_from_typename() -> None:
    """`__typename` in the upstream's data picks the type; fragments on each type select its fields."""
    actors = [{"__typename": "gh_Bot", "id": "1", "state": "open"}, {"__typename": "Simple_User", "id": "2"}]
    schema, _ = schema_with({"actors": actors, "node": actors[0]})
    query = (
        "{ gh_actors { __typename ... on gh_Node { id } ... on gh_Bot { state } ...U }"
        ' gh_node(id: "1") { id ... on gh_Bot { state } } }'
        " fragment U on Simple_User { first_name }"
    )
    data, errors = await run(schema, query)
    assert errors == []
    assert data == {
        "gh_actors": [
            {"__typename": "gh_Bot", "id": "1", "state": "OPEN"},
            {"__typename": "Simple_User", "id": "2", "first_name": None},
        ],
        "gh_node": {"id": "1", "state": "OPEN"},
    }


async def test_a_union_with_a_discriminator_maps_its_values_to_types() -> None:
    """An OpenAPI-style discriminator: the property's value, through the mapping, names the type."""
    schema, _ = schema_with({"pet": {"petType": "robot-dog", "id": "7"}})
    data, errors = await run(schema, "{ gh_pet { __typename ... on gh_Bot { id } } }")
    assert (data, errors) == ({"gh_pet": {"__typename": "gh_Bot", "id": "7"}}, [])


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"id": "1"}, "upstream answered an object with no __typename, which names no type of gh_Node"),
        ({"__typename": "Query"}, "upstream answered an object with __typename 'Query', which names no type"),
        ("1", "upstream answered str where an object of type gh_Node was expected"),
    ],
    ids=["no-typename", "not-possible", "not-an-object"],
)
async def test_a_value_naming_no_possible_type_is_a_bad_response(answer: Any, message: str) -> None:
    """The field is null, with an UPSTREAM_BAD_RESPONSE error naming the operation and what it sent."""
    schema, _ = schema_with({"node": answer})
    result = await schema.execute('{ gh_node(id: "1") { id } }', context_value=RequestContext())
    assert result.data == {"gh_node": None}
    assert result.errors is not None
    assert result.errors[0].message.startswith(
        f"gh.node: the answer does not fit the schema at gh_node: {message}"
    )
    assert result.errors[0].extensions == {
        "code": "UPSTREAM_BAD_RESPONSE",
        "integration": "gh",
        "operation": "node",
    }
