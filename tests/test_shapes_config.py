"""Config keys for the shapes real APIs use: field renames (`from:`), param wire names (`name:`), BigInt,
declared enums and unions, and `follow_redirects`; each refused value named by file, line and key."""

from __future__ import annotations

import textwrap

import pytest

from aggregator.config import Config, TypeExpr, loads
from aggregator.config.models import EnumType, UnionType
from aggregator.errors import ConfigError, Problem


def parse(text: str) -> Config:
    return loads(textwrap.dedent(text), "shapes.yaml", env={})


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return list(caught.value.problems)


def rest(params: str, path: str = "/repos/{owner}", method: str = "GET") -> str:
    """One REST operation `api.op` with ``params`` (a flow mapping)."""
    return f"""
    integrations:
      api:
        base_url: http://127.0.0.1:9001
        operations:
          op:
            method: {method}
            path: {path}
            params: {params}
    """


def with_type(fields: str) -> str:
    return f"""
    types:
      Reactions: {fields}
    integrations:
      api:
        base_url: http://127.0.0.1:9001
        operations:
          op: {{path: /r, returns: Reactions}}
    """


def test_field_from_gives_the_upstream_key_of_a_renamed_field() -> None:
    """`from:` in a field's long form records the wire name; other fields read their own name."""
    config = parse(with_type('{plusOne: {type: Int, from: "+1"}, total_count: Int}'))
    reactions = config.types["Reactions"]
    assert reactions.fields["plusOne"] == TypeExpr(name="Int")
    assert (reactions.wire_name("plusOne"), reactions.wire_name("total_count")) == ("+1", "total_count")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param('{plusOne: {type: Int, from: ""}}', "must not be empty", id="empty"),
        pytest.param("{plusOne: {type: Int, from: 1}}", "must be a string", id="not-a-string"),
        pytest.param(
            '{a: {type: Int, from: "+1"}, b: {type: Int, from: "+1"}}',
            "fields 'a' and 'b' both read the upstream key '+1'",
            id="two-fields-one-key",
        ),
        pytest.param(
            "{a: Int, b: {type: Int, from: a}}",
            "fields 'a' and 'b' both read the upstream key 'a'",
            id="rename-onto-another-field",
        ),
    ],
)
def test_bad_field_from_is_refused_with_its_key(fields: str, message: str) -> None:
    """A `from:` that is empty, not text, or shared by two fields of a type is refused where it stands."""
    found = problems_of(with_type(fields))
    assert any(message in p.message and p.key.startswith("types.Reactions.") for p in found), found


@pytest.mark.parametrize(
    ("params", "location", "wire"),
    [
        pytest.param(
            "{apiVersion: {type: String, in: header, name: X-GitHub-Api-Version}}",
            "header",
            "X-GitHub-Api-Version",
            id="header-name",
        ),
        pytest.param(
            "{If_None_Match: {type: String, in: header}}", "header", "If-None-Match", id="header-dash"
        ),
        pytest.param('{state: {type: String, name: "filter[state]"}}', "query", "filter[state]", id="query"),
        pytest.param("{version: {type: String, name: api-version}}", "query", "api-version", id="query-dash"),
        pytest.param("{owner: ID!}", "path", "owner", id="path-own-name"),
        pytest.param("{dark_mode: {type: Boolean, in: cookie}}", "cookie", "dark_mode", id="cookie-own-name"),
        pytest.param("{session: {type: String, in: cookie, name: SID}}", "cookie", "SID", id="cookie-name"),
    ],
)
def test_param_wire_name_is_its_name_key_or_its_graphql_name(params: str, location: str, wire: str) -> None:
    """A param is sent under its `name:`; without one under its own name (`_` as `-` for a header only)."""
    path = "/repos/{owner}" if location == "path" else "/repos"
    config = parse(rest(params, path=path))
    (param,) = config.integrations["api"].operations["op"].params
    assert (param.location, param.wire) == (location, wire)


def test_path_placeholder_may_be_a_wire_name_filled_by_a_renamed_param() -> None:
    """`{repo-name}` in the path is filled by the param whose `name:` it is, placed in the path."""
    config = parse(rest("{repoName: {type: String!, name: repo-name}}", path="/repos/{repo-name}"))
    (param,) = config.integrations["api"].operations["op"].params
    assert (param.name, param.location, param.wire) == ("repoName", "path", "repo-name")


@pytest.mark.parametrize(
    ("params", "path", "key", "message"),
    [
        pytest.param(
            "{x: {type: String, in: header, name: 'X Bad'}}",
            "/r",
            "params.x.name",
            "not a valid HTTP header name",
            id="header-not-a-token",
        ),
        pytest.param(
            "{x: {type: String, in: header, name: Host}}",
            "/r",
            "params.x.name",
            "set by the HTTP client",
            id="connection-header",
        ),
        pytest.param(
            "{Transfer_Encoding: {type: String, in: header}}",
            "/r",
            "params.Transfer_Encoding.in",
            "set by the HTTP client",
            id="connection-header-by-dashes",
        ),
        pytest.param(
            "{x: {type: String, in: cookie, name: 'a=b'}}",
            "/r",
            "params.x.name",
            "not a valid cookie name",
            id="cookie-not-a-token",
        ),
        pytest.param("{x: {type: String, name: ''}}", "/r", "params.x.name", "must not be empty", id="empty"),
        pytest.param(
            "{a: {type: String, name: q}, b: {type: String, name: q}}",
            "/r",
            "params.b.name",
            "params 'a' and 'b' are both sent as query 'q'",
            id="two-params-one-key",
        ),
        pytest.param(
            "{a: {type: String, in: header, name: X-A}, b: {type: String, in: header, name: x-a}}",
            "/r",
            "params.b.name",
            "both sent as header 'x-a'",
            id="header-names-ignore-case",
        ),
        pytest.param(
            "{x: {type: String!, in: path}}",
            "/repos/{repo-name}",
            "path",
            'add params: {someName: {type: "ID!", name: "repo-name"}}',
            id="placeholder-without-its-param",
        ),
    ],
)
def test_bad_param_wire_name_is_refused_with_its_key(params: str, path: str, key: str, message: str) -> None:
    """Header and cookie names must be tokens, headers not connection headers; no two params share one
    wire name."""
    found = problems_of(rest(params, path=path))
    wanted = f"integrations.api.operations.op.{key}"
    assert any(message in p.message and p.key == wanted for p in found), found


def test_graphql_params_take_no_wire_name() -> None:
    """A graphql param is the document's variable: `name:` there says where it belongs instead."""
    found = problems_of("""
        integrations:
          g:
            type: graphql
            base_url: http://127.0.0.1:9001/graphql
            operations:
              op:
                document: "query Q($id: ID!) { node(id: $id) { id } }"
                params: {id: {type: ID!, name: other}}
        """)
    assert [(p.key, p.message.split(";")[0]) for p in found] == [
        ("integrations.g.operations.op.params.id.name", "'name' is for rest params")
    ]


def test_big_int_is_a_scalar_of_types_and_params() -> None:
    """BigInt may type a field, a return and a param."""
    config = parse("""
        types:
          Repo: {id: BigInt!}
        integrations:
          api:
            base_url: http://127.0.0.1:9001
            operations:
              op: {path: "/r/{id}", params: {id: BigInt!}, returns: "[BigInt]"}
        """)
    assert config.types["Repo"].fields["id"] == TypeExpr(name="BigInt", non_null=True)
    assert config.integrations["api"].operations["op"].returns.named == "BigInt"


@pytest.mark.parametrize(
    ("defaults", "own", "expected"),
    [
        pytest.param("", "", True, id="on-by-default"),
        pytest.param("", "follow_redirects: false", False, id="off-on-the-integration"),
        pytest.param("defaults: {follow_redirects: false}", "", False, id="off-in-defaults"),
        pytest.param("defaults: {follow_redirects: false}", "follow_redirects: true", True, id="own-wins"),
    ],
)
def test_follow_redirects_is_read_from_the_integration_then_defaults(
    defaults: str, own: str, expected: bool
) -> None:
    """`follow_redirects` is on unless the integration, or else `defaults:`, turns it off."""
    config = parse(f"""
        {defaults}
        integrations:
          api:
            base_url: http://127.0.0.1:9001
            {own}
            operations: {{op: {{path: /r}}}}
        """)
    assert config.integrations["api"].follow_redirects is expected


def test_follow_redirects_must_be_a_boolean() -> None:
    """`follow_redirects: maybe` is refused at its key."""
    found = problems_of("""
        integrations:
          api:
            base_url: http://127.0.0.1:9001
            follow_redirects: maybe
            operations: {op: {path: /r}}
        """)
    assert [(p.line, p.key) for p in found] == [(5, "integrations.api.follow_redirects")]


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        pytest.param("[open, closed]", [("open", "open"), ("closed", "closed")], id="graphql-names"),
        pytest.param(
            "[sci-fi, '+1', 2fa, 'true']",
            [("sci_fi", "sci-fi"), ("plus_1", "+1"), ("_2fa", "2fa"), ("_true", "true")],
            id="named-by-the-member-rule",
        ),
        pytest.param(
            "[{OPEN: open}, {UPDATED: updated-at}, closed]",
            [("OPEN", "open"), ("UPDATED", "updated-at"), ("closed", "closed")],
            id="names-chosen",
        ),
        pytest.param("[1, 2.5]", [("_1", 1), ("_2_5", 2.5)], id="numbers"),
        pytest.param(
            "[a-b, a_b]", [("a_b_2", "a-b"), ("a_b", "a_b")], id="distinct-wire-values-distinct-names"
        ),
    ],
)
def test_a_declared_enum_names_each_wire_value(enum: str, values: list[tuple[str, object]]) -> None:
    """`{enum: [...]}` is an enum: each item a wire value named by the member rule, or `{NAME: value}`."""
    declared = parse(with_type(f"{{enum: {enum}, description: How it stands.}}")).types["Reactions"]
    assert isinstance(declared, EnumType)
    assert [(v.name, v.value) for v in declared.values] == values
    assert declared.description == "How it stands."


@pytest.mark.parametrize(
    ("enum", "key", "message"),
    [
        pytest.param("[]", "types.Reactions.enum", "an enum needs at least one value", id="empty"),
        pytest.param("[x, x]", "types.Reactions.enum[1]", "the value 'x' is listed twice", id="twice"),
        pytest.param("[{A: x, B: y}]", "types.Reactions.enum[0]", "one {NAME: wire value}", id="two-names"),
        pytest.param("[{'null': x}]", "types.Reactions.enum[0]", "cannot name an enum value", id="bad-name"),
        pytest.param("[[x]]", "types.Reactions.enum[0]", "a string or a number, got a list", id="list-item"),
        pytest.param("[true]", "types.Reactions.enum[0]", "a string or a number, got", id="boolean"),
    ],
)
def test_a_bad_enum_is_refused_with_its_key(enum: str, key: str, message: str) -> None:
    """An empty enum, a value listed twice, a bad chosen name or a value that is no string or number."""
    found = problems_of(with_type(f"{{enum: {enum}}}"))
    assert any(message in p.message and p.key == key for p in found), found


def with_union(union: str, param: str = "String") -> str:
    return f"""
    types:
      Paper: {{pages: Int}}
      Ebook: {{megabytes: Float}}
      Media: {union}
    integrations:
      api:
        base_url: http://127.0.0.1:9001
        operations:
          op: {{path: /r, params: {{p: {param}}}, returns: Media}}
    """


@pytest.mark.parametrize(
    ("union", "expected"),
    [
        pytest.param(
            "{union: [Paper, Ebook]}", (("Paper", "Ebook"), None, {}, True), id="by-typename-or-shape"
        ),
        pytest.param(
            "{union: [Paper, Ebook], discriminator: kind, mapping: {e-book: Ebook}}",
            (("Paper", "Ebook"), "kind", {"e-book": "Ebook"}, False),
            id="discriminator",
        ),
    ],
)
def test_a_declared_union_lists_its_members_and_how_to_tell_them(
    union: str, expected: tuple[object, ...]
) -> None:
    """Without a discriminator a value is told by `__typename` or its keys; with one, by its value."""
    declared = parse(with_union(union)).types["Media"]
    assert isinstance(declared, UnionType)
    assert (declared.types, declared.discriminator, dict(declared.mapping), declared.by_shape) == expected


@pytest.mark.parametrize(
    ("union", "param", "key", "message"),
    [
        pytest.param(
            "{union: [Paper, Pape]}", "String", "types.Media.union[1]", "did you mean 'Paper'", id="unknown"
        ),
        pytest.param("{union: [Paper, Paper]}", "String", "types.Media.union[1]", "listed twice", id="twice"),
        pytest.param("{union: []}", "String", "types.Media.union", "at least one object type", id="empty"),
        pytest.param(
            "{union: [Paper], mapping: {p: Paper}}",
            "String",
            "types.Media.mapping",
            "needs discriminator",
            id="mapping-alone",
        ),
        pytest.param(
            "{union: [Paper], discriminator: k, mapping: {e: Ebook}}",
            "String",
            "types.Media.mapping.e",
            "not an object type of Media",
            id="mapping-to-a-non-member",
        ),
        pytest.param(
            "{union: [Paper]}",
            "Media",
            "integrations.api.operations.op.params.p",
            "cannot take as an argument",
            id="as-a-param",
        ),
    ],
)
def test_a_bad_union_is_refused_with_its_key(union: str, param: str, key: str, message: str) -> None:
    """Members are declared object types, once each; mapping needs a discriminator; a union is no input."""
    found = problems_of(with_union(union, param))
    assert any(message in p.message and p.key == key for p in found), found
