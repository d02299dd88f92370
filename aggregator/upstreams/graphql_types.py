"""Types derived from a GraphQL upstream's schema and an operation's selection set.

When an operation leaves ``returns`` out and the upstream's schema is known, the field is typed
from what the document selects: ``{ product(id: $id) { id title price { amount } } }`` against the
upstream's ``Product`` gives a gateway type ``Product { id title price: Price }`` and
``Price { amount }``. Fields are keyed by response key (the alias when there is one).

Decisions: every derived field is nullable (an upstream that answers partial data with errors
nulls fields that its schema calls non-null); list structure is kept; enums become String and
custom scalars JSON; a field of interface or union type becomes JSON, since a selection of it may
depend on the concrete type. Selections of the same upstream type by several operations of one
integration are merged into one gateway type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    parse,
    validate,
)

from aggregator.config.models import SCALARS, Integration, NamedType, ObjectType, Operation, TypeExpr
from aggregator.config.typedefs import RESERVED_TYPE_NAMES

_BUILTIN = {"ID": "ID", "String": "String", "Int": "Int", "Float": "Float", "Boolean": "Boolean"}
JSON = TypeExpr(name="JSON")


@dataclass
class Derived:
    """What deriving added: gateway types, the return type of each operation, and problems."""

    types: dict[str, ObjectType] = field(default_factory=dict)
    returns: dict[str, TypeExpr] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def derive(integration: Integration, schema: GraphQLSchema, taken: Mapping[str, NamedType]) -> Derived:
    """Types and returns for the operations of ``integration`` that did not declare ``returns``;
    every document is validated against ``schema`` and its errors listed in ``problems``."""
    derived = Derived()
    names: dict[str, str] = {}  # upstream type name -> gateway type name
    for op in integration.operations.values():
        document = parse(op.document)
        if errors := validate(schema, document):
            derived.problems.extend(f"{integration.id}.{op.id}: {e.message}" for e in errors)
            continue
        if op.returns_declared:
            continue
        walker = _Walker(integration.id, schema, document, taken, derived, names)
        derived.returns[op.id] = walker.operation_returns(op)
    return derived


class _Walker:
    def __init__(
        self,
        integration_id: str,
        schema: GraphQLSchema,
        document: DocumentNode,
        taken: Mapping[str, NamedType],
        derived: Derived,
        names: dict[str, str],
    ) -> None:
        self._integration_id = integration_id
        self._schema = schema
        self._taken = taken
        self._derived = derived
        self._names = names
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]

    def operation_returns(self, op: Operation) -> TypeExpr:
        definition = next(
            (
                d
                for d in self._operations
                if op.operation_name is None or (d.name and d.name.value == op.operation_name)
            ),
            self._operations[0],
        )
        root = (
            self._schema.mutation_type
            if definition.operation == OperationType.MUTATION
            else self._schema.query_type
        )
        assert root is not None  # validation passed, so the root type exists
        selections = self._fields(root, definition.selection_set)
        path = op.select.split(".") if op.select else ([*selections] if len(selections) == 1 else [])
        if not path:
            return TypeExpr(name=self._object(root, definition.selection_set))
        parent: GraphQLObjectType = root
        selection_set: SelectionSetNode | None = definition.selection_set
        expr: TypeExpr = JSON
        for key in path:
            node = self._fields(parent, selection_set).get(key)
            if node is None:
                return JSON
            field_type = parent.fields[node.name.value].type
            expr = self._expr(field_type, node)
            named = get_named_type(field_type)
            if not isinstance(named, GraphQLObjectType):
                break
            parent, selection_set = named, node.selection_set
        return expr

    def _fields(
        self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None
    ) -> dict[str, FieldNode]:
        """Response key -> field node, fragments on ``parent`` itself expanded."""
        found: dict[str, FieldNode] = {}
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                if not key.startswith("__"):
                    found.setdefault(key, selection)
            elif isinstance(selection, InlineFragmentNode):
                found.update(self._fields(parent, selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value in self._fragments:
                found.update(self._fields(parent, self._fragments[selection.name.value].selection_set))
        return found

    def _expr(self, upstream: GraphQLOutputType, node: FieldNode) -> TypeExpr:
        if isinstance(upstream, GraphQLNonNull):
            inner = self._expr(upstream.of_type, node)
            return TypeExpr(name=inner.name, of=inner.of, non_null=False)
        if isinstance(upstream, GraphQLList):
            item = self._expr(upstream.of_type, node)
            item_non_null = isinstance(upstream.of_type, GraphQLNonNull)
            return TypeExpr(of=TypeExpr(name=item.name, of=item.of, non_null=item_non_null))
        if isinstance(upstream, GraphQLObjectType):
            return TypeExpr(name=self._object(upstream, node.selection_set))
        if isinstance(upstream, GraphQLEnumType):
            return TypeExpr(name="String")
        if isinstance(upstream, GraphQLScalarType):
            return TypeExpr(name=_BUILTIN.get(upstream.name, "JSON"))
        return JSON

    def _object(self, upstream: GraphQLObjectType, selection_set: SelectionSetNode | None) -> str:
        name = self._gateway_name(upstream.name)
        fields = dict(self._derived.types[name].fields) if name in self._derived.types else {}
        for key, node in self._fields(upstream, selection_set).items():
            fields[key] = self._expr(upstream.fields[node.name.value].type, node)
        self._derived.types[name] = ObjectType(
            name=name, fields=fields, description=upstream.description or ""
        )
        return name

    def _gateway_name(self, upstream_name: str) -> str:
        if upstream_name not in self._names:
            name = upstream_name
            if name in self._taken or name in RESERVED_TYPE_NAMES or name in SCALARS:
                name = f"{self._integration_id}_{upstream_name}"
            self._names[upstream_name] = name
        return self._names[upstream_name]
