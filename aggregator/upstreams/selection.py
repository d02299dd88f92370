"""What a client selected below one gateway field: the neutral value the schema layer hands down.

The schema layer builds a ``ClientSelection`` from its resolver's ``info`` (graphql-core's own nodes,
no gateway type in it); the GraphQL upstream reads it to send only what the client asked for
(pushdown.py). Reading it needs no gateway schema: below an operation's field, a gateway field's name
is the response key of the upstream's answer it reads.

``wanted`` reduces a selection to a tree of those response keys: the client's aliases, fragments and
type conditions are the gateway's business (it completes the answer against the client's query), so
keys selected under different type conditions are merged, and ``@skip``/``@include`` are evaluated
with the client's variables (``conditions`` names the variables they read: one tree per combination
of their values).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionNode,
    SelectionSetNode,
    VariableDefinitionNode,
    VariableNode,
)

__all__ = ["ClientSelection", "Wanted", "conditions", "included", "wanted"]

# Response keys of the upstream's answer, sorted, each with the tree below it (None: a leaf).
Wanted: TypeAlias = "tuple[tuple[str, Wanted | None], ...]"


class ClientSelection(NamedTuple):
    """The client's selection of one field: its nodes, the request's fragments and variable values.

    A named tuple: made once per call of an operation field, it must cost next to nothing. The nodes
    belong to the parsed request, which the server caches by its text: the same request
    gives the same node objects, and that identity is what the push-down's cache is keyed by.
    """

    nodes: Sequence[FieldNode]
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    # The request's variable definitions: an exposed field forwards those its selection uses.
    definitions: Sequence[VariableDefinitionNode] = ()


def wanted(selection: ClientSelection) -> Wanted:
    """The response keys the client reads below the selection's field, with ``@skip``/``@include`` applied."""
    tree: dict[str, Any] = {}
    for node in selection.nodes:
        if node.selection_set is not None:
            _collect(node.selection_set, selection, tree, set())
    return _freeze(tree)


def conditions(selection: ClientSelection) -> tuple[str, ...]:
    """The client variables that ``@skip``/``@include`` read below the selection's field, in any branch."""
    found: set[str] = set()
    for node in selection.nodes:
        if node.selection_set is not None:
            for child in _all_selections(node.selection_set, selection.fragments, set()):
                for directive in child.directives or ():
                    found.update(_variables_of(directive))
    return tuple(sorted(found))


def _collect(
    selection_set: SelectionSetNode, selection: ClientSelection, tree: dict[str, Any], spreading: set[str]
) -> None:
    for child in selection_set.selections:
        if not included(child, selection.variables):
            continue
        if isinstance(child, FieldNode):
            name = child.name.value
            if name.startswith("__"):
                continue  # __typename: the gateway answers it (and asks the upstream where it needs it)
            if child.selection_set is None:
                tree.setdefault(name, None)
                continue
            below = tree.get(name)
            if below is None:
                below = tree[name] = {}
            _collect(child.selection_set, selection, below, spreading)
        elif isinstance(child, InlineFragmentNode):
            _collect(child.selection_set, selection, tree, spreading)
        elif isinstance(child, FragmentSpreadNode):
            name = child.name.value
            fragment = selection.fragments.get(name)
            if fragment is not None and name not in spreading:
                _collect(fragment.selection_set, selection, tree, spreading | {name})


def _freeze(tree: Mapping[str, Any]) -> Wanted:
    return tuple((key, None if below is None else _freeze(below)) for key, below in sorted(tree.items()))


def included(node: SelectionNode, variables: Mapping[str, Any]) -> bool:
    """GraphQL's rule: skipped when ``@skip(if: true)``, or ``@include(if: false)``."""
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        value = _condition(directive, variables)
        if (name == "skip" and value is True) or (name == "include" and value is not True):
            return False
    return True


def _condition(directive: DirectiveNode, variables: Mapping[str, Any]) -> Any:
    for argument in directive.arguments or ():
        if argument.name.value != "if":
            continue
        if isinstance(argument.value, BooleanValueNode):
            return argument.value.value
        if isinstance(argument.value, VariableNode):
            return variables.get(argument.value.name.value)
    return None


def _variables_of(directive: DirectiveNode) -> Iterator[str]:
    if directive.name.value in ("skip", "include"):
        for argument in directive.arguments or ():
            if isinstance(argument.value, VariableNode):
                yield argument.value.name.value


def _all_selections(
    selection_set: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], spreading: set[str]
) -> Iterator[SelectionNode]:
    """Every selection below, in every branch, fragments followed once each."""
    for child in selection_set.selections:
        yield child
        if isinstance(child, FieldNode | InlineFragmentNode) and child.selection_set is not None:
            yield from _all_selections(child.selection_set, fragments, spreading)
        elif isinstance(child, FragmentSpreadNode):
            name = child.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in spreading:
                spreading.add(name)
                yield from _all_selections(fragment.selection_set, fragments, spreading)
