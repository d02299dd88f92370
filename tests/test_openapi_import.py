"""The OpenAPI import checked field by field: small documents written here, each schema construct one
case, read through `openapi:` into the GraphQL schema the gateway serves (its SDL, rebuilt by
graphql-core), and the operations' params as the REST upstream will send them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import graphql
import pytest
from graphql import GraphQLEnumType, GraphQLObjectType, GraphQLSchema, GraphQLUnionType
from servers import closed_port_url, serve_asgi
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from aggregator.config import Config, Operation, loads
from aggregator.errors import ConfigError, Problem
from aggregator.module import IntegrationModule
from aggregator.schema import build_schema

OPENAPI = Path(__file__).resolve().parent / "openapi"


def document(
    paths: dict[str, Any], schemas: dict[str, Any] | None = None, version: str = "3.0.3"
) -> dict[str, Any]:
    return {
        "openapi": version,
        "info": {"title": "t", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas or {}},
    }


def answering(
    schema: dict[str, Any], schemas: dict[str, Any] | None = None, version: str = "3.0.3"
) -> dict[str, Any]:
    """A document with one operation, `GET /thing` (getThing), whose 200 answer has ``schema``."""
    response = {"description": "ok", "content": {"application/json": {"schema": schema}}}
    operation = {"operationId": "getThing", "responses": {"200": response}}
    return document({"/thing": {"get": operation}}, schemas, version)


def load(tmp_path: Path, doc: dict[str, Any], extra: str = "") -> Config:
    (tmp_path / "api.json").write_text(json.dumps(doc))
    text = f"""
    integrations:
      api:
        base_url: http://127.0.0.1:9/v1
        openapi: api.json
        {extra}
    """
    return loads(textwrap.dedent(text), str(tmp_path / "gateway.yaml"), env={}, base_dir=tmp_path)


def served(config: Config) -> GraphQLSchema:
    """The schema as clients see it: the gateway's SDL, rebuilt."""
    return graphql.build_schema(build_schema(config, IntegrationModule(config)).as_str())


def returned(tmp_path: Path, schema: dict[str, Any], **kwargs: Any) -> tuple[str, GraphQLSchema]:
    gql = served(load(tmp_path, answering(schema, **kwargs)))
    assert gql.query_type is not None
    return str(gql.query_type.fields["api_getThing"].type), gql


def fields(gql: GraphQLSchema, type_name: str) -> dict[str, str]:
    found = gql.type_map[type_name]
    assert isinstance(found, GraphQLObjectType)
    return {name: str(f.type) for name, f in found.fields.items()}


def problems_of(tmp_path: Path, doc: dict[str, Any], extra: str = "") -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, doc, extra)
    return list(caught.value.problems)


OBJECT = {"type": "object", "properties": {"a": {"type": "string"}}}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "String"),
        ({"type": "string", "format": "date-time"}, "DateTime"),
        ({"type": "string", "format": "binary"}, "String"),
        ({"type": "integer"}, "Int"),
        ({"type": "integer", "format": "int32", "maximum": 100}, "Int"),
        ({"type": "integer", "format": "int64"}, "BigInt"),
        ({"type": "integer", "maximum": 2**31}, "BigInt"),
        ({"type": "integer", "minimum": -(2**31) - 1}, "BigInt"),
        ({"type": "number"}, "Float"),
        ({"type": "boolean"}, "Boolean"),
        ({"type": "array", "items": {"type": "integer", "format": "int64"}}, "[BigInt]"),
        ({"type": "array"}, "[JSON]"),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "JSON"),
        ({"type": "object"}, "JSON"),
        ({}, "JSON"),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "JSON"),
        ({"oneOf": [OBJECT, {"type": "string"}]}, "JSON"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "String"),
        ({"type": "string", "nullable": True}, "String"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else value,
)
def test_a_schema_maps_to_its_graphql_type(tmp_path: Path, schema: dict[str, Any], expected: str) -> None:
    """Scalars by type and format, lists by items, and JSON for whatever has no fixed shape."""
    assert returned(tmp_path, schema)[0] == expected


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": ["string", "null"]}, "String"),
        ({"type": ["integer", "null"], "format": "int64"}, "BigInt"),
        ({"type": ["string", "integer"]}, "JSON"),
        ({"type": "string", "const": "paper"}, "String"),
    ],
    ids=json.dumps,
)
def test_openapi_31_type_arrays_map_like_their_non_null_type(
    tmp_path: Path, schema: dict[str, Any], expected: str
) -> None:
    """3.1 writes nullability as a type array with "null"; several other types are JSON."""
    assert returned(tmp_path, schema, version="3.1.0")[0] == expected


def test_a_component_object_becomes_a_type_named_after_it(tmp_path: Path) -> None:
    """`#/components/schemas/full-repository` becomes `full_repository`, every field nullable."""
    schema = {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
    }
    result, gql = returned(
        tmp_path, {"$ref": "#/components/schemas/full-repository"}, schemas={"full-repository": schema}
    )
    assert result == "full_repository"
    assert fields(gql, "full_repository") == {"id": "Int", "name": "String"}


def test_an_inline_object_is_named_after_its_operation_and_property(tmp_path: Path) -> None:
    """The answer's inline object is `<operationId>_response`; an inline property object `<Type>_<field>`."""
    schema = {
        "type": "object",
        "properties": {"owner": {"type": "object", "properties": {"login": {"type": "string"}}}},
    }
    result, gql = returned(tmp_path, schema)
    assert result == "getThing_response"
    assert fields(gql, "getThing_response") == {"owner": "getThing_response_owner"}
    assert fields(gql, "getThing_response_owner") == {"login": "String"}


@pytest.mark.parametrize(
    ("wires", "names"),
    [
        (["+1", "-1"], ["plus_1", "minus_1"]),
        (["created-at", "@type", "2fa", "__meta"], ["created_at", "_type", "_2fa", "_meta"]),
        (["a-b", "a_b"], ["a_b_2", "a_b"]),
        (["a.b", "a-b"], ["a_b", "a_b_2"]),
    ],
    ids=str,
)
def test_property_names_become_distinct_graphql_names_that_read_their_wire_names(
    tmp_path: Path, wires: list[str], names: list[str]
) -> None:
    """Signs are spelled out, other characters become _, and a taken name gets _2: never a collision."""
    schema = {"type": "object", "properties": {wire: {"type": "integer"} for wire in wires}}
    config = load(tmp_path, answering(schema))
    thing = config.types["getThing_response"]
    assert list(thing.fields) == sorted(names, key=lambda n: names.index(n))
    assert {name: thing.wire_name(name) for name in names} == dict(zip(names, wires, strict=True))


def test_all_of_merges_the_properties_of_its_parts(tmp_path: Path) -> None:
    """allOf of a component and an inline part is one type with the fields of both."""
    schemas = {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}}}
    schema = {
        "allOf": [
            {"$ref": "#/components/schemas/Base"},
            {"type": "object", "properties": {"extra": {"type": "string"}}},
        ]
    }
    result, gql = returned(tmp_path, schema, schemas=schemas)
    assert fields(gql, result) == {"id": "Int", "extra": "String"}


def test_all_of_of_one_reference_is_that_type(tmp_path: Path) -> None:
    """The common `allOf: [$ref]` wrapper (to add nullable or a description) is the referred type."""
    schemas = {"Base": OBJECT}
    result, _ = returned(
        tmp_path, {"allOf": [{"$ref": "#/components/schemas/Base"}], "nullable": True}, schemas=schemas
    )
    assert result == "Base"


def test_a_recursive_schema_refers_to_its_own_type(tmp_path: Path) -> None:
    """A tree whose children are trees is one type with a list of itself."""
    schemas = {
        "Node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
            },
        }
    }
    result, gql = returned(tmp_path, {"$ref": "#/components/schemas/Node"}, schemas=schemas)
    assert fields(gql, result) == {"name": "String", "children": "[Node]"}


def test_a_string_enum_becomes_an_enum_with_sanitized_values(tmp_path: Path) -> None:
    """Enum values keep their names where they are GraphQL names; others follow the member rule."""
    schemas = {"State": {"type": "string", "enum": ["open", "closed", "sci-fi", "true"]}}
    result, gql = returned(tmp_path, {"$ref": "#/components/schemas/State"}, schemas=schemas)
    enum = gql.type_map[result]
    assert isinstance(enum, GraphQLEnumType)
    assert list(enum.values) == ["open", "closed", "sci_fi", "_true"]


def test_one_of_objects_becomes_a_union_of_their_types(tmp_path: Path) -> None:
    """oneOf (or anyOf) whose options are all objects is a union of their object types."""
    schemas = {
        "Paper": {"type": "object", "properties": {"pages": {"type": "integer"}}},
        "Ebook": {"type": "object", "properties": {"megabytes": {"type": "number"}}},
    }
    refs = [{"$ref": "#/components/schemas/Paper"}, {"$ref": "#/components/schemas/Ebook"}]
    for key in ("oneOf", "anyOf"):
        result, gql = returned(tmp_path, {key: refs}, schemas=schemas)
        union = gql.type_map[result]
        assert isinstance(union, GraphQLUnionType)
        assert [t.name for t in union.types] == ["Paper", "Ebook"]


def test_a_component_name_that_is_taken_is_prefixed_with_the_integration(tmp_path: Path) -> None:
    """A component named like a type of `types:` (or a scalar) becomes `<integration>_<Name>`."""
    (tmp_path / "api.json").write_text(
        json.dumps(answering({"$ref": "#/components/schemas/User"}, {"User": OBJECT}))
    )
    text = """
    types:
      User: {id: ID}
    integrations:
      api: {base_url: http://127.0.0.1:9/v1, openapi: api.json}
    """
    config = loads(textwrap.dedent(text), str(tmp_path / "gateway.yaml"), env={}, base_dir=tmp_path)
    assert config.integrations["api"].operations["getThing"].returns.name == "api_User"
    assert list(config.types["api_User"].fields) == ["a"]


def operation(config: Config, oid: str) -> Operation:
    return config.integrations["api"].operations[oid]


PARAMS_DOC = document(
    {
        "/items/{item-id}": {
            "parameters": [
                {
                    "name": "item-id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "format": "int64"},
                }
            ],
            "get": {
                "operationId": "items/get",
                "parameters": [
                    {"name": "ids", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
                    {
                        "name": "tags",
                        "in": "query",
                        "explode": False,
                        "schema": {"type": "array", "items": {"type": "string"}},
                    },
                    {
                        "name": "filter",
                        "in": "query",
                        "style": "deepObject",
                        "schema": {"type": "object", "additionalProperties": True},
                    },
                    {"name": "X-Api-Version", "in": "header", "required": True, "schema": {"type": "string"}},
                    {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                    {"name": "X-Api-Version", "in": "cookie", "schema": {"type": "string"}},
                ],
                "responses": {"204": {"description": "none"}},
            },
        }
    }
)


def test_params_keep_their_wire_names_location_and_style(tmp_path: Path) -> None:
    """Path, query, header and cookie params keep wire name and style; required ones are non-null; a
    wire name used in two places gets the place appended."""
    op = operation(load(tmp_path, PARAMS_DOC), "items/get")
    assert [(p.name, str(p.type), p.location, p.wire, p.style, p.explode) for p in op.params] == [
        ("item_id", "BigInt!", "path", "item-id", "simple", False),
        ("ids", "[Int]", "query", "ids", "form", True),
        ("tags", "[String]", "query", "tags", "form", False),
        ("filter", "JSON", "query", "filter", "deepObject", False),
        ("X_Api_Version", "String!", "header", "X-Api-Version", "simple", False),
        ("session", "String", "cookie", "session", "simple", False),
        ("X_Api_Version_cookie", "String", "cookie", "X-Api-Version", "simple", False),
    ]
    assert (op.method, op.path, op.kind, op.field) == ("GET", "/items/{item-id}", "query", "api_items_get")


def test_a_204_answer_returns_boolean(tmp_path: Path) -> None:
    """An operation whose success has no body returns Boolean (true on success)."""
    assert operation(load(tmp_path, PARAMS_DOC), "items/get").returns.name == "Boolean"


def test_a_json_request_body_is_one_input_argument(tmp_path: Path) -> None:
    """The body schema's object type is the `input` argument as `<Name>Input`, non-null when required."""
    pet = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "tag-line": {"type": "string"}},
    }
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
    }
    doc = document(
        {
            "/pets": {
                "post": {
                    "operationId": "createPet",
                    "requestBody": body,
                    "responses": {"201": {"description": "made"}},
                }
            }
        },
        {"Pet": pet},
    )
    gql = served(load(tmp_path, doc))
    assert gql.mutation_type is not None
    field = gql.mutation_type.fields["api_createPet"]
    assert {name: str(arg.type) for name, arg in field.args.items()} == {"input": "PetInput!"}
    assert str(field.type) == "Boolean"


@pytest.mark.parametrize(
    ("include", "fields_"),
    [
        ("[b/two]", ["api_b_two"]),
        ("{b/two: second}", ["api_second"]),
        (None, ["api_a_one", "api_b_two", "api_get_c_id"]),
    ],
)
def test_include_picks_operations_and_may_name_their_fields(
    tmp_path: Path, include: str | None, fields_: list[str]
) -> None:
    """include lists operationIds (or maps them to field names); without it every operation is imported."""
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "string"}}}}}
    doc = document(
        {
            "/a": {"get": {"operationId": "a/one", "responses": ok}},
            "/b": {"get": {"operationId": "b/two", "responses": ok}},
            "/c/{id}": {
                "get": {
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": ok,
                }
            },
        }
    )
    config = load(tmp_path, doc, f"include: {include}" if include else "")
    assert sorted(op.field for op in config.integrations["api"].operations.values()) == fields_


def test_exclude_leaves_operations_out(tmp_path: Path) -> None:
    """exclude removes operations from what is imported."""
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "string"}}}}}
    doc = document(
        {
            "/a": {"get": {"operationId": "a", "responses": ok}},
            "/b": {"get": {"operationId": "b", "responses": ok}},
        }
    )
    assert list(load(tmp_path, doc, "exclude: [a]").integrations["api"].operations) == ["b"]


def test_a_hand_written_operation_with_an_imported_id_replaces_it(tmp_path: Path) -> None:
    """operations: adds operations; one whose id is an imported operationId replaces that operation."""
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "string"}}}}}
    doc = document({"/a": {"get": {"operationId": "a", "responses": ok}}})
    config = load(tmp_path, doc, "operations: {a: {path: /other, returns: Int}, extra: {path: /x}}")
    ops = config.integrations["api"].operations
    assert (ops["a"].path, str(ops["a"].returns), ops["a"].field) == ("/other", "Int", "api_a")
    assert ops["extra"].field == "api_extra"


def test_an_unknown_include_id_is_a_problem_with_a_suggestion(tmp_path: Path) -> None:
    """A misspelt operationId in include is reported at its line, with the closest id."""
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "string"}}}}}
    doc = document({"/a": {"get": {"operationId": "repos/get", "responses": ok}}})
    [problem] = problems_of(tmp_path, doc, "include: [repos/gte]")
    assert problem.key == "integrations.api.include[0]"
    assert "no operation 'repos/gte'; did you mean 'repos/get'?" in problem.message


def test_a_broken_reference_names_the_document_and_the_json_pointer(tmp_path: Path) -> None:
    """A $ref to nothing is a problem naming the document's file and where in it the $ref stands."""
    [problem] = problems_of(tmp_path, answering({"$ref": "#/components/schemas/Nope"}))
    assert problem.document == "api.json"
    assert problem.pointer == "/paths/~1thing/get/responses/200/content/application~1json/schema"
    assert "points to nothing" in problem.message
    assert str(problem).startswith(
        f"{tmp_path / 'gateway.yaml'}:5: integrations.api.openapi: api.json#/paths/"
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("api.json", b"{not json", "api.json: not valid JSON"),
        ("api.yaml", b"openapi: [unclosed", "api.yaml: not valid YAML at line 2"),
        ("api.json", b'{"info": {}}', "api.json: not an OpenAPI document"),
    ],
)
def test_an_unreadable_document_is_a_problem(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    """A document that is not JSON or YAML, or not OpenAPI, is refused with why."""
    (tmp_path / name).write_bytes(content)
    text = f"integrations: {{api: {{base_url: http://127.0.0.1:9/v1, openapi: {name}}}}}"
    with pytest.raises(ConfigError) as caught:
        loads(text, str(tmp_path / "gateway.yaml"), env={}, base_dir=tmp_path)
    assert message in str(caught.value)


def test_a_missing_document_is_a_problem(tmp_path: Path) -> None:
    """An openapi: file that does not exist is named in the problem."""
    text = "integrations: {api: {base_url: http://127.0.0.1:9/v1, openapi: missing.json}}"
    with pytest.raises(ConfigError) as caught:
        loads(text, str(tmp_path / "gateway.yaml"), env={}, base_dir=tmp_path)
    assert "cannot read the OpenAPI document" in str(caught.value)


def test_the_petstore_imports_its_three_operations(tmp_path: Path) -> None:
    """The classic Petstore 3.0: listPets, createPets and showPetById with Pet and its BigInt id."""
    spec = OPENAPI / "petstore.yaml"
    text = f"integrations: {{petstore: {{base_url: http://127.0.0.1:9/v1, openapi: {spec}}}}}"
    config = loads(text, "gateway.yaml", env={})
    gql = served(config)
    assert gql.query_type is not None
    assert gql.mutation_type is not None
    assert {n: str(f.type) for n, f in gql.query_type.fields.items() if n.startswith("petstore")} == {
        "petstore_listPets": "[Pet]",
        "petstore_showPetById": "Pet",
    }
    assert str(gql.mutation_type.fields["petstore_createPets"].args["input"].type) == "PetInput!"
    assert fields(gql, "Pet") == {"id": "BigInt", "name": "String", "tag": "String"}


def test_a_31_document_with_references_to_a_file_next_to_it_imports(tmp_path: Path) -> None:
    """library.yaml (OpenAPI 3.1) refers to library-common.yaml for its Genre enum."""
    text = (
        f"integrations: {{library: {{base_url: http://127.0.0.1:9/v1, openapi: {OPENAPI / 'library.yaml'}}}}}"
    )
    gql = served(loads(text, "gateway.yaml", env={}))
    assert fields(gql, "Book")["genre"] == "Genre"
    assert isinstance(gql.type_map["Genre"], GraphQLEnumType)


def test_an_included_operation_with_a_non_json_body_is_a_problem(tmp_path: Path) -> None:
    """An upload (multipart body) cannot be sent; naming it in include says so. Not named, it is left out."""
    body = {"content": {"multipart/form-data": {"schema": {"type": "object"}}}}
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "string"}}}}}
    doc = document(
        {
            "/upload": {"post": {"operationId": "upload", "requestBody": body, "responses": ok}},
            "/a": {"get": {"operationId": "a", "responses": ok}},
        }
    )
    assert list(load(tmp_path, doc).integrations["api"].operations) == ["a"]
    [problem] = problems_of(tmp_path, doc, "include: [upload]")
    assert "'upload' cannot be imported: its request body is multipart/form-data" in problem.message


def test_a_swagger_2_document_imports(tmp_path: Path) -> None:
    """Swagger 2.0: definitions, a body parameter, csv query arrays and the response's schema."""
    doc = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/pets": {
                "post": {
                    "operationId": "addPet",
                    "parameters": [
                        {
                            "name": "pet",
                            "in": "body",
                            "required": True,
                            "schema": {"$ref": "#/definitions/Pet"},
                        },
                        {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "ok", "schema": {"$ref": "#/definitions/Pet"}}},
                }
            }
        },
        "definitions": {
            "Pet": {"type": "object", "properties": {"id": {"type": "integer", "format": "int64"}}}
        },
    }
    op = operation(load(tmp_path, doc), "addPet")
    assert [(p.name, str(p.type), p.location, p.style, p.explode) for p in op.params] == [
        ("tags", "[String]", "query", "form", False),
        ("input", "Pet!", "body", "form", True),
    ]
    assert str(op.returns) == "Pet"


def test_a_document_is_fetched_from_a_url(tmp_path: Path) -> None:
    """openapi: may be an http(s) URL, fetched at load time."""
    app = Starlette(
        routes=[Route("/petstore.yaml", lambda _: Response((OPENAPI / "petstore.yaml").read_bytes()))]
    )
    with serve_asgi(app) as url:
        text = (
            f"integrations: {{petstore: {{base_url: http://127.0.0.1:9/v1, openapi: {url}/petstore.yaml}}}}"
        )
        config = loads(text, "gateway.yaml", env={})
    assert sorted(config.integrations["petstore"].operations) == ["createPets", "listPets", "showPetById"]


def test_an_unreachable_url_is_a_problem() -> None:
    """A document URL nobody answers is a config problem naming the URL, not a traceback."""
    url = f"{closed_port_url()}/openapi.json"
    with pytest.raises(ConfigError) as caught:
        loads(
            f"integrations: {{api: {{base_url: http://127.0.0.1:9/v1, openapi: {url}}}}}",
            "gateway.yaml",
            env={},
        )
    assert f"{url}: cannot fetch the OpenAPI document" in str(caught.value)
