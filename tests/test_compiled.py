"""Compiled execution plans (aggregator/schema/compiled.py): the same results as graphql-core, or no plan.

The heart is differential: generated documents over a config's types, generated upstream answers (right
and wrong shapes, nulls, missing keys, raised upstream errors), run by the plan and by graphql-core's
``execute``, must give the same ``data``, the same errors (formatted, in order) and the same upstream calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import pytest
import strawberry
from graphql import (
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLCompositeType,
    GraphQLField,
    GraphQLFormattedError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    OperationDefinitionNode,
    execute,
    get_named_type,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql import (
    build_schema as build_sdl_schema,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config import (
    Config,
    EnumType,
    EnumValue,
    InterfaceType,
    NamedType,
    ObjectType,
    Operation,
    Param,
    ScalarType,
    TypeExpr,
    UnionType,
    loads,
)
from aggregator.errors import CircuitOpen, UpstreamTimeout
from aggregator.module import IntegrationModule
from aggregator.schema import RequestContext, build_schema, execution
from aggregator.schema.compiled import (
    MAX_VARIANTS,
    CompiledOperation,
    TypeResolver,
    compile_operation,
    operation_resolver,
)
from aggregator.schema.shapes import refine_errors
from aggregator.upstreams.selection import ClientSelection

CONFIG = """
types:
  User:
    id: "ID!"
    name: String
    age: Int
    score: Float
    active: Boolean
    seen: DateTime
    meta: JSON
    tags: "[String!]"
    grid: "[[Int]]"
    address: "Address!"
    friends: "[User]"
    best: User
  Address: {city: String, zip: "String!"}
integrations:
  users:
    base_url: http://127.0.0.1:9/api
    operations:
      getUser: {path: "/users/{id}", params: {id: "ID!"}, returns: User}
      listUsers: {path: /users, params: {limit: Int}, returns: "[User!]"}
      ping: {path: /ping, returns: String}
      createUser: {method: POST, path: /users, params: {input: {type: "User!", in: body}}, returns: User}
      deleteUser: {method: DELETE, path: "/users/{id}", params: {id: "ID!"}, returns: Boolean}
"""


# --- the fake upstreams ----------------------------------------------------------------------------


@dataclass
class FakeUpstreams:
    """Stands in for ``IntegrationModule.call``: answers by operation id, records every call.

    An answer that is an exception is raised; ``hooks`` run (and may await) before an operation answers.
    """

    answers: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hooks: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)

    async def call(
        self,
        integration_id: str,
        operation: str,
        params: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        selection: ClientSelection | None = None,
    ) -> Any:
        self.calls.append((operation, dict(params or {})))
        hook = self.hooks.get(operation)
        if hook is not None:
            await hook()
        answer = self.answers.get(operation)
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Gateway:
    schema: strawberry.Schema
    upstreams: FakeUpstreams

    @property
    def core(self) -> GraphQLSchema:
        return self.schema._schema

    def plan(self, query: str, operation_name: str | None = None) -> CompiledOperation | None:
        document = parse(query)
        operation = get_operation_ast(document, operation_name)
        assert operation is not None
        return compile_operation(self.core, document, operation)


def typed_config() -> Config:
    """CONFIG plus the types importers and GraphQL upstreams add: an enum whose wire values differ from
    its names, a custom scalar, an interface, a union by ``__typename`` and one by a discriminator."""
    config = loads(CONFIG)
    user = config.types["User"]
    assert isinstance(user, ObjectType)
    named = TypeExpr
    extra = {
        "color": named("Color"),
        "site": named("Url"),
        "buddy": named("Actor"),
        "nodes": TypeExpr(of=named("Node")),
    }
    types: dict[str, NamedType] = {
        **config.types,
        "User": replace(user, fields={**user.fields, **extra}, interfaces=("Node",)),
        "Node": InterfaceType("Node", {"id": named("ID", non_null=True), "name": named("String")}),
        "Robot": ObjectType(
            "Robot",
            {
                "id": named("ID", non_null=True),
                "name": named("String"),
                "model": named("Int"),
                "color": named("Color"),
                "owner": named("User"),
            },
            interfaces=("Node",),
        ),
        "Actor": UnionType("Actor", ("User", "Robot")),
        "Thing": UnionType(
            "Thing", ("Robot", "Address"), discriminator="kind", mapping={"bot": "Robot", "place": "Address"}
        ),
        "Color": EnumType(
            "Color",
            (
                EnumValue("RED", "red", description="warm"),
                EnumValue("GREEN", "green"),
                EnumValue("BLUE", "blue", deprecation_reason="use GREEN"),
            ),
        ),
        "Url": ScalarType("Url", specified_by="https://url.spec.whatwg.org/"),
    }
    users = config.integrations["users"]

    def op(oid: str, returns: TypeExpr, *params: Param) -> Operation:
        return Operation(oid, path=f"/{oid}", params=params, returns=returns, field=f"users_{oid}")

    operations = {
        **users.operations,
        "getNode": op("getNode", named("Node"), Param("id", named("ID", non_null=True), "query")),
        "search": op("search", TypeExpr(of=named("Actor")), Param("color", named("Color"), "query")),
        "thing": op("thing", named("Thing")),
    }
    integrations = {"users": replace(users, operations=operations)}
    return replace(config, types=types, integrations=integrations)


def gateway(config: Config | None = None) -> Gateway:
    """The schema built from ``config`` (default: typed_config()), its calls answered by a FakeUpstreams."""
    config = config or typed_config()
    module = IntegrationModule(config)
    upstreams = FakeUpstreams()
    module.call = upstreams.call  # type: ignore[method-assign]
    return Gateway(build_schema(config, module), upstreams)


@pytest.fixture(scope="module")
def gw() -> Gateway:
    return gateway()


@pytest.fixture(autouse=True)
def fresh_upstreams(gw: Gateway) -> None:
    gw.upstreams.answers.clear()
    gw.upstreams.calls.clear()
    gw.upstreams.hooks.clear()


@dataclass
class Outcome:
    data: Any
    errors: list[GraphQLFormattedError]
    calls: list[tuple[str, dict[str, Any]]]


def outcome(gw: Gateway, query: str, result: ExecutionResult) -> Outcome:
    """What a request gave, its errors as the runner reports them (wrong shapes refined, shapes.py)."""
    document = parse(query)
    operation = get_operation_ast(document)
    assert operation is not None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    errors = refine_errors(list(result.errors or ()), gw.core, operation, fragments)
    return Outcome(result.data, [error.formatted for error in errors], list(gw.upstreams.calls))


async def by_graphql_core(gw: Gateway, query: str, variables: dict[str, Any] | None = None) -> Outcome:
    gw.upstreams.calls.clear()
    result = execute(gw.core, parse(query), context_value=RequestContext(), variable_values=variables)
    if not isinstance(result, ExecutionResult):  # only __typename at the root: no await
        result = await result
    return outcome(gw, query, result)


async def by_plan(gw: Gateway, query: str, variables: dict[str, Any] | None = None) -> Outcome:
    gw.upstreams.calls.clear()
    plan = gw.plan(query)
    assert plan is not None, "no plan for a document a plan should run"
    result = await plan.execute(variables, RequestContext(), None)
    assert result is not None
    return outcome(gw, query, result)


async def assert_same(gw: Gateway, query: str, variables: dict[str, Any] | None = None) -> Outcome:
    expected = await by_graphql_core(gw, query, variables)
    assert await by_plan(gw, query, variables) == expected
    return expected


# --- generated documents and answers ---------------------------------------------------------------

MAX_DEPTH = 3
CONDITIONS = ["", "", "", " @skip(if: $c0)", " @include(if: $c1)", " @include(if: true)", " @skip(if: true)"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
# What an upstream may send where something else was declared.
wrong_values = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=5),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["id", "name", "zip"]), st.text(max_size=3), max_size=2),
)
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "ID": st.text(max_size=4) | st.integers(-5, 5),
    "String": st.text(max_size=6),
    "Int": st.integers(-(2**33), 2**33),
    "Float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-5, 5),
    "Boolean": st.booleans(),
    "DateTime": st.sampled_from(["2024-01-02T03:04:05+00:00", "not a date"]),
    "JSON": json_values,
    "Url": json_values,
    # Wire values; a name instead of a wire value is an upstream mistake like any other.
    "Color": st.sampled_from(["red", "green", "blue", "RED"]),
}


def answers_for(schema: GraphQLSchema, type_: GraphQLOutputType, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for ``type_``: mostly the right shape, with nulls and wrong shapes mixed in at every level."""
    nullable = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if depth > MAX_DEPTH:
        return st.none()
    if isinstance(nullable, GraphQLList):
        right: st.SearchStrategy[Any] = st.lists(answers_for(schema, nullable.of_type, depth + 1), max_size=2)
    elif isinstance(nullable, GraphQLObjectType):
        right = object_answers(schema, nullable, depth)
    elif isinstance(nullable, GraphQLInterfaceType | GraphQLUnionType):
        right = abstract_answers(schema, nullable, depth)
    else:
        # Leaves are where most wrong values are met; containers mostly hold what they should.
        return weighted((2, SCALARS[nullable.name]), (1, st.none()), (2, wrong_values))
    return weighted((4, right), (1, st.none()), (1, wrong_values))


def object_answers(schema: GraphQLSchema, type_: GraphQLObjectType, depth: int) -> st.SearchStrategy[Any]:
    """Every key but a few: deep positions are reached, and missing keys still occur."""
    fields = {name: answers_for(schema, f.type, depth + 1) for name, f in type_.fields.items()}
    missing = st.sets(st.sampled_from(sorted(fields)), max_size=3)
    return st.tuples(st.fixed_dictionaries(fields), missing).map(
        lambda drawn: {key: value for key, value in drawn[0].items() if key not in drawn[1]}
    )


def abstract_answers(
    schema: GraphQLSchema, type_: GraphQLInterfaceType | GraphQLUnionType, depth: int
) -> st.SearchStrategy[Any]:
    """An object of one of the possible types, named as the type's resolver reads it: mostly right,
    sometimes naming nothing, a type that is not possible, or not saying at all."""
    resolver = type_.resolve_type
    assert isinstance(resolver, TypeResolver)
    by_name = {name: value for value, name in resolver.mapping.items()}
    tags = [by_name.get(t.name, t.name) for t in schema.get_possible_types(type_)]
    tag = weighted((6, st.sampled_from(tags)), (1, st.sampled_from(["Nope", "Query"])), (1, st.none()))
    objects = st.one_of([object_answers(schema, t, depth) for t in schema.get_possible_types(type_)])
    return st.tuples(objects, tag).map(
        lambda drawn: drawn[0] if drawn[1] is None else {**drawn[0], resolver.key: drawn[1]}
    )


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, drawn in proportion to its weight (st.one_of flattens nested choices)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


@dataclass
class DocumentParts:
    schema: GraphQLSchema
    fragments: list[str] = field(default_factory=list)
    fragment_types: dict[str, str] = field(default_factory=dict)
    variables: set[str] = field(default_factory=set)


def _directive(draw: st.DrawFn, parts: DocumentParts) -> str:
    directive = draw(st.sampled_from(CONDITIONS))
    for name in ("c0", "c1"):
        if f"${name}" in directive:
            parts.variables.add(name)
    return directive


def _related(schema: GraphQLSchema, type_: GraphQLCompositeType) -> list[GraphQLCompositeType]:
    """Types a fragment inside a selection on ``type_`` may be on: itself, and those it overlaps."""
    if isinstance(type_, GraphQLObjectType):
        unions = [t for t in schema.type_map.values() if isinstance(t, GraphQLUnionType) and type_ in t.types]
        return [type_, *type_.interfaces, *unions]
    return [type_, *schema.get_possible_types(type_)]


def _selection_set(
    draw: st.DrawFn,
    parts: DocumentParts,
    type_: GraphQLCompositeType,
    depth: int,
    nesting: int = 0,
) -> str:
    """A selection set on ``type_``: ``depth`` counts objects above it, ``nesting`` fragments around it."""
    fields = {} if isinstance(type_, GraphQLUnionType) else type_.fields
    leaves = sorted(name for name, f in fields.items() if not is_object_like(f.type))
    objects = sorted(name for name, f in fields.items() if is_object_like(f.type))
    kinds = ["leaf", "leaf", "leaf", "typename"] if leaves else ["typename"]
    kinds += ["object", "object"] if objects and depth < MAX_DEPTH else []
    kinds += ["inline", "spread", "inline"] if nesting < 2 else []
    items: list[str] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(kinds))
        if kind == "typename":
            items.append("__typename" + _directive(draw, parts))
        elif kind in ("leaf", "object"):
            name = draw(st.sampled_from(leaves if kind == "leaf" else objects))
            # One alias always names the same field: merged, never conflicting.
            alias = draw(st.sampled_from(["", f"{name}A: ", f"{name}B: "]))
            named = get_named_type(fields[name].type)
            sub = (
                " " + _selection_set(draw, parts, named, depth + 1)
                if isinstance(named, GraphQLCompositeType)
                else ""
            )
            items.append(f"{alias}{name}{_directive(draw, parts)}{sub}")
        elif kind == "inline":
            on = draw(st.sampled_from([None, *_related(parts.schema, type_)]))
            condition = "" if on is None else f" on {on.name}"
            body = _selection_set(draw, parts, on or type_, depth, nesting + 1)
            items.append(f"...{condition}{_directive(draw, parts)} {body}")
        else:
            on = draw(st.sampled_from(_related(parts.schema, type_)))
            same_type = [name for name, fragment_on in parts.fragment_types.items() if fragment_on == on.name]
            reuse: bool = draw(st.booleans()) if same_type else False
            if reuse:
                name = draw(st.sampled_from(same_type))
            else:
                index = len(parts.fragments)
                name = f"F{index}"
                parts.fragments.append("")  # the name is taken before the body, which may add fragments
                body = _selection_set(draw, parts, on, depth, nesting + 1)
                parts.fragments[index] = f"fragment {name} on {on.name} {body}"
                # Known only now, so that no fragment spreads itself.
                parts.fragment_types[name] = on.name
            items.append(f"...{name}{_directive(draw, parts)}")
    return "{ " + " ".join(items) + " }"


def is_object_like(type_: GraphQLOutputType) -> bool:
    return isinstance(get_named_type(type_), GraphQLCompositeType)


ROOT_QUERIES = {
    "users_getUser": ["(id: $id)", '(id: "7")'],
    "users_listUsers": ["", "(limit: 3)", "(limit: $limit)"],
    "users_ping": [""],
    "users_getNode": ["(id: $id)"],
    "users_search": ["", "(color: RED)", "(color: $color)"],
    "users_thing": [""],
}
ROOT_MUTATIONS = {
    "users_createUser": ['(input: {id: "1", name: "n", address: {zip: "z"}})', "(input: $input)"],
    "users_deleteUser": ["(id: $id)"],
}
VARIABLE_TYPES = {
    "id": "ID!",
    "limit": "Int",
    "input": "UserInput!",
    "color": "Color",
    "c0": "Boolean!",
    "c1": "Boolean!",
}


@st.composite
def requests(draw: st.DrawFn, schema: GraphQLSchema) -> tuple[str, dict[str, Any]]:
    """A valid operation over the config's types, and variable values for it."""
    mutation = draw(st.booleans())
    roots = ROOT_MUTATIONS if mutation else ROOT_QUERIES
    root_type = schema.mutation_type if mutation else schema.query_type
    assert root_type is not None
    parts = DocumentParts(schema)
    items: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from([*sorted(roots), *sorted(roots), "__typename"]))
        if name == "__typename":
            items.append("__typename" + _directive(draw, parts))
            continue
        args = draw(st.sampled_from(roots[name]))
        parts.variables.update(v for v in ("id", "limit", "input", "color") if f"${v}" in args)
        # Each root alias has one argument list: merged where repeated, never conflicting.
        alias = f"{name}_{roots[name].index(args)}: "
        named = get_named_type(root_type.fields[name].type)
        sub = " " + _selection_set(draw, parts, named, 1) if isinstance(named, GraphQLCompositeType) else ""
        items.append(f"{alias}{name}{args}{_directive(draw, parts)}{sub}")
    definitions = ", ".join(f"${v}: {VARIABLE_TYPES[v]}" for v in sorted(parts.variables))
    head = f"{'mutation' if mutation else 'query'} Op{f'({definitions})' if definitions else ''}"
    query = " ".join([f"{head} {{ {' '.join(items)} }}", *parts.fragments])
    values = {
        "id": st.text(min_size=1, max_size=3) | st.integers(0, 9),
        "limit": st.none() | st.integers(0, 5),
        "input": st.just({"id": "1", "address": {"zip": "z"}}),
        "color": st.sampled_from([None, "RED", "GREEN", "BLUE"]),
        "c0": st.booleans(),
        "c1": st.booleans(),
    }
    return query, {name: draw(values[name]) for name in parts.variables}


@cache  # built once: making these strategies costs more than drawing from them
def upstream_answers(schema: GraphQLSchema) -> st.SearchStrategy[dict[str, Any]]:
    """An answer (or a raised upstream error) per operation of the config."""
    failures = st.sampled_from(
        [
            CircuitOpen("breaker open", integration="users", operation="op"),
            UpstreamTimeout("no answer in 5s", integration="users", operation="op", attempts=2),
        ]
    )
    fields: dict[str, GraphQLField] = {**schema.query_type.fields, **schema.mutation_type.fields}  # type: ignore[union-attr]
    operations = {name.removeprefix("users_"): f for name, f in fields.items() if name.startswith("users_")}
    return st.fixed_dictionaries(
        {
            operation: weighted((4, answers_for(schema, f.type)), (1, failures))
            for operation, f in operations.items()
        }
    )


GENERATED = settings(
    max_examples=500,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@settings(GENERATED)
@given(data=st.data())
def test_generated_documents_and_answers_give_what_graphql_core_gives(
    gw: Gateway, data: st.DataObject
) -> None:
    """Any valid document over the config's types, any upstream answer: the same data, errors and calls;
    every error has a code (a value of the wrong shape is UPSTREAM_BAD_RESPONSE naming its operation)."""
    query, variables = data.draw(requests(gw.core))
    assert validate(gw.core, parse(query), specified_rules) == [], query
    gw.upstreams.answers.clear()
    gw.upstreams.answers.update(data.draw(upstream_answers(gw.core)))
    same = asyncio.run(assert_same(gw, query, variables))
    for error in same.errors:
        extensions = error.get("extensions") or {}
        assert extensions.get("code") in {"UPSTREAM_BAD_RESPONSE", "CIRCUIT_OPEN", "UPSTREAM_TIMEOUT"}, error
        if extensions["code"] == "UPSTREAM_BAD_RESPONSE":
            roots = {**gw.core.query_type.fields, **gw.core.mutation_type.fields}  # type: ignore[union-attr]
            assert extensions["integration"] == "users"
            assert f"users_{extensions['operation']}" in roots


WRONG_SHAPES = '{ u: users_getUser(id: "1") { id age tags address { zip } friends { id } } }'
RIGHT = {"id": "1", "address": {"zip": "z"}}


@pytest.mark.parametrize(
    ("answer", "path", "says"),
    [
        pytest.param(
            {**RIGHT, "address": "London"}, ["u", "address"], "value of type 'Address'", id="text-object"
        ),
        pytest.param({**RIGHT, "tags": {"a": "b"}}, ["u", "tags"], "Expected Iterable", id="object-for-list"),
        pytest.param(
            {**RIGHT, "friends": ["x"]}, ["u", "friends", 0], "value of type 'User'", id="text-item"
        ),
        pytest.param(
            {**RIGHT, "age": 3_000_000_000}, ["u", "age"], "declare the field BigInt", id="int-range"
        ),
        pytest.param({**RIGHT, "age": "old"}, ["u", "age"], "Int cannot represent", id="text-for-int"),
        pytest.param(
            {**RIGHT, "address": {}}, ["u", "address", "zip"], "Cannot return null", id="null-non-null"
        ),
    ],
)
async def test_a_value_of_the_wrong_shape_is_an_upstream_bad_response_at_its_path(
    gw: Gateway, answer: dict[str, Any], path: list[str | int], says: str
) -> None:
    """Both executors null a wrong-shaped value with one UPSTREAM_BAD_RESPONSE at its exact path."""
    gw.upstreams.answers["getUser"] = answer
    (error,) = (await assert_same(gw, WRONG_SHAPES)).errors
    assert error["path"] == path
    assert error.get("extensions") == {
        "code": "UPSTREAM_BAD_RESPONSE",
        "integration": "users",
        "operation": "getUser",
    }
    assert error["message"].startswith("users.getUser: the answer does not fit the schema at ")
    assert says in error["message"]


# --- focused cases ----------------------------------------------------------------------------------

TWO_FIELDS = (
    "query Q($id: ID!, $limit: Int) { users_getUser(id: $id) { id } users_listUsers(limit: $limit) { id } }"
)
USER = {"id": "1", "name": "Ada", "address": {"zip": "123"}, "tags": ["a"], "friends": [{"id": "2"}, None]}


async def test_variables_are_coerced_as_graphql_core_coerces_them(gw: Gateway) -> None:
    """An ID given as a number reaches the upstream as a string; an omitted nullable argument stays out."""
    gw.upstreams.answers["getUser"] = USER
    query = TWO_FIELDS
    same = await assert_same(gw, query, {"id": 7})
    assert same.calls == [("getUser", {"id": "7"}), ("listUsers", {})]


@pytest.mark.parametrize(
    "variables",
    [{}, {"id": None}, {"id": ["1"]}, {"id": "1", "limit": "many"}, {"id": "1", "limit": 2**40}],
    ids=["missing", "null", "list", "wrong-type", "out-of-range"],
)
async def test_wrong_variables_are_refused_as_graphql_core_refuses_them(
    gw: Gateway, variables: dict[str, Any]
) -> None:
    """Variables that do not fit their definitions: no data, graphql-core's errors, no upstream call."""
    query = TWO_FIELDS
    same = await assert_same(gw, query, variables)
    assert same.data is None
    assert same.errors
    assert same.calls == []


async def test_mutation_fields_run_one_after_the_other_in_document_order(gw: Gateway) -> None:
    """The second mutation field's upstream call starts only after the first one's answer."""
    events: list[str] = []

    def answering(name: str) -> Callable[[], Awaitable[None]]:
        async def hook() -> None:
            events.append(f"{name} started")
            for _ in range(3):  # hands the loop to anything else that could run meanwhile
                await asyncio.sleep(0)
            events.append(f"{name} answered")

        return hook

    gw.upstreams.hooks.update(deleteUser=answering("delete"), createUser=answering("create"))
    plan = gw.plan(
        'mutation { a: users_deleteUser(id: "1")'
        ' b: users_createUser(input: {id: "2", address: {zip: "z"}}) { id } }'
    )
    assert plan is not None
    await plan.execute(None, RequestContext(), None)
    assert events == ["delete started", "delete answered", "create started", "create answered"]


async def test_query_root_fields_are_started_together(gw: Gateway) -> None:
    """A query's first root field can wait for something only its second one does: they run concurrently."""
    second_started = asyncio.Event()

    async def first() -> None:
        for _ in range(20):  # bounded, so that running them one after the other fails instead of hanging
            if second_started.is_set():
                return
            await asyncio.sleep(0)
        raise AssertionError("the second root field never started while the first was waiting")

    async def second() -> None:
        second_started.set()

    gw.upstreams.hooks.update(getUser=first, listUsers=second)
    gw.upstreams.answers.update(getUser=USER, listUsers=[USER])
    plan = gw.plan('{ users_getUser(id: "1") { id } users_listUsers { id } }')
    assert plan is not None
    result = await plan.execute(None, RequestContext(), None)
    assert result is not None
    assert result.errors is None
    assert result.data == {"users_getUser": {"id": "1"}, "users_listUsers": [{"id": "1"}]}


async def test_resolvers_see_the_request_context_and_their_path(gw: Gateway) -> None:
    """The operation resolver gets a GraphQLResolveInfo with the request's context and the field's path."""
    seen: list[Any] = []
    resolver = gw.core.query_type.fields["users_ping"].resolve  # type: ignore[union-attr]
    context = RequestContext(headers={"x-trace": "1"})

    async def spy(root: Any, info: Any, **args: Any) -> Any:
        seen.append((info.context, info.path.as_list(), info.path.typename))
        return await resolver(root, info, **args)

    gw.core.query_type.fields["users_ping"].resolve = operation_resolver(spy)  # type: ignore[union-attr]
    try:
        plan = gw.plan("{ p: users_ping }")
        assert plan is not None
        await plan.execute(None, context, None)
    finally:
        gw.core.query_type.fields["users_ping"].resolve = resolver  # type: ignore[union-attr]
    assert seen == [(context, ["p"], "Query")]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"a": True, "b": False}, {"users_getUser": {"id": "1", "name": "Ada"}}),
        ({"a": False, "b": False}, {"users_getUser": {"name": "Ada"}}),
        ({"a": False, "b": True}, {"users_getUser": {}}),
    ],
)
async def test_skip_and_include_follow_the_request_variables(
    gw: Gateway, flags: dict[str, bool], expected: dict[str, Any]
) -> None:
    """One document, several @skip/@include values: each request gets the fields its values select."""
    gw.upstreams.answers["getUser"] = USER
    query = (
        "query Q($a: Boolean!, $b: Boolean!) {"
        ' users_getUser(id: "1") { id @include(if: $a) ...F @skip(if: $b) } }'
        " fragment F on User { name }"
    )
    same = await assert_same(gw, query, flags)
    assert same.data == expected


async def test_a_skip_variable_graphql_core_refuses_makes_the_plan_hand_the_request_back(gw: Gateway) -> None:
    """An explicit null for @skip's `if` is graphql-core's error to report: the plan runs nothing."""
    query = 'query Q($s: Boolean = false) { users_getUser(id: "1") @skip(if: $s) { id } }'
    plan = gw.plan(query)
    assert plan is not None
    assert await plan.execute({"s": None}, RequestContext(), None) is None
    assert gw.upstreams.calls == []


async def test_beyond_the_kept_variants_new_skip_combinations_go_to_graphql_core(gw: Gateway) -> None:
    """Plans are kept for MAX_VARIANTS combinations of @skip/@include values; further ones get None."""
    names = [f"v{i}" for i in range(MAX_VARIANTS.bit_length())]
    query = (
        f"query Q({', '.join(f'${n}: Boolean!' for n in names)}) {{"
        f" {' '.join(f'{n}: users_ping @skip(if: ${n})' for n in names)} }}"
    )
    plan = gw.plan(query)
    assert plan is not None
    combinations = [{n: bool(k >> i & 1) for i, n in enumerate(names)} for k in range(MAX_VARIANTS + 1)]
    results = [await plan.execute(values, RequestContext(), None) for values in combinations]
    assert all(result is not None for result in results[:MAX_VARIANTS])
    assert results[MAX_VARIANTS] is None


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { queryType { name } } }",
        '{ __type(name: "User") { name } }',
        '{ users_getUser(id: "1") { id } __type(name: "User") { name } }',
        "{ integrationStats { integrationId } }",
        '{ users_getUser(id: "1") { id } integrationStats @skip(if: true) { integrationId } }',
        "subscription { users_ping }",
        '{ users_getUser(id: "1") { ... @defer { id } } }',
        "{ users_listUsers @stream(initialCount: 1) { id } }",
        '{ users_getUser(id: "1") @unknown { id } }',
        "query Q @unknown { users_ping }",
        '{ users_getUser(id: "1") { ...F } } fragment F($x: Int) on User { id }',
    ],
    ids=[
        "__schema",
        "__type",
        "__type-beside-ours",
        "integrationStats",
        "integrationStats-skipped",
        "subscription",
        "defer",
        "stream",
        "field-directive",
        "operation-directive",
        "fragment-variables",
    ],
)
def test_what_a_plan_cannot_run_gets_no_plan(gw: Gateway, query: str) -> None:
    """Introspection, Strawberry's own fields, subscriptions and other directives are graphql-core's."""
    document = parse(query, experimental_fragment_arguments=True)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    assert compile_operation(gw.core, document, operation) is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('{ __type(name: "Address") { name } }', {"__type": {"name": "Address"}}),
        ('{ p: users_ping __type(name: "Address") { name } }', {"p": "pong", "__type": {"name": "Address"}}),
        (
            '{ integrationStats(id: "users") { integrationId } }',
            {"integrationStats": [{"integrationId": "users"}]},
        ),
    ],
)
async def test_requests_without_a_plan_are_still_answered_by_graphql_core(
    gw: Gateway, query: str, expected: dict[str, Any]
) -> None:
    """The schema's runner falls back to graphql-core where there is no plan: the answer is right."""
    gw.upstreams.answers["ping"] = "pong"
    result = await gw.schema.execute(query, context_value=RequestContext())
    assert result.errors is None
    assert result.data == expected


async def test_a_field_whose_resolver_is_not_ours_falls_back_to_graphql_core() -> None:
    """A config type's field given some other resolver: no plan, and that resolver's answer is used."""
    other = gateway()
    address = other.core.type_map["Address"]
    assert isinstance(address, GraphQLObjectType)
    address.fields["city"].resolve = lambda source, info: "from elsewhere"
    other.upstreams.answers["getUser"] = USER
    query = '{ users_getUser(id: "1") { address { city zip } } }'
    assert other.plan(query) is None
    result = await other.schema.execute(query, context_value=RequestContext())
    assert result.errors is None
    assert result.data == {"users_getUser": {"address": {"city": "from elsewhere", "zip": "123"}}}


def test_a_field_of_an_abstract_type_gets_no_plan() -> None:
    """Interfaces and unions the gateway did not build (no TypeResolver) are run by graphql-core."""
    schema = build_sdl_schema(
        "interface Node { id: ID } type Thing implements Node { id: ID } type Query { node: Node }"
    )

    @operation_resolver
    async def node(_root: Any, _info: Any) -> Any:
        return {"id": "1"}

    schema.query_type.fields["node"].resolve = node  # type: ignore[union-attr]
    document = parse("{ node { id } }")
    operation = get_operation_ast(document)
    assert operation is not None
    assert compile_operation(schema, document, operation) is None


async def test_the_runner_compiles_each_operation_of_a_document_once(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated requests reuse the plan made for their document and operation name."""
    made: list[str | None] = []

    def counting(schema: GraphQLSchema, document: Any, operation: OperationDefinitionNode) -> Any:
        made.append(operation.name.value if operation.name else None)
        return compile_operation(schema, document, operation)

    monkeypatch.setattr(execution, "compile_operation", counting)
    gw.upstreams.answers["ping"] = "pong"
    query = "query A { a: users_ping } query B { b: users_ping }"
    for name in ["A", "B", "A", "B", "A"]:
        result = await gw.schema.execute(query, operation_name=name, context_value=RequestContext())
        assert result.errors is None
    assert made == ["A", "B"]


async def test_the_runner_answers_from_the_plan_as_graphql_core_would(gw: Gateway) -> None:
    """Through the schema's execute: the plan's data and errors, as graphql-core would give them."""
    gw.upstreams.answers.update(
        getUser=CircuitOpen("open", integration="users", operation="getUser"), ping="pong"
    )
    query = '{ u: users_getUser(id: "1") { id } p: users_ping }'
    expected = await by_graphql_core(gw, query)
    result = await gw.schema.execute(query, context_value=RequestContext())
    assert result.data == expected.data == {"u": None, "p": "pong"}
    assert [e.formatted for e in result.errors or ()] == expected.errors
    assert expected.errors[0]["extensions"]["code"] == "CIRCUIT_OPEN"


# --- joined fields ---------------------------------------------------------------------------------

JOIN_CONFIG = """
types:
  Person:
    id: "ID!"
    name: String
    nick: "String!"
    posts:
      type: "[Article!]"
      args: {first: Int}
      resolve: {operation: blog.byAuthor, args: {id: $parent.id, limit: $args.first}}
  Article:
    id: "ID!"
    title: String
    authorId: ID
    author:
      type: Person
      resolve: {operation: blog.person, args: {id: $parent.authorId}}
      batch: {operation: blog.people, arg: ids, key: id}
    editor:
      type: Person
      resolve: {operation: blog.person, args: {id: $parent.authorId}}
integrations:
  blog:
    base_url: http://127.0.0.1:9/api
    operations:
      articles: {path: /articles, returns: "[Article]"}
      person: {path: "/people/{id}", params: {id: "ID!"}, returns: Person}
      people: {path: /people, params: {ids: "[ID!]!"}, returns: "[Person]"}
      byAuthor: {path: "/people/{id}/articles", params: {id: "ID!", limit: Int}, returns: "[Article]"}
"""
ARTICLES = [
    {"id": "1", "title": "one", "authorId": "7"},
    {"id": "2", "title": "two", "authorId": "8"},
    {"id": "3", "title": "three", "authorId": "7"},
    {"id": "4", "title": "keyless"},
]
PEOPLE = [{"id": "7", "name": "Ada", "nick": "a"}, {"id": "8", "name": "Bob", "nick": None}]


@pytest.fixture(scope="module")
def joined() -> Gateway:
    return gateway(loads(JOIN_CONFIG))


@pytest.mark.parametrize(
    ("answers", "query"),
    [
        pytest.param({"people": PEOPLE}, "{ blog_articles { id author { id name } } }", id="batched"),
        pytest.param({"people": PEOPLE[:1]}, "{ blog_articles { author { name } } }", id="missing-key"),
        pytest.param({"people": PEOPLE}, "{ blog_articles { author { nick } } }", id="null-in-non-null"),
        pytest.param(
            {"people": UpstreamTimeout("slow", integration="blog", operation="people")},
            "{ blog_articles { title author { name } } }",
            id="failed-batch",
        ),
        pytest.param({"people": {"id": "7"}}, "{ blog_articles { author { name } } }", id="not-a-list"),
        pytest.param({"person": PEOPLE[0]}, "{ blog_articles { editor { name } } }", id="single"),
        pytest.param(
            {"person": CircuitOpen("open", integration="blog", operation="person")},
            "{ blog_articles { id editor { name } } }",
            id="failed-single",
        ),
        pytest.param(
            {"people": PEOPLE, "byAuthor": ARTICLES[:2]},
            "{ blog_articles { author { name posts(first: 2) { title author { name } } } } }",
            id="nested-cycle",
        ),
        pytest.param(
            {"person": PEOPLE[1], "byAuthor": [None]},
            "{ blog_articles { a: editor { posts { id } } b: editor { name } } }",
            id="null-item-in-joined-list",
        ),
    ],
)
async def test_joined_fields_complete_as_graphql_core_completes_them(
    joined: Gateway, answers: dict[str, Any], query: str
) -> None:
    """A plan runs requests with joined fields, with graphql-core's data, errors and calls."""
    joined.upstreams.answers.clear()
    joined.upstreams.answers.update(articles=ARTICLES, **answers)
    assert joined.plan(query) is not None
    await assert_same(joined, query)


async def test_errors_below_a_shared_joined_call_are_the_same_set(joined: Gateway) -> None:
    """Parents sharing one memoised call: graphql-core orders their errors by which shared call ends
    first, a plan by path; the data, calls and errors are the same."""
    joined.upstreams.answers.clear()
    joined.upstreams.answers.update(articles=ARTICLES, people=PEOPLE, byAuthor=ARTICLES[:2])
    query = "{ blog_articles { author { posts(first: 2) { author { nick } } } } }"
    expected = await by_graphql_core(joined, query)
    found = await by_plan(joined, query)
    assert (found.data, found.calls) == (expected.data, expected.calls)
    assert sorted(map(str, found.errors)) == sorted(map(str, expected.errors))
    assert len(found.errors) == 3


async def test_a_plan_makes_one_batch_for_a_level_of_parents(joined: Gateway) -> None:
    """The keys of every parent of one level go in one call, each key once."""
    joined.upstreams.answers.clear()
    joined.upstreams.answers.update(articles=ARTICLES, people=PEOPLE)
    found = await by_plan(joined, "{ blog_articles { author { name } } }")
    assert found.calls == [("articles", {}), ("people", {"ids": ["7", "8"]})]
