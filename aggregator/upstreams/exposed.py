"""Exposed root fields (``expose:``): operations and types made from the upstream's schema, whole.

Each exposed Query or Mutation field becomes an operation ``<Root>.<field>`` whose gateway field is
``<integration>_<field>``, with the field's arguments (types, defaults, descriptions) as params and its
type as the return type; every type it reaches (through fields, arguments, interfaces, unions and
input fields) becomes a gateway type with all its fields, their arguments, descriptions and
deprecations. The gateway answers the client's selection from the upstream's answer to that same
selection (forward.py), so the objects and interfaces made here are read by response key.

Decisions: names are the upstream's, or ``<integration>_<Type>`` when the name is taken (another
integration's type, a declared type, a gateway type; an upstream ``JSON`` or ``DateTime`` scalar is the
gateway's own, as for derived types); nullability is the upstream's, since an upstream
answering by the GraphQL rules never sends null at a non-null position, except for the root field,
nullable as every gateway field of an operation (a failed call nulls it). A document operation whose
field has the same name wins over the exposed field (the loader refuses one listed explicitly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    Undefined,
)

from aggregator.config.models import (
    SCALARS,
    EnumType,
    EnumValue,
    InputType,
    Integration,
    InterfaceType,
    NamedType,
    ObjectType,
    Operation,
    Param,
    ScalarType,
    TypeExpr,
    UnionType,
)
from aggregator.config.typedefs import RESERVED_TYPE_NAMES
from aggregator.upstreams.graphql_types import SHARED_SCALARS, schema_default

__all__ = ["Exposure", "expose"]

_BUILTIN = frozenset({"ID", "String", "Int", "Float", "Boolean"})
_KINDS = (("query", "Query"), ("mutation", "Mutation"))


@dataclass
class Exposure:
    """What ``expose`` makes: operations by id, their root field (kind, upstream name), gateway types,
    each renamed gateway type's upstream name, and problems (an exposed name the schema lacks)."""

    operations: dict[str, Operation] = field(default_factory=dict)
    roots: dict[str, tuple[str, str]] = field(default_factory=dict)
    types: dict[str, NamedType] = field(default_factory=dict)
    upstream_names: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def expose(integration: Integration, schema: GraphQLSchema, taken: Mapping[str, NamedType]) -> Exposure:
    """The exposed operations and types of ``integration`` (its ``expose:``) on ``schema``."""
    made = Exposure()
    wanted = integration.expose
    if wanted is None:
        return made
    documents = {op.field for op in integration.operations.values()}
    maker = _Types(integration.id, schema, taken, made)
    found: set[str] = set()
    for kind, root_name in _KINDS:
        root = schema.mutation_type if kind == "mutation" else schema.query_type
        for name, root_field in (root.fields if root is not None else {}).items():
            if not wanted.covers(name) or name in found:
                continue
            found.add(name)
            gateway_field = f"{integration.id}_{name}"
            if gateway_field in documents:
                continue  # the document operation of the same name wins
            op_id = f"{root_name}.{name}"
            made.roots[op_id] = (kind, name)
            made.operations[op_id] = _operation(
                integration, (op_id, root_name), kind, name, gateway_field, root_field, maker
            )
    made.problems.extend(
        f"{integration.id}: expose: '{name}' is not a Query or Mutation field of the upstream's schema"
        for name in wanted.fields
        if name not in found
    )
    return made


def _operation(
    integration: Integration,
    ids: tuple[str, str],
    kind: str,
    name: str,
    gateway_field: str,
    root_field: GraphQLField,
    maker: _Types,
) -> Operation:
    op_id, root_name = ids
    returns = maker.expr(root_field.type)
    return Operation(
        id=op_id,
        # The forwarded document's name (forward.py): the upstream's logs show which field it served.
        operation_name=f"{root_name}_{name}",
        method="POST",
        params=tuple(maker.param(arg_name, arg) for arg_name, arg in root_field.args.items()),
        returns=TypeExpr(name=returns.name, of=returns.of),  # nullable: a failed call nulls it
        returns_declared=True,
        timeout=integration.timeout,
        idempotent=kind == "query",
        kind="mutation" if kind == "mutation" else "query",
        field=gateway_field,
        description=root_field.description or "",
        select=name,
    )


class _Types:
    """Makes the gateway types of the upstream types reached, each once."""

    def __init__(
        self, integration_id: str, schema: GraphQLSchema, taken: Mapping[str, NamedType], made: Exposure
    ) -> None:
        self._integration_id = integration_id
        self._schema = schema
        self._taken = taken
        self._made = made
        self._names: dict[str, str] = {}  # upstream name -> gateway name

    def expr(self, type_: Any) -> TypeExpr:
        if isinstance(type_, GraphQLNonNull):
            inner = self.expr(type_.of_type)
            return TypeExpr(name=inner.name, of=inner.of, non_null=True)
        if isinstance(type_, GraphQLList):
            return TypeExpr(of=self.expr(type_.of_type))
        return TypeExpr(name=self.named(type_))

    def param(self, name: str, arg: GraphQLArgument | GraphQLInputField) -> Param:
        default = schema_default(arg.default)
        if default is Undefined:
            default = arg.default_value
        return Param(
            name,
            self.expr(arg.type),
            "body",
            arg.description or "",
            default=default if default is not Undefined else None,
            has_default=default is not Undefined,
        )

    def named(self, upstream: GraphQLNamedType) -> str:
        if upstream.name in _BUILTIN or upstream.name in SHARED_SCALARS:
            return upstream.name
        if upstream.name in self._names:
            return self._names[upstream.name]
        name = upstream.name
        if name in self._taken or name in RESERVED_TYPE_NAMES or name in SCALARS:
            name = f"{self._integration_id}_{upstream.name}"
            self._made.upstream_names[name] = upstream.name
        self._names[upstream.name] = name
        self._made.types[name] = self._convert(name, upstream)
        return name

    def _convert(self, name: str, upstream: GraphQLNamedType) -> NamedType:
        description = upstream.description or ""
        if isinstance(upstream, GraphQLObjectType | GraphQLInterfaceType):
            return self._fields(name, upstream)
        if isinstance(upstream, GraphQLUnionType):
            members = tuple(self.named(member) for member in upstream.types)
            return UnionType(name, members, description, mapping=self._renamed(upstream.types))
        if isinstance(upstream, GraphQLEnumType):
            values = tuple(
                EnumValue(value_name, value_name, value.description or "", value.deprecation_reason)
                for value_name, value in upstream.values.items()
            )
            return EnumType(name, values, description)
        if isinstance(upstream, GraphQLInputObjectType):
            params = {field_name: self.param(field_name, f) for field_name, f in upstream.fields.items()}
            return InputType(
                name,
                {key: param.type for key, param in params.items()},
                description,
                field_descriptions={k: p.description for k, p in params.items() if p.description},
                field_defaults={k: p.default for k, p in params.items() if p.has_default},
            )
        assert isinstance(upstream, GraphQLScalarType)
        return ScalarType(name, description, upstream.specified_by_url)

    def _fields(self, name: str, upstream: GraphQLObjectType | GraphQLInterfaceType) -> NamedType:
        # Its name is known before its fields are made (``named``): a field may lead back to it.
        fields = {key: self.expr(f.type) for key, f in upstream.fields.items()}
        options: dict[str, Any] = {
            "description": upstream.description or "",
            "field_descriptions": {k: f.description for k, f in upstream.fields.items() if f.description},
            "field_deprecations": _deprecations(upstream),
            "interfaces": tuple(self.named(interface) for interface in upstream.interfaces),
            "field_args": {
                k: tuple(self.param(arg_name, arg) for arg_name, arg in f.args.items())
                for k, f in upstream.fields.items()
                if f.args
            },
            "forwarded": True,
        }
        if isinstance(upstream, GraphQLInterfaceType):
            # An implementation can be returned though no field names it.
            possible = self._schema.get_possible_types(upstream)
            return InterfaceType(name, fields, **options, mapping=self._renamed(possible))
        return ObjectType(name, fields, **options)

    def _renamed(self, objects: Sequence[GraphQLObjectType]) -> dict[str, str]:
        """``__typename`` -> gateway name of the ``objects`` the gateway renamed (made if not yet)."""
        names = {upstream.name: self.named(upstream) for upstream in objects}
        return {found: name for found, name in names.items() if found != name}


def _deprecations(upstream: GraphQLObjectType | GraphQLInterfaceType) -> dict[str, str]:
    """The deprecated fields, but those implementing an interface field that is not deprecated:
    graphql-core 3.3 refuses such a schema (graphql-js 16 and GitHub's schema do not), so the
    gateway's shows them undeprecated."""
    found = {}
    for name, upstream_field in upstream.fields.items():
        reason = upstream_field.deprecation_reason
        interface_fields = [i.fields[name] for i in upstream.interfaces if name in i.fields]
        if reason is not None and all(f.deprecation_reason is not None for f in interface_fields):
            found[name] = reason
    return found
