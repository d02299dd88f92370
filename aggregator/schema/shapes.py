"""Values of the wrong shape in an upstream's answer, reported as UPSTREAM_BAD_RESPONSE at their path.

Both executors (compiled plans and graphql-core) complete an answer by graphql-core's rules, so they
refuse the same values with the same located errors: a non-list where a list is declared
(``Expected Iterable``), a non-object where an object type is (``is_json_object`` is every config
type's ``is_type_of``), a value a scalar's serializer refuses (graphql-js's rules: Int takes integers
in 32 bits, integral floats, numeric strings and booleans; String takes strings, numbers and
booleans; ...), and a null where non-null is declared. Such an error carries no code and no word of
the upstream; ``refine_errors`` turns each one found under an operation's field into an
``UpstreamBadValue`` naming the integration and operation, at the same path, so the field is nulled
(and null propagates) exactly as before. The operation named is the one whose answer holds the value:
the deepest joined field on the error's path, else the root field. It runs once per request that has
errors, for either executor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)

from aggregator.errors import AggregatorError, UpstreamBadResponse, UpstreamBadValue
from aggregator.schema.joins import JoinResolver

__all__ = ["is_json_object", "mark_origin", "origin_of", "refine_errors"]

_ORIGIN = "__aggregator_origin__"
# graphql-core's message for an integer beyond 32 bits (graphql/type/scalars.py, 3.3).
_INT_RANGE = "Int cannot represent non 32-bit signed integer value"


def is_json_object(value: Any, _info: Any) -> bool:
    """The ``is_type_of`` of every config type: its values are JSON objects."""
    return isinstance(value, dict)


def mark_origin(resolve: Callable[..., Any], integration: str, operation: str) -> None:
    """Record which integration and operation answer the field ``resolve`` resolves."""
    setattr(resolve, _ORIGIN, (integration, operation))


def origin_of(resolve: object) -> tuple[str, str] | None:
    if isinstance(resolve, JoinResolver):
        return resolve.origin
    origin = getattr(resolve, _ORIGIN, None)
    return origin if isinstance(origin, tuple) else None


def refine_errors(
    errors: list[GraphQLError],
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> list[GraphQLError]:
    """``errors`` with every wrong-shape error under an operation's field made an UpstreamBadValue."""
    root_type = schema.get_root_type(operation.operation)
    if root_type is None or not any(_is_bad_value(error) for error in errors):
        return errors
    refined: list[GraphQLError] = []
    for error in errors:
        origin = None
        if _is_bad_value(error) and error.path:
            origin = _origin(schema, root_type, operation.selection_set, error.path, fragments)
        refined.append(error if origin is None else _bad_value(error, *origin))
    return refined


def _origin(
    schema: GraphQLSchema,
    root_type: GraphQLObjectType,
    selection_set: SelectionSetNode,
    path: Sequence[str | int],
    fragments: Mapping[str, FragmentDefinitionNode],
) -> tuple[str, str] | None:
    """Who answered the value at ``path``: the origin of the deepest field on it that has one (a
    joined field below a root field), walking the request's selections and the schema's types."""
    origin = None
    parent: GraphQLNamedType = root_type
    selections = [selection_set]
    for key in path:
        if isinstance(key, int):
            continue  # a list's item: the same field
        nodes = [node for s in selections for node in _fields_at(s, key, fragments, set())]
        field = _field_of(schema, parent, nodes[0].name.value) if nodes else None
        if field is None:
            break
        origin = origin_of(field.resolve) or origin
        parent = get_named_type(field.type)
        selections = [node.selection_set for node in nodes if node.selection_set is not None]
    return origin


def _field_of(schema: GraphQLSchema, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
    """The field ``name`` of ``parent``; under an abstract type, the possible type's that has an
    origin of its own (a joined field stands on object types only), else any."""
    own = parent.fields.get(name) if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else None
    if isinstance(parent, GraphQLInterfaceType | GraphQLUnionType):
        found = [t.fields[name] for t in schema.get_possible_types(parent) if name in t.fields]
        return next((f for f in found if origin_of(f.resolve) is not None), own or next(iter(found), None))
    return own


def _is_bad_value(error: GraphQLError) -> bool:
    """An error of completion: located in the data, without a code. Deeper than the root field it can
    only be completion's (the fields below are dict lookups); at the root, completion raises GraphQLErrors
    while a failing resolver raises our errors (which have codes) or a bug's exception (kept as it is)."""
    path = error.path
    if not path:
        return False
    original = error.original_error
    if isinstance(original, UpstreamBadResponse) and not original.integration:
        return True  # raised while completing: a value of an abstract type that names no type of it
    if (error.extensions and "code" in error.extensions) or isinstance(original, AggregatorError):
        return False
    return len(path) > 1 or original is None or isinstance(original, GraphQLError)


def _bad_value(error: GraphQLError, integration: str, operation: str) -> GraphQLError:
    hint = "; declare the field BigInt for integers beyond 32 bits" if _INT_RANGE in error.message else ""
    where = ".".join(str(key) for key in error.path or ())
    bad = UpstreamBadValue(
        f"the answer does not fit the schema at {where}: {error.message}{hint}",
        integration=integration,
        operation=operation,
    )
    return GraphQLError(str(bad), error.nodes, error.source, error.positions, error.path, bad, bad.extensions)


def _fields_at(
    selection_set: SelectionSetNode,
    key: str,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: set[str],
) -> list[FieldNode]:
    """Every field node answered under response ``key`` in ``selection_set``, fragments included."""
    found: list[FieldNode] = []
    selections: Sequence[Any] = selection_set.selections
    for selection in selections:
        if isinstance(selection, FieldNode):
            if (selection.alias or selection.name).value == key:
                found.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            found += _fields_at(selection.selection_set, key, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                found += _fields_at(fragment.selection_set, key, fragments, seen)
    return found
