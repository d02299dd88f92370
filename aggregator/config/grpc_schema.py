"""gRPC services as GraphQL: a descriptor set's methods typed by the proto3 JSON mapping.

The same code types the operations of a ``proto:`` integration at load time and of a ``reflection:``
integration once its server has described itself (upstreams/grpc.py).

The mapping: 32-bit signed integers ``Int``; 64-bit integers, and unsigned 32-bit ones (past 2**31-1
they do not fit GraphQL's Int), ``BigInt``; float and double ``Float``; bool ``Boolean``; string and
bytes (base64) ``String``; enums GraphQL enums with the same value names; repeated fields lists;
maps, ``Struct``, ``Value``, ``ListValue`` and ``Any`` ``JSON``; ``Timestamp`` ``DateTime``;
``Duration`` and ``FieldMask`` ``String``; wrapper types their scalar; ``Empty`` ``Boolean`` (true
when present). A message (or enum) becomes a type of its name (a message argument the input type
``<Name>Input``); a name already taken becomes the full name with ``_``. Message fields keep
their JSON names (lowerCamelCase) and are all nullable, since proto3 fields are all optional (oneof
members included). Leading (else trailing) proto comments become descriptions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, MethodDescriptor

from aggregator.config.models import (
    SCALARS,
    EnumType,
    EnumValue,
    FieldKind,
    GrpcMethod,
    NamedType,
    ObjectType,
    Operation,
    Param,
    TypeExpr,
)
from aggregator.config.typedefs import RESERVED_TYPE_NAMES
from aggregator.config.values import did_you_mean

__all__ = ["EMPTY", "Services", "Typed"]

EMPTY = "google.protobuf.Empty"
_INT = frozenset({FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32})
_BIG_INT = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_FIXED32,
    }
)
_FLOAT = frozenset({FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE})
_TEXT = frozenset({FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES})
_WELL_KNOWN = {
    "google.protobuf.Timestamp": "DateTime",
    "google.protobuf.Duration": "String",
    "google.protobuf.FieldMask": "String",
    "google.protobuf.DoubleValue": "Float",
    "google.protobuf.FloatValue": "Float",
    "google.protobuf.Int64Value": "BigInt",
    "google.protobuf.UInt64Value": "BigInt",
    "google.protobuf.Int32Value": "Int",
    "google.protobuf.UInt32Value": "BigInt",
    "google.protobuf.BoolValue": "Boolean",
    "google.protobuf.StringValue": "String",
    "google.protobuf.BytesValue": "String",
    "google.protobuf.Struct": "JSON",
    "google.protobuf.Value": "JSON",
    "google.protobuf.ListValue": "JSON",
    "google.protobuf.Any": "JSON",
    EMPTY: "Boolean",
}
_NO_SIDE_EFFECTS = descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
_IDEMPOTENT = descriptor_pb2.MethodOptions.IDEMPOTENT
# The descriptor.proto field numbers that SourceCodeInfo paths are made of.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _ENUM_VALUE, _SERVICE_METHOD = 2, 3, 4, 2, 2


@dataclass
class Typed:
    """An integration's operations typed from its services, the types that takes, and problems."""

    operations: dict[str, Operation] = field(default_factory=dict)
    types: dict[str, NamedType] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # operation id -> what is wrong


class Services:
    """The services, messages and comments of one serialized FileDescriptorSet."""

    def __init__(self, descriptors: bytes) -> None:
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptors).file
        self.pool = descriptor_pool.DescriptorPool()
        for file in _dependencies_first(files):
            self.pool.Add(file)
        self._comments = _comments(files)
        self._services = sorted(
            f"{file.package}.{service.name}" if file.package else service.name
            for file in files
            for service in file.service
        )

    def method(self, grpc: GrpcMethod) -> MethodDescriptor:
        """The method ``grpc`` names; KeyError with what to write instead."""
        try:
            service = self.pool.FindServiceByName(grpc.service)
        except KeyError:
            known = ", ".join(self._services) or "none"
            hint = did_you_mean(grpc.service, self._services)
            raise KeyError(f"no service {grpc.service} in the protos (services: {known}){hint}") from None
        method = service.methods_by_name.get(grpc.method)
        if method is None:
            names = [m.name for m in service.methods]
            hint = did_you_mean(grpc.method, names)
            raise KeyError(
                f"service {grpc.service} has no method {grpc.method} (methods: {', '.join(names)}){hint}"
            )
        if method.client_streaming or method.server_streaming:
            raise KeyError(f"{grpc.service}/{grpc.method} is a streaming method; only unary ones are served")
        return method

    def type_operations(self, operations: Iterable[Operation], taken: Collection[str]) -> Typed:
        """``operations`` with their params, returns, kind and idempotency from their methods; object
        types are named so as not to clash with ``taken``."""
        typer = _Typer(self, taken)
        typed = Typed()
        for op in operations:
            if op.grpc is None:
                continue
            try:
                method = self.method(op.grpc)
                typed.operations[op.id] = typer.operation(op, method)
            except KeyError as problem:
                typed.problems[op.id] = str(problem.args[0])
        typed.types = typer.types
        return typed

    def comment(self, full_name: str) -> str:
        return self._comments.get(full_name, "")


class _Typer:
    def __init__(self, services: Services, taken: Collection[str]) -> None:
        self._services = services
        self._taken = set(taken) | SCALARS | RESERVED_TYPE_NAMES
        self._names: dict[str, str] = {}  # message full name -> its GraphQL name
        self.types: dict[str, NamedType] = {}

    def operation(self, op: Operation, method: MethodDescriptor) -> Operation:
        grpc = op.grpc
        assert grpc is not None
        level = method.GetOptions().idempotency_level
        kind: FieldKind = grpc.kind or ("query" if level == _NO_SIDE_EFFECTS else "mutation")
        idempotent = (
            grpc.idempotent if grpc.idempotent is not None else level in (_NO_SIDE_EFFECTS, _IDEMPOTENT)
        )
        params = tuple(
            Param(f.json_name, self._type(f), "body", self._services.comment(f.full_name), f.json_name)
            for f in method.input_type.fields
        )
        returns = self._returns(method.output_type, op.select)
        description = op.description or self._services.comment(method.full_name)
        return replace(
            op,
            params=params,
            returns=returns,
            kind=kind,
            idempotent=idempotent,
            description=description,
            returns_declared=True,
        )

    def _returns(self, message: Descriptor, select: str | None) -> TypeExpr:
        """The type at ``select`` (JSON names, dotted) inside the response, or the response's own."""
        if not select:
            return self._message(message)
        current: Descriptor | None = message
        expr = TypeExpr(name="JSON")
        for key in select.split("."):
            found = next((f for f in current.fields if f.json_name == key), None) if current else None
            if found is None:
                where = current.full_name if current else "a scalar"
                raise KeyError(f"select: {select}: {where} has no field {key}")
            expr = self._type(found)
            current = found.message_type if not found.is_repeated else None
        return expr

    def _type(self, f: FieldDescriptor) -> TypeExpr:
        # protobuf 7 dropped FieldDescriptor.label: is_repeated is its public replacement (>= 5.29).
        message = f.message_type
        if message is not None and message.GetOptions().map_entry:
            return TypeExpr(name="JSON")
        if message is not None:
            named = self._message(message)
        elif f.enum_type is not None:
            named = self._enum(f.enum_type)
        else:
            named = TypeExpr(name=_scalar(f.type))
        return TypeExpr(of=replace(named, non_null=True)) if f.is_repeated else named

    def _name(self, full_name: str, short: str) -> tuple[str, bool]:
        """The GraphQL name of a message or enum, and whether it is new (its type still to make)."""
        name = self._names.get(full_name)
        if name is not None:
            return name, False
        name = short if short not in self._taken else full_name.replace(".", "_")
        self._taken.add(name)
        self._names[full_name] = name
        return name, True

    def _enum(self, enum: EnumDescriptor) -> TypeExpr:
        name, new = self._name(enum.full_name, enum.name)
        if new:
            # The proto3 JSON mapping sends and reads enum values by name: wire value and name agree.
            values = tuple(
                EnumValue(value.name, value.name, self._services.comment(f"{enum.full_name}.{value.name}"))
                for value in enum.values
            )
            self.types[name] = EnumType(name, values, self._services.comment(enum.full_name))
        return TypeExpr(name=name)

    def _message(self, message: Descriptor) -> TypeExpr:
        if message.full_name in _WELL_KNOWN:
            return TypeExpr(name=_WELL_KNOWN[message.full_name])
        name, new = self._name(message.full_name, message.name)
        if new:
            fields = {f.json_name: self._type(f) for f in message.fields}
            notes = {f.json_name: self._services.comment(f.full_name) for f in message.fields}
            self.types[name] = ObjectType(
                name,
                MappingProxyType(fields),
                description=self._services.comment(message.full_name),
                field_descriptions=MappingProxyType({k: v for k, v in notes.items() if v}),
            )
        return TypeExpr(name=name)


def _scalar(kind: int) -> str:
    if kind in _INT:
        return "Int"
    if kind in _BIG_INT:
        return "BigInt"
    if kind in _FLOAT:
        return "Float"
    if kind == FieldDescriptor.TYPE_BOOL:
        return "Boolean"
    assert kind in _TEXT, kind
    return "String"


def _dependencies_first(
    files: Iterable[descriptor_pb2.FileDescriptorProto],
) -> list[descriptor_pb2.FileDescriptorProto]:
    """A pool takes a file only after the files it imports (reflection answers in any order)."""
    by_name = {file.name: file for file in files}
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in by_name:
            return
        seen.add(name)
        for dependency in by_name[name].dependency:
            visit(dependency)
        ordered.append(by_name[name])

    for name in by_name:
        visit(name)
    return ordered


def _comments(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> Mapping[str, str]:
    """Full name -> the comment on it, for messages, fields, services and methods."""
    found: dict[str, str] = {}
    for file in files:
        notes = {
            tuple(location.path): _clean(location.leading_comments or location.trailing_comments)
            for location in file.source_code_info.location
        }
        prefix = f"{file.package}." if file.package else ""
        pending: list[tuple[descriptor_pb2.DescriptorProto, tuple[int, ...], str]] = [
            (m, (_FILE_MESSAGE, i), prefix + m.name) for i, m in enumerate(file.message_type)
        ]
        enums: list[tuple[descriptor_pb2.EnumDescriptorProto, tuple[int, ...], str]] = [
            (e, (_FILE_ENUM, i), prefix + e.name) for i, e in enumerate(file.enum_type)
        ]
        while pending:
            proto, path, full = pending.pop()
            found[full] = notes.get(path, "")
            for index, item in enumerate(proto.field):
                found[f"{full}.{item.name}"] = notes.get((*path, _MESSAGE_FIELD, index), "")
            pending.extend(
                (nested, (*path, _MESSAGE_NESTED, index), f"{full}.{nested.name}")
                for index, nested in enumerate(proto.nested_type)
            )
            enums.extend(
                (enum, (*path, _MESSAGE_ENUM, index), f"{full}.{enum.name}")
                for index, enum in enumerate(proto.enum_type)
            )
        for enum, path, full in enums:
            found[full] = notes.get(path, "")
            # An enum value's full name is its enum's scope and its own name (C++ scoping).
            for index, value in enumerate(enum.value):
                found[f"{full}.{value.name}"] = notes.get((*path, _ENUM_VALUE, index), "")
        for index, service in enumerate(file.service):
            full = prefix + service.name
            found[full] = notes.get((_FILE_SERVICE, index), "")
            for number, method in enumerate(service.method):
                where = (_FILE_SERVICE, index, _SERVICE_METHOD, number)
                found[f"{full}.{method.name}"] = notes.get(where, "")
    return {name: text for name, text in found.items() if text}


def _clean(comment: str) -> str:
    return "\n".join(line.strip() for line in comment.strip().splitlines())
