"""Only the selected fields go upstream: an operation's document cut down to the client's selection.

What is sent for a call of a document operation:

- along ``select:`` (the path of response keys the gateway field returns), only the fields on that
  path; below it, the document's fields whose response keys the client selected (with their
  arguments, aliases and directives as the document writes them), and the fields the gateway itself
  needs (``keep``: paths of response keys always sent, e.g. the keys a join reads);
- fragments inlined (a named fragment may be cut differently where it is spread), ``__typename``
  added to every selection of an interface or union type (the gateway resolves the concrete type
  from it), and a selection left empty asks for ``__typename`` alone;
- only the variables the cut document still uses, and their definitions.

A call without a client selection (a leaf or JSON field, or a library call) sends the whole
subtree at ``select:``. Cuts are cached twice, both bounded: by the identity of the client's field
nodes (and the values of the ``@skip``/``@include`` variables they read), which costs a dict lookup
per request once warm, and by the tree of keys selected, so that equal selections share one cut.
Upstream errors at paths the client did not select (a key field the gateway added) are dropped:
``Cut.reports``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    print_ast,
)

from aggregator.upstreams.forward import Exposed, forward
from aggregator.upstreams.selection import ClientSelection, Wanted, conditions, wanted
from aggregator.upstreams.syntax import (
    TYPENAME,
    field_type,
    is_typename,
    new_field,
    response_key,
    variables_in,
)

__all__ = ["Cut", "DocumentCutter"]

# Distinct client selections per integration; the set reaching a public endpoint is not trusted.
_MAX_CUTS = 1024


@dataclass(frozen=True, slots=True, eq=False)
class Cut:
    """The document sent for one operation and client selection."""

    query: str
    document: DocumentNode
    # The params sent, each under its variable's name; the client's own variables forwarded (expose:).
    params: Mapping[str, str]
    client_variables: frozenset[str]
    # Where upstream errors reach the client: the select path, then the client's keys (None: all).
    path: tuple[str, ...]
    selected: Wanted | None
    # Two calls whose cuts have equal keys send the same document and report the same errors.
    key: str

    def reports(self, error_path: Sequence[str | int]) -> bool:
        """Whether an upstream error at ``error_path`` (keys and list indices) is one the client asked for."""
        keys = [key for key in error_path if isinstance(key, str)]
        if keys[: len(self.path)] != list(self.path[: len(keys)]):
            return False
        below = self.selected
        for key in keys[len(self.path) :]:
            found, below = _lookup(below, key)
            if not found:
                return False
        return True


@dataclass(slots=True)
class _Seen:
    """A client's field nodes seen before: held so that their ids stay theirs while cached."""

    nodes: tuple[FieldNode, ...]
    conditions: tuple[str, ...]
    cuts: dict[tuple[Any, ...], Cut] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Source:
    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    path: tuple[str, ...]


class DocumentCutter:
    """The cut documents of one GraphQL integration's operations, cached."""

    def __init__(self, max_cuts: int = _MAX_CUTS) -> None:
        self._sources: dict[str, _Source | Exposed] = {}
        self._upstream_names: Mapping[str, str] = {}
        self._keep: dict[str, Wanted] = {}
        self._schema: GraphQLSchema | None = None
        self._max = max_cuts
        self._seen: dict[tuple[Any, ...], _Seen] = {}
        self._cuts: dict[tuple[str, Wanted | None], Cut] = {}

    def add(
        self, operation_id: str, document: DocumentNode, operation_name: str | None, select: str | None
    ) -> None:
        """Register an operation's document; ``select`` is its dotted path of response keys."""
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        operation = next(
            (d for d in operations if operation_name is None or (d.name and d.name.value == operation_name)),
            operations[0],
        )
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        path = tuple(select.split(".")) if select else ()
        self._sources[operation_id] = _Source(document, operation, fragments, path)
        self._clear()

    def keep(self, operation_id: str, paths: Iterable[Sequence[str]]) -> None:
        """Always send these paths of response keys below the operation's field, selected or not."""
        tree: dict[str, Any] = {}
        _merge(tree, self._keep.get(operation_id, ()))
        for path in paths:
            added: Wanted | None = None
            for key in reversed(path):
                added = ((key, added),)
            _merge(tree, added or ())
        self._keep[operation_id] = _freeze(tree)
        self._clear()

    def expose(self, operation_id: str, exposed: Exposed) -> None:
        """Register an exposed root field (forward.py): the client's selection is its document."""
        self._sources[operation_id] = exposed
        self._clear()

    def use_schema(
        self, schema: GraphQLSchema | None, upstream_names: Mapping[str, str] | None = None
    ) -> None:
        """The upstream's schema, which says which selections are abstract (they get ``__typename``), and
        the upstream's name of each gateway type named otherwise (a clash renamed it)."""
        self._schema = schema
        self._upstream_names = upstream_names or {}
        self._clear()

    def cut(self, operation_id: str, selection: ClientSelection | None) -> Cut:
        """The document to send for ``selection`` (None: the whole subtree at ``select:``)."""
        if selection is None:
            return self._cut_for(operation_id, None)
        nodes = selection.nodes
        first = nodes[0]
        # Per request once warm: one lookup by the nodes' ids (kept alive by the entry, so theirs).
        single = len(nodes) == 1
        identity = (operation_id, id(first)) if single else (operation_id, *map(id, nodes))
        seen = self._seen.get(identity)
        if seen is None or seen.nodes[0] is not first or not (single or _same(seen.nodes, nodes)):
            seen = _Seen(tuple(nodes), conditions(selection))
            _bounded_put(self._seen, identity, seen, self._max)
        names = seen.conditions
        values = tuple([selection.variables.get(name) for name in names]) if names else ()
        cut = seen.cuts.get(values)
        if cut is None:
            source = self._sources[operation_id]
            if isinstance(source, Exposed):
                cut = self._forward(operation_id, source, selection)
            else:
                cut = self._cut_for(operation_id, wanted(selection))
            seen.cuts[values] = cut
        return cut

    def _cut_for(self, operation_id: str, selected: Wanted | None) -> Cut:
        key = (operation_id, selected)
        cut = self._cuts.get(key)
        if cut is None:
            source = self._sources[operation_id]
            keep = self._keep.get(operation_id, ())
            if isinstance(source, Exposed):
                cut = self._forward(operation_id, source, None)
            else:
                cut = _Cutter(source, keep, self._schema).cut(selected)
            _bounded_put(self._cuts, key, cut, self._max)
        return cut

    def _forward(self, operation_id: str, exposed: Exposed, selection: ClientSelection | None) -> Cut:
        if self._schema is None:
            raise RuntimeError(f"exposed operation {operation_id!r} is called before the schema is known")
        keep = self._keep.get(operation_id, ())
        forwarded = forward(exposed, selection, self._schema, self._upstream_names, keep)
        query = print_ast(forwarded.document)
        key = query if not keep else f"{query}\n#{forwarded.selected!r}"
        path = (exposed.field,)
        return Cut(
            query,
            forwarded.document,
            forwarded.params,
            forwarded.client_variables,
            path,
            forwarded.selected,
            key,
        )

    def _clear(self) -> None:
        self._seen.clear()
        self._cuts.clear()


def _same(held: Sequence[FieldNode], nodes: Sequence[FieldNode]) -> bool:
    return len(held) == len(nodes) and all(a is b for a, b in zip(held, nodes, strict=True))


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    if len(cache) >= size:
        del cache[next(iter(cache))]  # the oldest: insertion order
    cache[key] = value


def _merge(tree: dict[str, Any], add: Wanted) -> None:
    """Add ``add`` to ``tree``; a key wanted whole (None) stays whole."""
    for key, below in add:
        if below is None or (key in tree and tree[key] is None):
            tree[key] = None
        else:
            _merge(tree.setdefault(key, {}), below)


def _freeze(tree: Mapping[str, Any]) -> Wanted:
    return tuple((key, None if below is None else _freeze(below)) for key, below in sorted(tree.items()))


def _lookup(tree: Wanted | None, key: str) -> tuple[bool, Wanted | None]:
    """(whether ``key`` is in ``tree``, its subtree); a None tree holds every key, whole."""
    if tree is None:
        return True, None
    for name, below in tree:
        if name == key:
            return True, below
    return False, None


class _Cutter:
    """One cut of one operation's document."""

    def __init__(self, source: _Source, keep: Wanted, schema: GraphQLSchema | None) -> None:
        self._source = source
        self._keep = keep
        self._schema = schema

    def cut(self, selected: Wanted | None) -> Cut:
        operation = self._source.operation
        root: GraphQLNamedType | None = None
        if self._schema is not None:
            root = (
                self._schema.mutation_type
                if operation.operation is OperationType.MUTATION
                else self._schema.query_type
            )
        selection_set = self._along(operation.selection_set, self._source.path, selected, root)
        used = variables_in(selection_set, operation.directives)
        definitions = tuple(d for d in operation.variable_definitions or () if d.variable.name.value in used)
        cut_operation = OperationDefinitionNode(
            operation=operation.operation,
            name=operation.name,
            variable_definitions=definitions,
            directives=operation.directives,
            selection_set=selection_set,
        )
        document = DocumentNode(definitions=(cut_operation,))
        query = print_ast(document)
        key = query if not self._keep else f"{query}\n#{selected!r}"
        params = {name: name for name in sorted(used)}
        return Cut(query, document, params, frozenset(), self._source.path, selected, key)

    def _along(
        self,
        selection_set: SelectionSetNode,
        path: tuple[str, ...],
        selected: Wanted | None,
        parent: GraphQLNamedType | None,
    ) -> SelectionSetNode:
        """The selection set with only the field at ``path[0]`` (then the rest of the path) kept."""
        if not path:
            return self._below(selection_set, _with_keep(selected, self._keep), parent, self._keep)
        head, rest = path[0], path[1:]
        kept: list[SelectionNode] = []
        for node, node_parent in self._flat(selection_set, parent):
            if isinstance(node, FieldNode) and response_key(node) == head and node.selection_set is not None:
                child_type = field_type(node_parent, node.name.value)
                kept.append(
                    _with_selection(node, self._along(node.selection_set, rest, selected, child_type))
                )
            elif isinstance(node, FieldNode) and response_key(node) == head:
                kept.append(node)
        return self._finish(kept, parent)

    def _below(
        self,
        selection_set: SelectionSetNode,
        selected: Wanted | None,
        parent: GraphQLNamedType | None,
        keep: Wanted = (),
    ) -> SelectionSetNode:
        """The selections ``selected`` wants (None: all); the ``keep`` keys the document lacks are added."""
        kept: list[SelectionNode] = []
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                key = response_key(node)
                found, below = _lookup(selected, key)
                if not found:
                    continue
                if node.selection_set is None:
                    kept.append(node)
                else:
                    child_type = field_type(parent, node.name.value)
                    keep_below = next((sub for name, sub in keep if name == key), None) or ()
                    cut = self._below(node.selection_set, below, child_type, keep_below)
                    kept.append(_with_selection(node, cut))
            else:
                condition, inner = self._fragment(node)
                if inner is None:
                    continue
                fragment_type = parent
                if condition is not None and self._schema is not None:
                    fragment_type = self._schema.get_type(condition.name.value)
                cut = self._below(inner, selected, fragment_type)
                if any(not is_typename(child) for child in cut.selections):
                    kept.append(
                        InlineFragmentNode(
                            type_condition=condition, directives=node.directives, selection_set=cut
                        )
                    )
        present = {response_key(node) for node in kept if isinstance(node, FieldNode)}
        kept.extend(new_field(key, sub) for key, sub in keep if key not in present)
        return self._finish(kept, parent)

    def _fragment(self, node: SelectionNode) -> tuple[NamedTypeNode | None, SelectionSetNode | None]:
        if isinstance(node, InlineFragmentNode):
            return node.type_condition, node.selection_set
        if isinstance(node, FragmentSpreadNode):
            fragment = self._source.fragments.get(node.name.value)
            if fragment is not None:
                return fragment.type_condition, fragment.selection_set
        return None, None

    def _flat(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None
    ) -> list[tuple[SelectionNode, GraphQLNamedType | None]]:
        """The fields of a selection set along ``select:``, fragments opened (the path is of fields)."""
        found: list[tuple[SelectionNode, GraphQLNamedType | None]] = []
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                found.append((node, parent))
                continue
            condition, inner = self._fragment(node)
            if inner is not None:
                fragment_type = parent
                if condition is not None and self._schema is not None:
                    fragment_type = self._schema.get_type(condition.name.value)
                found.extend(self._flat(inner, fragment_type))
        return found

    @staticmethod
    def _finish(kept: list[SelectionNode], parent: GraphQLNamedType | None) -> SelectionSetNode:
        abstract = isinstance(parent, GraphQLInterfaceType | GraphQLUnionType)
        has_typename = any(is_typename(node) for node in kept)
        if not has_typename and (abstract or not kept):
            kept.insert(0, TYPENAME)
        return SelectionSetNode(selections=tuple(kept))


def _with_keep(selected: Wanted | None, keep: Wanted) -> Wanted | None:
    if selected is None or not keep:
        return selected
    tree: dict[str, Any] = {}
    _merge(tree, selected)
    _merge(tree, keep)
    return _freeze(tree)


def _with_selection(node: FieldNode, selection_set: SelectionSetNode) -> FieldNode:
    return FieldNode(
        alias=node.alias,
        name=node.name,
        arguments=node.arguments,
        directives=node.directives,
        selection_set=selection_set,
    )
