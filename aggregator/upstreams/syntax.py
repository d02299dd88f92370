"""Small readers and builders of GraphQL syntax trees, shared by the cut (pushdown.py) and the forwarded
(forward.py) documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphql import (
    FieldNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    NameNode,
    Node,
    SelectionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    visit,
)
from graphql.language import Visitor

from aggregator.upstreams.selection import Wanted

__all__ = ["TYPENAME", "field_type", "is_typename", "new_field", "response_key", "variables_in"]

TYPENAME = FieldNode(name=NameNode(value="__typename"))


def field_type(parent: GraphQLNamedType | None, name: str) -> GraphQLNamedType | None:
    """The named type of ``parent``'s field ``name``; None when unknown."""
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        found = parent.fields.get(name)
        if found is not None:
            named: GraphQLNamedType = get_named_type(found.type)
            return named
    return None


def response_key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def is_typename(node: SelectionNode) -> bool:
    return isinstance(node, FieldNode) and node.alias is None and node.name.value == "__typename"


def new_field(name: str, below: Wanted | None) -> FieldNode:
    """A field asked for by its name (no arguments), with ``below`` as its selection."""
    selection_set = None
    if below:
        selection_set = SelectionSetNode(selections=tuple(new_field(key, sub) for key, sub in below))
    return FieldNode(name=NameNode(value=name), selection_set=selection_set)


class _VariableNames(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def variables_in(*nodes: Node | Sequence[Node] | None) -> set[str]:
    """The names of the variables used anywhere in ``nodes``."""
    finder = _VariableNames()
    for node in nodes:
        for one in node if isinstance(node, Sequence) else (node,) if node is not None else ():
            visit(one, finder)
    return finder.names
