"""The document sent for an exposed upstream root field (``expose:``): the client's selection, forwarded.

    client:   { gh_repository(owner: "o", name: "n") { id open: issues(states: [OPEN]) { totalCount } } }
    upstream: query Query_repository($owner: String!, $name: String!) {
                repository(owner: $owner, name: $name) { id open: issues(states: [OPEN]) { totalCount } }
              }

The root field's arguments are variables typed as the upstream declares them, valued from the field's
arguments (an argument the client left out is left out, so the upstream's default applies). Below it
the client's selection goes as written - aliases, arguments, the client's own variables (declared as
the client declared them) - except that ``@skip``/``@include`` are evaluated with the client's values,
named fragments are inlined, type names are the upstream's (the gateway may rename a type on a clash),
``__typename`` is asked for in every selection of an interface or union, and the fields the gateway
keeps for itself are added where the client's selection lacks them. The upstream answers in the
client's response keys, so exposed types are read by response key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    TypeNode,
    Undefined,
    VariableDefinitionNode,
    VariableNode,
    get_named_type,
    parse_type,
    print_ast,
)

from aggregator.upstreams.selection import ClientSelection, Wanted, included
from aggregator.upstreams.syntax import (
    TYPENAME,
    is_typename,
    new_field,
    response_key,
    variables_in,
)

__all__ = ["Exposed", "forward"]


@dataclass(frozen=True, slots=True)
class Exposed:
    """An exposed root field: its kind (``query``/``mutation``) and its upstream name."""

    kind: str
    field: str


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A forwarded document and what it needs: variables for the params, the client's own variables."""

    document: DocumentNode
    params: Mapping[str, str]
    client_variables: frozenset[str]
    selected: Wanted


def forward(
    exposed: Exposed,
    selection: ClientSelection | None,
    schema: GraphQLSchema,
    upstream_names: Mapping[str, str],
    keep: Wanted,
) -> Forwarded:
    """The document for one call of ``exposed`` with the client's ``selection`` (None: no sub-selection)."""
    mutation = exposed.kind == "mutation"
    root = schema.mutation_type if mutation else schema.query_type
    assert root is not None  # the field was found on it when the operation was made
    field = root.fields[exposed.field]
    copier = _Copier(selection, schema, upstream_names)
    selection_set = None
    selected: Wanted = ()
    named = get_named_type(field.type)
    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
        selection_set, selected = copier.below(named, keep)
    params = _param_variables(field, copier.variables)
    root_node = FieldNode(
        name=NameNode(value=exposed.field),
        arguments=tuple(
            ArgumentNode(name=NameNode(value=arg), value=VariableNode(name=NameNode(value=variable)))
            for arg, variable in params.items()
        ),
        selection_set=selection_set,
    )
    definitions = [
        VariableDefinitionNode(
            variable=VariableNode(name=NameNode(value=variable)), type=_type_node(field.args[arg])
        )
        for arg, variable in params.items()
    ]
    definitions.extend(copier.client_definitions())
    operation = OperationDefinitionNode(
        operation=OperationType.MUTATION if mutation else OperationType.QUERY,
        name=NameNode(value=f"{root.name}_{exposed.field}"),
        variable_definitions=tuple(definitions),
        selection_set=SelectionSetNode(selections=(root_node,)),
    )
    return Forwarded(DocumentNode(definitions=(operation,)), params, frozenset(copier.variables), selected)


def _param_variables(field: GraphQLField, taken: set[str]) -> dict[str, str]:
    """A variable per argument, named as it unless the client's variables took that name."""
    found: dict[str, str] = {}
    for arg in field.args:
        variable = arg
        while variable in taken:
            variable += "_"
        found[arg] = variable
    return found


def _type_node(arg: GraphQLArgument) -> TypeNode:
    """The argument's type; nullable when it has a default, so that leaving the variable out means the
    upstream's default."""
    type_ = arg.type
    # graphql-core 3.3 keeps an SDL default in ``default``, an older-style one in ``default_value``.
    has_default = arg.default is not None or arg.default_value is not Undefined
    if isinstance(type_, GraphQLNonNull) and has_default:
        type_ = type_.of_type
    return parse_type(str(type_))


class _Copier:
    """The client's selection rewritten for the upstream (see the module docstring)."""

    def __init__(
        self, selection: ClientSelection | None, schema: GraphQLSchema, upstream_names: Mapping[str, str]
    ) -> None:
        self._selection = selection
        self._schema = schema
        self._names = upstream_names
        self.variables: set[str] = set()

    def below(self, parent: GraphQLNamedType, keep: Wanted) -> tuple[SelectionSetNode, Wanted]:
        selections: list[SelectionNode] = []
        if self._selection is not None:
            for node in self._selection.nodes:
                if node.selection_set is not None:
                    selections.extend(node.selection_set.selections)
        return self._set(selections, parent, keep)

    def _set(
        self, selections: list[SelectionNode], parent: GraphQLNamedType | None, keep: Wanted
    ) -> tuple[SelectionSetNode, Wanted]:
        kept: list[SelectionNode] = []
        selected: dict[str, Wanted] = {}
        variables = self._selection.variables if self._selection is not None else {}
        for node in selections:
            if not included(node, variables):
                continue
            if isinstance(node, FieldNode):
                kept.append(self._field(node, parent, keep, selected))
            else:
                fragment = self._fragment(node, parent, selected)
                if fragment is not None:
                    kept.append(fragment)
        present = {response_key(node) for node in kept if isinstance(node, FieldNode)}
        for key, below in keep:
            if key not in present:
                kept.append(new_field(key, below))
        if not any(is_typename(node) for node in kept) and (
            not kept or isinstance(parent, GraphQLInterfaceType | GraphQLUnionType)
        ):
            kept.insert(0, TYPENAME)
        return SelectionSetNode(selections=tuple(kept)), tuple(sorted(selected.items()))

    def _field(
        self, node: FieldNode, parent: GraphQLNamedType | None, keep: Wanted, selected: dict[str, Wanted]
    ) -> FieldNode:
        key = response_key(node)
        self._note_variables(node.arguments)
        selection_set = None
        below: Wanted = ()
        if node.selection_set is not None:
            child = None
            if (
                isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
                and node.name.value in parent.fields
            ):
                child = get_named_type(parent.fields[node.name.value].type)
            keep_below = next((sub for name, sub in keep if name == key), None) or ()
            selection_set, below = self._set(list(node.selection_set.selections), child, keep_below)
        selected[key] = _merged(selected.get(key, ()), below)
        return FieldNode(
            alias=node.alias,
            name=node.name,
            arguments=node.arguments,
            directives=_other_directives(node),
            selection_set=selection_set,
        )

    def _fragment(
        self, node: SelectionNode, parent: GraphQLNamedType | None, selected: dict[str, Wanted]
    ) -> InlineFragmentNode | None:
        if isinstance(node, InlineFragmentNode):
            condition, inner = node.type_condition, node.selection_set
        elif isinstance(node, FragmentSpreadNode) and self._selection is not None:
            fragment = self._selection.fragments.get(node.name.value)
            if fragment is None:
                return None
            condition, inner = fragment.type_condition, fragment.selection_set
        else:
            return None
        fragment_type = parent
        if condition is not None:
            upstream = self._names.get(condition.name.value, condition.name.value)
            condition = NamedTypeNode(name=NameNode(value=upstream))
            fragment_type = self._schema.get_type(upstream)
        cut, below = self._set(list(inner.selections), fragment_type, ())
        for key, sub in below:
            selected[key] = _merged(selected.get(key, ()), sub or ())
        return InlineFragmentNode(
            type_condition=condition, directives=_other_directives(node), selection_set=cut
        )

    def _note_variables(self, arguments: Any) -> None:
        self.variables |= variables_in(arguments)

    def client_definitions(self) -> list[VariableDefinitionNode]:
        """The client's definitions of the variables the forwarded selection uses, in upstream names."""
        if self._selection is None:
            return []
        return [
            VariableDefinitionNode(
                variable=definition.variable,
                type=self._renamed(definition.type),
                default_value=definition.default_value,
            )
            for definition in self._selection.definitions
            if definition.variable.name.value in self.variables
        ]

    def _renamed(self, type_: TypeNode) -> TypeNode:
        text = print_ast(type_)
        name = text.strip("[]!")
        upstream = self._names.get(name)
        return parse_type(text.replace(name, upstream)) if upstream else type_


def _merged(first: Wanted, second: Wanted) -> Wanted:
    if not first:
        return second
    if not second:
        return first
    tree = dict(first)
    for key, below in second:
        tree[key] = _merged(tree.get(key) or (), below or ())
    return tuple(sorted(tree.items()))


def _other_directives(node: SelectionNode) -> Any:
    """The node's directives but ``@skip``/``@include`` (evaluated here)."""
    return tuple(d for d in node.directives or () if d.name.value not in ("skip", "include"))
