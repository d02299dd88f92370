"""Gateway types derived from a GraphQL upstream's schema and what its operations' documents select.

When an operation leaves ``returns`` out and the upstream's schema is known, the field is typed from
what the document selects: ``{ product(id: $id) { id title price { amount } } }`` against the
upstream's ``Product`` gives a gateway type ``Product { id title price: Price }`` and
``Price { amount }``. Fields are keyed by response key (the alias when there is one); their
descriptions and ``@deprecated`` reasons are the upstream's.

The upstream's kinds of types are kept:

- Enums are enums with the upstream's values, descriptions and deprecations.
- Custom scalars are named scalars whose values pass through unchanged; ``JSON`` and ``DateTime``
  are the gateway's own scalars of those names (any value, and ISO 8601 strings passed through).
- Interfaces and unions stay abstract. Their possible types are those the selection reaches: a type
  with at least one field selected on it, directly or through a fragment on it or on an interface it
  implements (a type nothing is selected on could only be an empty object type, which GraphQL does
  not allow). Each possible type has the fields selected on it. An interface none of whose own fields
  is selected (``node(id: $id) { ... on Issue { title } }``) becomes a union of the types reached.
  The concrete type of a value is its ``__typename`` (the push-down adds it to what is sent).
- Input types and enums that params name (``params: {state: IssueState}``) become the gateway's,
  with their fields' defaults.

Every derived output field is nullable (an upstream that answers partial data with errors nulls
fields that its schema calls non-null); list structure and input types' nullability are kept. An
object type with nothing selected on it (only ``__typename``) is ``JSON``. Selections of the same
upstream type by several operations of one integration are merged into one gateway type.

Names: the upstream's type name as it is; on a clash with a type already taken (declared in
``types:``, derived for another integration, a gateway type or scalar) ``<integration>_<Type>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    get_named_type,
    parse,
    specified_scalar_types,
    validate,
)
from graphql.pyutils import Undefined
from graphql.utilities import type_from_ast, value_from_ast_untyped

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

__all__ = ["SHARED_SCALARS", "Derived", "derive", "schema_default"]

_BUILTIN = frozenset(specified_scalar_types)
# Upstream scalars that are the gateway's own scalar of the same name (same meaning, values kept).
SHARED_SCALARS = frozenset({"JSON", "DateTime"})
JSON = TypeExpr(name="JSON")


@dataclass
class Derived:
    """What deriving added: gateway types, the return type and params of operations, and problems."""

    types: dict[str, NamedType] = field(default_factory=dict)
    returns: dict[str, TypeExpr] = field(default_factory=dict)
    params: dict[str, tuple[Param, ...]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def derive(integration: Integration, schema: GraphQLSchema, taken: Mapping[str, NamedType]) -> Derived:
    """Types, returns and params for the operations of ``integration``; every document is validated
    against ``schema`` and its errors listed in ``problems`` (that operation keeps its config types)."""
    deriver = _Deriver(integration.id, schema, taken)
    derived = Derived()
    for op in integration.operations.values():
        document = parse(op.document)
        if errors := validate(schema, document):
            derived.problems.extend(f"{integration.id}.{op.id}: {e.message}" for e in errors)
            continue
        walker = _Walker(deriver, document.definitions)
        if any(p.upstream_type is not None for p in op.params):
            derived.params[op.id] = tuple(deriver.param(p) for p in op.params)
        if not op.returns_declared:
            derived.returns[op.id] = walker.operation_returns(op)
    derived.types = deriver.types()
    return derived


class _Deriver:
    """The gateway types of one integration, grown by every selection walked."""

    def __init__(self, integration_id: str, schema: GraphQLSchema, taken: Mapping[str, NamedType]) -> None:
        self._integration_id = integration_id
        self._schema = schema
        self._taken = taken
        self._names: dict[str, str] = {}  # upstream type name -> gateway type name
        # Upstream object or interface name -> response key -> (field name, type).
        self._fields: dict[str, dict[str, tuple[str, TypeExpr]]] = {}
        self._reached: dict[str, set[str]] = {}  # upstream abstract type -> possible types reached
        self._leaves: dict[str, NamedType] = {}  # enums, scalars, inputs by gateway name

    def name(self, upstream: str) -> str:
        if upstream not in self._names:
            name = upstream
            if name in self._taken or name in RESERVED_TYPE_NAMES or name in SCALARS:
                name = f"{self._integration_id}_{upstream}"
            self._names[upstream] = name
        return self._names[upstream]

    # --- output types -----------------------------------------------------------------------------

    def output(self, upstream: GraphQLOutputType, nodes: Sequence[FieldNode], walker: _Walker) -> TypeExpr:
        if isinstance(upstream, GraphQLNonNull):
            return replace(self.output(upstream.of_type, nodes, walker), non_null=False)
        if isinstance(upstream, GraphQLList):
            item = self.output(upstream.of_type, nodes, walker)
            return TypeExpr(of=replace(item, non_null=isinstance(upstream.of_type, GraphQLNonNull)))
        if isinstance(upstream, GraphQLEnumType | GraphQLScalarType):
            return TypeExpr(name=self.leaf(upstream))
        sets = [node.selection_set for node in nodes if node.selection_set is not None]
        assert isinstance(upstream, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
        named = self.composite(upstream, sets, walker)
        return JSON if named is None else TypeExpr(name=named)

    def composite(
        self,
        upstream: GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType,
        sets: Sequence[SelectionSetNode],
        walker: _Walker,
    ) -> str | None:
        """The gateway type for a selection of ``upstream``; None when nothing but ``__typename`` is."""
        if isinstance(upstream, GraphQLObjectType):
            return self.name(upstream.name) if self._select(upstream, upstream, sets, walker) else None
        reached = self._reached.setdefault(upstream.name, set())
        for possible in self._schema.get_possible_types(upstream):
            if self._select(possible, possible, sets, walker):
                reached.add(possible.name)
        if isinstance(upstream, GraphQLInterfaceType):
            self._select(upstream, upstream, sets, walker)
        return self.name(upstream.name) if reached else None

    def _select(
        self,
        target: GraphQLObjectType | GraphQLInterfaceType,
        runtime: GraphQLObjectType | GraphQLInterfaceType,
        sets: Sequence[SelectionSetNode],
        walker: _Walker,
    ) -> bool:
        """Add the fields ``sets`` select on ``runtime`` to ``target``'s; whether any is selected."""
        collected = walker.collect(runtime, sets)
        if not collected:
            return False
        fields = self._fields.setdefault(target.name, {})
        for key, nodes in collected.items():
            name = nodes[0].name.value
            fields[key] = (name, self.output(target.fields[name].type, nodes, walker))
        return True

    # --- leaves and inputs --------------------------------------------------------------------------

    def leaf(self, upstream: GraphQLEnumType | GraphQLScalarType) -> str:
        if upstream.name in _BUILTIN or upstream.name in SHARED_SCALARS:
            return upstream.name
        name = self.name(upstream.name)
        if name not in self._leaves:
            if isinstance(upstream, GraphQLEnumType):
                values = tuple(
                    EnumValue(key, key, value.description or "", value.deprecation_reason)
                    for key, value in upstream.values.items()
                )
                self._leaves[name] = EnumType(name, values, upstream.description or "")
            else:
                self._leaves[name] = ScalarType(
                    name, upstream.description or "", upstream.specified_by_url or None
                )
        return name

    def input(self, upstream: GraphQLInputType) -> TypeExpr:
        if isinstance(upstream, GraphQLNonNull):
            return replace(self.input(upstream.of_type), non_null=True)
        if isinstance(upstream, GraphQLList):
            return TypeExpr(of=self.input(upstream.of_type))
        if isinstance(upstream, GraphQLInputObjectType):
            return TypeExpr(name=self._input_object(upstream))
        assert isinstance(upstream, GraphQLEnumType | GraphQLScalarType)
        return TypeExpr(name=self.leaf(upstream))

    def _input_object(self, upstream: GraphQLInputObjectType) -> str:
        name = self.name(upstream.name)
        if name not in self._leaves:
            # Registered before its fields: input types may refer to themselves.
            self._leaves[name] = InputType(name, {})
            fields = {key: self.input(value.type) for key, value in upstream.fields.items()}
            defaults = {
                key: default
                for key, value in upstream.fields.items()
                if (default := schema_default(value.default)) is not Undefined
            }
            descriptions = {key: v.description for key, v in upstream.fields.items() if v.description}
            self._leaves[name] = InputType(name, fields, upstream.description or "", descriptions, defaults)
        return name

    def param(self, param: Param) -> Param:
        """``param`` typed with the upstream's type its document variable names, in gateway names."""
        if param.upstream_type is None:
            return param
        upstream = self._schema.get_type(param.upstream_type.named)
        if not isinstance(upstream, GraphQLEnumType | GraphQLScalarType | GraphQLInputObjectType):
            return param  # validation of the document refused it already
        named = (
            self._input_object(upstream)
            if isinstance(upstream, GraphQLInputObjectType)
            else self.leaf(upstream)
        )
        return replace(param, type=_renamed(param.upstream_type, named))

    # --- the result ---------------------------------------------------------------------------------

    def types(self) -> dict[str, NamedType]:
        found: dict[str, NamedType] = dict(self._leaves)
        interfaces = {
            name
            for name in self._fields
            if isinstance(self._schema.get_type(name), GraphQLInterfaceType) and self._fields[name]
        }
        for upstream_name, reached in self._reached.items():
            if reached and upstream_name not in interfaces:
                found[self.name(upstream_name)] = UnionType(
                    self.name(upstream_name),
                    tuple(self.name(t) for t in sorted(reached)),
                    _description(self._schema.get_type(upstream_name)),
                )
        for upstream_name, keyed in self._fields.items():
            upstream = self._schema.get_type(upstream_name)
            assert isinstance(upstream, GraphQLObjectType | GraphQLInterfaceType)
            if isinstance(upstream, GraphQLInterfaceType) and upstream_name not in interfaces:
                continue
            name = self.name(upstream_name)
            fields = {key: expr for key, (_, expr) in keyed.items()}
            descriptions = {
                key: text for key, (f, _) in keyed.items() if (text := upstream.fields[f].description)
            }
            deprecations = {
                key: reason
                for key, (f, _) in keyed.items()
                if (reason := upstream.fields[f].deprecation_reason)
            }
            implemented = [i for i in upstream.interfaces if i.name in interfaces]
            implements = tuple(self.name(i.name) for i in implemented)
            # graphql-core 3.3 (as graphql-js 17) refuses a deprecated field implementing one that is
            # not: such a deprecation (twelve in GitHub's schema) is left out of the gateway's schema.
            for interface in implemented:
                for key, (f, _) in keyed.items():
                    if f in interface.fields and interface.fields[f].deprecation_reason is None:
                        deprecations.pop(key, None)
            kind = InterfaceType if isinstance(upstream, GraphQLInterfaceType) else ObjectType
            found[name] = kind(
                name,
                fields,
                upstream.description or "",
                field_descriptions=descriptions,
                field_deprecations=deprecations,
                interfaces=implements,
            )
        return found


class _Walker:
    """Field collection over one document, as graphql-core collects fields for a runtime type."""

    def __init__(self, deriver: _Deriver, definitions: Iterable[Any]) -> None:
        self._deriver = deriver
        self._schema = deriver._schema
        self._fragments: dict[str, FragmentDefinitionNode] = {}
        self._operations: list[OperationDefinitionNode] = []
        for definition in definitions:
            if isinstance(definition, FragmentDefinitionNode):
                self._fragments[definition.name.value] = definition
            elif isinstance(definition, OperationDefinitionNode):
                self._operations.append(definition)

    def collect(
        self, runtime: GraphQLObjectType | GraphQLInterfaceType, sets: Sequence[SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        """Response key -> field nodes selected on ``runtime`` (``__typename`` left out); every
        ``@skip``/``@include`` counted as selected, since any request may select it."""
        found: dict[str, list[FieldNode]] = {}
        for selection_set in sets:
            self._collect(runtime, selection_set, found, set())
        return found

    def _collect(
        self,
        runtime: GraphQLObjectType | GraphQLInterfaceType,
        selection_set: SelectionSetNode,
        found: dict[str, list[FieldNode]],
        spread: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if not selection.name.value.startswith("__"):
                    key = (selection.alias or selection.name).value
                    found.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition, runtime):
                    self._collect(runtime, selection.selection_set, found, spread)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self._fragments.get(name)
                if (
                    fragment is not None
                    and name not in spread
                    and self._applies(fragment.type_condition, runtime)
                ):
                    self._collect(runtime, fragment.selection_set, found, spread | {name})

    def _applies(self, condition: Any, runtime: GraphQLObjectType | GraphQLInterfaceType) -> bool:
        if condition is None:
            return True
        named = type_from_ast(self._schema, condition)
        if named is runtime:
            return True
        if isinstance(runtime, GraphQLObjectType) and isinstance(
            named, GraphQLInterfaceType | GraphQLUnionType
        ):
            return self._schema.is_sub_type(named, runtime)
        return False

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
        sets = [definition.selection_set]
        if not op.select:
            named = self._deriver.composite(root, sets, self)
            return JSON if named is None else TypeExpr(name=named)
        parent: GraphQLNamedType = root
        expr = JSON
        for key in op.select.split("."):
            if not isinstance(parent, GraphQLObjectType):
                return JSON  # a path through an abstract type: its concrete type is known only at run time
            nodes = self.collect(parent, sets).get(key)
            if not nodes:
                return JSON
            field_type = parent.fields[nodes[0].name.value].type
            expr = self._deriver.output(field_type, nodes, self)
            parent = get_named_type(field_type)
            sets = [node.selection_set for node in nodes if node.selection_set is not None]
        return expr


def schema_default(default: Any) -> Any:
    """A schema default as a JSON value (graphql-core 3.3 keeps an SDL default as its literal)."""
    if default is None or default is Undefined:
        return Undefined
    literal = getattr(default, "literal", Undefined)
    if isinstance(literal, ValueNode):
        return value_from_ast_untyped(literal)
    return getattr(default, "value", Undefined)


def _renamed(expr: TypeExpr, name: str) -> TypeExpr:
    if expr.of is not None:
        return replace(expr, of=_renamed(expr.of, name))
    return replace(expr, name=name)


def _description(named: GraphQLNamedType | None) -> str:
    return (named.description or "") if named is not None else ""
