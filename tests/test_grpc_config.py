"""gRPC integrations as the loader reads them: protos compiled, operations typed by the proto3 JSON
mapping, query or mutation from the method's idempotency level, and what is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from graphql import GraphQLEnumType, GraphQLSchema

from aggregator.config import loads
from aggregator.config.models import Config, TlsFiles
from aggregator.errors import ConfigError
from aggregator.module import IntegrationModule
from aggregator.schema import build_schema

PROTOS = Path(__file__).parent / "protos"
INVENTORY = "inventory/v1/inventory.proto"
TYPES = "types/v1/types.proto"


def grpc_config(operations: str, *, proto: str = f"[{INVENTORY}, {TYPES}]", extra: str = "") -> Config:
    """A config with one grpc integration `inv` over the test protos (tests/protos is its folder)."""
    text = textwrap.dedent(
        f"""\
        {extra}
        integrations:
          inv:
            type: grpc
            base_url: grpc://127.0.0.1:50051
            proto: {proto}
            proto_paths: [.]
            operations:
        """
    ) + textwrap.indent(textwrap.dedent(operations), "      ")
    return loads(text, "grpc.yaml", base_dir=PROTOS)


def schema_of(config: Config) -> GraphQLSchema:
    return build_schema(config, IntegrationModule(config))._schema


def test_every_proto3_json_type_maps_to_its_graphql_type() -> None:
    """Ints, BigInts, floats, strings, bytes, enums, lists, maps, oneofs, well-known types, Empty."""
    config = grpc_config("echo: {rpc: types.v1.Types/Echo}")
    fields = {name: str(field.type) for name, field in schema_of(config).type_map["AllTypes"].fields.items()}
    assert fields == {
        "int32Value": "Int",
        "sint32Value": "Int",
        "sfixed32Value": "Int",
        "uint32Value": "BigInt",
        "fixed32Value": "BigInt",
        "int64Value": "BigInt",
        "uint64Value": "BigInt",
        "sint64Value": "BigInt",
        "fixed64Value": "BigInt",
        "sfixed64Value": "BigInt",
        "floatValue": "Float",
        "doubleValue": "Float",
        "boolValue": "Boolean",
        "stringValue": "String",
        "bytesValue": "String",
        "color": "Color",
        "tags": "[String!]",
        "inners": "[Inner!]",
        "counts": "JSON",
        "choiceText": "String",
        "choiceNumber": "Int",
        "at": "DateTime",
        "took": "String",
        "maybeInt32": "Int",
        "maybeInt64": "BigInt",
        "maybeString": "String",
        "maybeBool": "Boolean",
        "maybeDouble": "Float",
        "document": "JSON",
        "anything": "JSON",
        "flag": "Boolean",
        "inner": "Inner",
        "optionalInt32": "Int",
    }


def test_a_proto_enum_is_a_graphql_enum_with_its_value_names_and_comments() -> None:
    """Color keeps its value names (the JSON mapping's wire values) and its comments."""
    color = schema_of(grpc_config("echo: {rpc: types.v1.Types/Echo}")).type_map["Color"]
    assert isinstance(color, GraphQLEnumType)
    assert list(color.values) == ["COLOR_UNSPECIFIED", "RED", "GREEN"]
    assert (color.description, color.values["RED"].description) == ("A color.", "The red one.")


def test_request_fields_are_arguments_and_nested_messages_input_types() -> None:
    """The request message's fields are the field's arguments; a message argument is <Message>Input."""
    schema = schema_of(grpc_config("echo: {rpc: types.v1.Types/Echo}"))
    field = schema.mutation_type or schema.query_type
    args = {name: str(arg.type) for name, arg in schema.query_type.fields["inv_echo"].args.items()}
    assert field is not None
    assert args["inner"] == "InnerInput"
    assert args["inners"] == "[InnerInput!]"
    assert args["int64Value"] == "BigInt"
    assert str(schema.query_type.fields["inv_echo"].type) == "AllTypes"


def test_proto_comments_become_descriptions() -> None:
    """Method, message and field comments describe the field, the type and its fields."""
    schema = schema_of(grpc_config("getItem: {rpc: inventory.v1.Inventory/GetItem}"))
    assert schema.query_type.fields["inv_getItem"].description == "One item by its id."
    assert schema.type_map["Item"].description == "An item in stock."
    assert schema.type_map["Money"].fields["currency"].description == "ISO 4217 code, e.g. EUR."
    assert schema.query_type.fields["inv_getItem"].args["itemId"].description == "The item's id."


@pytest.mark.parametrize(
    ("operation", "kind", "idempotent"),
    [
        pytest.param("{rpc: inventory.v1.Inventory/GetItem}", "query", True, id="no-side-effects"),
        pytest.param("{rpc: inventory.v1.Inventory/Release}", "mutation", True, id="idempotent"),
        pytest.param("{rpc: inventory.v1.Inventory/Reserve}", "mutation", False, id="unknown-level"),
        pytest.param("{rpc: inventory.v1.Inventory/Reserve, kind: query}", "query", False, id="kind-given"),
        pytest.param(
            "{rpc: inventory.v1.Inventory/Reserve, idempotent: true}", "mutation", True, id="idempotent-given"
        ),
    ],
)
def test_kind_and_idempotency_come_from_the_idempotency_level_unless_given(
    operation: str, kind: str, idempotent: bool
) -> None:
    """NO_SIDE_EFFECTS is a query; IDEMPOTENT and NO_SIDE_EFFECTS may be retried; kind:/idempotent: win."""
    op = grpc_config(f"op: {operation}").integrations["inv"].operations["op"]
    assert (op.kind, op.idempotent) == (kind, idempotent)


def test_select_types_the_field_with_the_selected_part_of_the_response() -> None:
    """select: item returns Item, not GetItemResponse."""
    schema = schema_of(grpc_config("getItem: {rpc: inventory.v1.Inventory/GetItem, select: item}"))
    assert str(schema.query_type.fields["inv_getItem"].type) == "Item"


def test_a_message_named_like_a_declared_type_takes_its_full_name() -> None:
    """types: Item stays the config's; the proto's Item becomes inventory_v1_Item."""
    config = grpc_config(
        "getItem: {rpc: inventory.v1.Inventory/GetItem, select: item}",
        extra="types: {Item: {sku: String}}",
    )
    assert set(config.types["Item"].fields) == {"sku"}
    assert str(config.integrations["inv"].operations["getItem"].returns) == "inventory_v1_Item"


def test_reflection_operations_are_untyped_mutations_until_the_server_describes_them() -> None:
    """Without protos nothing is known at load time: no arguments, JSON, a mutation unless kind: says."""
    config = loads(
        "integrations:\n  inv:\n    type: grpc\n    base_url: grpc://127.0.0.1:50051\n    reflection: true\n"
        "    operations:\n      getItem: {rpc: inventory.v1.Inventory/GetItem}\n"
        "      list: {rpc: inventory.v1.Inventory/List, kind: query}\n"
    )
    ops = config.integrations["inv"].operations
    assert (ops["getItem"].kind, ops["getItem"].params, str(ops["getItem"].returns)) == (
        "mutation",
        (),
        "JSON",
    )
    assert ops["list"].kind == "query"


def test_tls_paths_are_relative_to_the_config_file_and_inherited_from_defaults(tmp_path: Path) -> None:
    """An integration without tls: uses the defaults' block; its own block replaces it."""
    for name in ("ca.pem", "own-ca.pem"):
        (tmp_path / name).write_text("not read at load time")
    config = loads(
        "defaults: {tls: {ca_file: ca.pem}}\n"
        "integrations:\n"
        "  a: {base_url: https://a.test, operations: {ping: {path: /ping}}}\n"
        "  b: {base_url: https://b.test, tls: {ca_file: own-ca.pem}, operations: {ping: {path: /ping}}}\n",
        base_dir=tmp_path,
    )
    assert config.integrations["a"].tls == TlsFiles(ca_file=str(tmp_path / "ca.pem"))
    assert config.integrations["b"].tls == TlsFiles(ca_file=str(tmp_path / "own-ca.pem"))


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        pytest.param(
            "proto: inventory/v1/inventory.proto\nreflection: true",
            "integrations.inv.proto",
            "either proto: or reflection: true",
            id="proto-and-reflection",
        ),
        pytest.param("", "integrations.inv", "needs proto:", id="neither"),
        pytest.param(
            "proto: inventory/v1/inventory.proto\nschema: s.graphql",
            "integrations.inv.schema",
            "schema: is for graphql integrations",
            id="schema-on-grpc",
        ),
        pytest.param(
            "proto: inventory/v1/inventory.proto\nproto_paths: [nowhere]",
            "integrations.inv.proto_paths[0]",
            "no directory",
            id="missing-import-folder",
        ),
    ],
)
def test_bad_grpc_integration_is_refused_at_its_key(body: str, key: str, message: str) -> None:
    """Each mistake names its key path and what to write instead."""
    lines = ["type: grpc", "base_url: grpc://127.0.0.1:50051", *body.splitlines()]
    lines.append("operations: {getItem: {rpc: inventory.v1.Inventory/GetItem}}")
    text = "integrations:\n  inv:\n" + "".join(f"    {line}\n" for line in lines)
    with pytest.raises(ConfigError) as caught:
        loads(text, base_dir=PROTOS)
    assert any(p.key == key and message in p.message for p in caught.value.problems), caught.value


def test_proto_keys_on_a_rest_integration_are_refused() -> None:
    """proto: belongs to grpc integrations."""
    with pytest.raises(ConfigError, match=r"integrations.api.proto: proto: is for grpc integrations"):
        loads(
            "integrations:\n  api:\n    base_url: http://h\n    proto: x.proto\n"
            "    operations: {p: {path: /p}}\n"
        )
