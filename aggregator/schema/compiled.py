"""Executing a validated operation from a plan compiled once, instead of graphql-core's executor.

Why: every field graphql-core executes goes through its general machinery (a ``GraphQLResolveInfo``, a
``Path``, argument coercion, ``complete_value``'s type dispatch, collected sub-fields), while below the
root fields the gateway's fields are plain lookups in the upstream's JSON. Measured with
``bench/execution_cost.py`` (resolvers answering at once, CPU per request, medians, same run, uvloop):
graphql-core's ``execute`` 252 µs for the benchmark's five-call fan-out, 60 µs for one REST call with a
nested object, 13 µs for ``{ __typename }``; the plan 40 µs, 8 µs and 2 µs. Of the fan-out's 40 µs,
about 10 are graphql-core's variable coercion and 7 the five tasks that run the root fields together.

What runs where:

- ``compile_operation`` (once per document and operation, cached by the runner) checks that the
  operation can be run from a plan at all: a query or mutation, every root field one of the
  gateway's operation resolvers (``operation_resolver``), every field below them a ``DictField``
  of a leaf (enums included), object or abstract type (an interface or union whose concrete type a
  ``TypeResolver`` names; each possible type gets its own object plan, made with graphql-core's
  field collection for that runtime type) whose objects' ``is_type_of`` is
  ``shapes.is_json_object``, and no directive but ``@skip``/``@include``. Anything
  else - introspection, ``integrationStats``, a resolver that is not ours, ``@defer``/``@stream``,
  subscriptions, abstract types not built by the gateway - gets None, and the runner uses
  graphql-core.
- The plan proper (which fields, merged how, in which order) is made with graphql-core's own
  ``collect_fields``, so field merging, fragments and ``@skip``/``@include`` mean exactly what they mean
  there. It depends on the values of the variables ``@skip``/``@include`` read, so one plan is made per
  combination of those values that requests use (at most ``MAX_VARIANTS``; a document without
  such variables has one), made on first use for about 150 µs. Evaluating them per request instead
  means graphql-core's field collection for every object: 43 µs for the fan-out, more than the
  plan's whole run.
- Per request: variables are coerced by graphql-core's ``get_variable_values``; each root field's
  arguments by ``get_argument_values`` (once at compile time when they hold no variables); its resolver
  is called with a real ``GraphQLResolveInfo``; query root fields are started together and awaited
  together, mutation fields one after the other. What they return is completed synchronously by
  the plan, with graphql-core's rules and error messages: scalars through their own
  ``coerce_output_value``, lists, non-null checks with null propagation to the nearest nullable field,
  errors located with ``located_error`` at the same path and nodes.

The result - ``data`` and ``errors`` in order - equals graphql-core's for the same resolver results
(tests/test_compiled.py checks that on generated documents and answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from inspect import isawaitable
from math import isfinite
from typing import Any, TypeAlias, TypeVar

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_non_null_type,
    located_error,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.language import ArgumentNode, ValueNode, visit
from graphql.language.visitor import Visitor
from graphql.pyutils import Path, Undefined, gather_with_cancel, inspect, is_iterable
from graphql.pyutils import is_awaitable as graphql_is_awaitable
from graphql.type import GraphQLBoolean, GraphQLID, GraphQLResolveInfoHelpers
from graphql.utilities import type_from_ast

from aggregator.errors import UpstreamBadResponse
from aggregator.schema.joins import JoinResolver
from aggregator.schema.shapes import is_json_object

__all__ = [
    "MAX_VARIANTS",
    "CompiledOperation",
    "DictField",
    "ResponseKeyField",
    "TypeResolver",
    "compile_operation",
    "is_operation_resolver",
    "operation_resolver",
]

# Plans kept per operation, one per combination of @skip/@include variable values seen.
MAX_VARIANTS = 16
# graphql-core's default for execute().
_MAX_COERCION_ERRORS = 50
_CONDITIONS = frozenset({"skip", "include"})
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

Resolver = TypeVar("Resolver", bound=Callable[..., Any])
# A response path as a linked list of (parent, key): made only for objects and lists, turned into
# graphql-core's list form only when an error needs it.
_Path: TypeAlias = "tuple[_Path, str | int] | None"


class DictField:
    """The resolver of a config type's field: the JSON object's value under ``key``, null for a non-object.

    A class rather than a closure so that a plan can recognise the field as ours and read its key.
    """

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, source: Any, info: GraphQLResolveInfo[Any], **_: Any) -> Any:
        # The type's is_type_of has refused a non-object already (shapes.py); this guard is for types
        # whose is_type_of is not ours.
        return source.get(self.key) if isinstance(source, dict) else None


class ResponseKeyField(DictField):
    """The resolver of a field of a forwarded type (an exposed upstream field's): the JSON object's value
    under the field's response key, since the upstream answered the client's own selection, aliases
    included. A plan reads the response key itself."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("")

    def __call__(self, source: Any, info: GraphQLResolveInfo[Any], **_: Any) -> Any:
        return source.get(info.path.key) if isinstance(source, dict) else None


class TypeResolver:
    """The ``resolve_type`` of a config interface or union: the concrete type a JSON object names.

    The name is the object's ``__typename`` (as a GraphQL upstream sends it), or with a
    ``discriminator`` the value of that property, through ``mapping`` where it lists the value. With
    ``shapes`` (each possible type's wire keys: an OpenAPI ``oneOf``), an object naming no type is the
    type whose keys it matches best: the most of its keys declared, then the fewest declared missing.
    A value that names no possible type is the upstream's fault: UPSTREAM_BAD_RESPONSE, saying what
    was found.
    A class rather than a closure so that a plan can recognise it and call it itself.
    """

    __slots__ = ("abstract", "key", "mapping", "possible", "shapes")

    def __init__(
        self,
        abstract: str,
        possible: Iterable[str],
        discriminator: str | None = None,
        mapping: Mapping[str, str] | None = None,
        shapes: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.abstract = abstract
        self.possible = frozenset(possible)
        self.key = discriminator or "__typename"
        self.mapping = dict(mapping or {})
        self.shapes = dict(shapes or {})

    def name(self, value: Any) -> str:
        if not isinstance(value, dict):
            raise UpstreamBadResponse(
                f"upstream answered {type(value).__name__} where an object of type {self.abstract}"
                " was expected"
            )
        found = value.get(self.key)
        name = self.mapping.get(found, found) if isinstance(found, str) else None
        if name not in self.possible and self.shapes:
            keys = value.keys()
            name = max(self.shapes, key=lambda n: (len(self.shapes[n] & keys), -len(self.shapes[n] - keys)))
        if name not in self.possible:
            shown = "no " + self.key if found is None else f"{self.key} {found!r}"
            raise UpstreamBadResponse(
                f"upstream answered an object with {shown}, which names no type of {self.abstract}"
                f" (one of {', '.join(sorted(self.possible))})"
            )
        assert isinstance(name, str)
        return name

    def __call__(self, value: Any, _info: GraphQLResolveInfo[Any], _type: Any) -> str:
        return self.name(value)


_OPERATION_MARK = "__aggregator_operation_resolver__"


def operation_resolver(resolve: Resolver) -> Resolver:
    """Mark ``resolve`` as one of the gateway's operation resolvers, which a plan may call itself.

    Such a resolver reads no more of its ``info`` than ``context`` and ``path``, and returns plain JSON.
    """
    setattr(resolve, _OPERATION_MARK, True)
    return resolve


def is_operation_resolver(resolve: object) -> bool:
    return getattr(resolve, _OPERATION_MARK, False) is True


def _path_list(path: _Path) -> list[str | int]:
    keys: list[str | int] = []
    while path is not None:
        path, key = path
        keys.append(key)
    keys.reverse()
    return keys


# --- completing values below a root field ---------------------------------------------------------


class _Outcome(list[GraphQLError]):
    """A run's errors, in order, and the joined fields met while completing, left to fill.

    A joined field is completed as null where it stands; its call is started once the level it is
    on is complete (so that a batch sees every parent of that level), and its value is completed
    into the same place when the call ends (``CompiledOperation._fill_joins``).
    """

    __slots__ = ("joins",)

    def __init__(self) -> None:
        super().__init__()
        self.joins: list[tuple[_JoinField, Any, dict[str, Any], str, _Path]] = []


class _JoinField:
    """A joined field of an object in the plan: its resolver (joins.py), arguments and completion."""

    __slots__ = ("args", "field", "name", "nodes", "parent", "resolve", "slot")

    def __init__(
        self, field: GraphQLField, resolve: JoinResolver, parent: GraphQLObjectType, slot: _Slot
    ) -> None:
        self.field = field
        self.resolve = resolve
        self.parent = parent
        self.slot = slot
        self.nodes = slot.nodes
        self.name = self.nodes[0].name.value
        self.args: dict[str, Any] | None = None


class _Completer:
    """Completes a non-null value of a nullable type: graphql-core's complete_value after its null check.

    The completion is never None: a leaf that coerces to None raises, as graphql-core's does.
    """

    __slots__ = ()

    def complete(self, value: Any, path: _Path, errors: _Outcome) -> Any:
        raise NotImplementedError


class _NoFastPath:
    """Stands for "no Python type passes unchanged": no value has it as its type."""


class _Slot:
    """A position a value is completed into: a field, or a list's item. Handles its null and its errors."""

    __slots__ = ("completer", "nodes", "non_null", "null_message", "passes")

    def __init__(
        self, completer: _Completer, non_null: bool, nodes: list[FieldNode], null_message: str
    ) -> None:
        self.completer = completer
        self.non_null = non_null
        self.nodes = nodes
        self.null_message = null_message
        # Values of this Python type are their own completion (str for String and ID, bool for Boolean).
        self.passes = completer.passes if isinstance(completer, _Leaf) else _NoFastPath

    def complete(self, value: Any, parent: _Path, key: str | int, errors: _Outcome) -> Any:
        if value is None:
            if self.non_null:
                raise located_error(TypeError(self.null_message), self.nodes, _path_list((parent, key)))
            return None
        if type(value) is self.passes:
            return value
        path = (parent, key)
        try:
            return self.completer.complete(value, path, errors)
        except Exception as error:
            # graphql-core's handle_field_error: a non-null position passes the error to its parent.
            located = located_error(error, self.nodes, _path_list(path))
            if self.non_null:
                # Often the very error caught (already located below): no chaining it to itself.
                raise located from None
            errors.append(located)
            return None


class _Leaf(_Completer):
    __slots__ = ("coerce", "passes", "type")

    def __init__(self, type_: GraphQLLeafType) -> None:
        self.type = type_
        self.coerce = type_.coerce_output_value
        # The built-in scalars return these values unchanged; anything else goes through the scalar.
        passes: dict[GraphQLLeafType, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}
        self.passes: type = passes.get(type_, _NoFastPath)

    def complete(self, value: Any, path: _Path, errors: _Outcome) -> Any:
        coerced = self.coerce(value)
        if coerced is None or coerced is Undefined:
            # graphql-core's complete_leaf_value, word for word.
            raise TypeError(
                f"Expected `{inspect(self.type)}.coerce_output_value({inspect(value)})` to return"
                f" non-nullable value, returned: {inspect(coerced)}"
            )
        return coerced


class _IntLeaf(_Leaf):
    __slots__ = ()

    def complete(self, value: Any, path: _Path, errors: _Outcome) -> Any:
        if type(value) is int and _INT_MIN <= value <= _INT_MAX:
            return value
        return super().complete(value, path, errors)


class _FloatLeaf(_Leaf):
    __slots__ = ()

    def complete(self, value: Any, path: _Path, errors: _Outcome) -> Any:
        if type(value) is float and isfinite(value):
            return value
        return super().complete(value, path, errors)


class _List(_Completer):
    __slots__ = ("item", "not_iterable")

    def __init__(self, item: _Slot, not_iterable: str) -> None:
        self.item = item
        self.not_iterable = not_iterable

    def complete(self, value: Any, path: _Path, errors: _Outcome) -> Any:
        if type(value) is not list and not is_iterable(value):
            raise GraphQLError(self.not_iterable)
        complete = self.item.complete
        return [complete(item, path, index, errors) for index, item in enumerate(value)]


class _Abstract(_Completer):
    """An interface or union: the concrete type named by the value, completed as that object type."""

    __slots__ = ("name", "objects")

    def __init__(self, name: Callable[[Any], str], objects: dict[str, _Object]) -> None:
        self.name = name
        self.objects = objects

    def complete(self, value: Any, path: _Path, errors: _Outcome) -> Any:
        return self.objects[self.name(value)].complete(value, path, errors)


class _Object(_Completer):
    __slots__ = ("fields", "joins", "typename")

    def __init__(self, typename: str) -> None:
        self.typename = typename
        # (response key, JSON key, slot); the slot is None for __typename and joined fields.
        self.fields: tuple[tuple[str, str, _Slot | None], ...] = ()
        # Response key -> the joined field there.
        self.joins: dict[str, _JoinField] = {}

    def complete(self, value: Any, path: _Path, errors: _Outcome) -> Any:
        if not isinstance(value, dict):
            # graphql-core's invalid_return_type_error, word for word (the type's is_type_of refused it).
            raise GraphQLError(f"Expected value of type '{self.typename}' but got: {inspect(value)}.")
        data: dict[str, Any] = {}
        joins_before = len(errors.joins)
        try:
            for response_key, key, slot in self.fields:
                if slot is None:
                    join = self.joins.get(response_key) if self.joins else None
                    if join is None:
                        data[response_key] = self.typename
                    else:
                        data[response_key] = None
                        errors.joins.append((join, value, data, response_key, path))
                    continue
                raw = value.get(key)
                # Most leaves are strings already: no call for them (_Slot.complete does the same first).
                if type(raw) is slot.passes:
                    data[response_key] = raw
                else:
                    data[response_key] = slot.complete(raw, path, response_key, errors)
        except Exception:
            # A non-null field failed: this object is null, so the joined fields met inside it are
            # never called, and their errors never reported (as graphql-core never resolves them).
            del errors.joins[joins_before:]
            raise
        return data


# --- root fields -----------------------------------------------------------------------------------


def _track(values: Sequence[Any]) -> None:
    awaitables = [value for value in values if isawaitable(value)]
    if awaitables:
        future = asyncio.gather(*awaitables, return_exceptions=True)
        _BACKGROUND.add(future)
        future.add_done_callback(_BACKGROUND.discard)


def _gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return gather_with_cancel(*values)


_BACKGROUND: set[asyncio.Future[Any]] = set()
# What graphql-core's executor offers resolvers; ours do not use it, other code reading info may.
_HELPERS = GraphQLResolveInfoHelpers(gather=_gather, track=_track)


class _RootField:
    __slots__ = ("args", "field", "name", "nodes", "path", "response_key", "slot")

    def __init__(
        self, response_key: str, field: GraphQLField, details: FieldDetailsList, parent: str, slot: _Slot
    ) -> None:
        self.response_key = response_key
        self.field = field
        self.nodes = [detail.node for detail in details]
        self.name = self.nodes[0].name.value
        self.slot = slot
        # Resolvers read it (info.path); graphql-core makes the same one per request.
        self.path = Path(None, response_key, parent)
        self.args: dict[str, Any] | None = None

    def complete(self, result: Any, errors: _Outcome) -> Any:
        if isinstance(result, Exception):
            errors.append(located_error(result, self.nodes, [self.response_key]))
            return None
        return self.slot.complete(result, None, self.response_key, errors)


class _Variant:
    """The plan for one combination of @skip/@include values: root fields, or a __typename's value."""

    __slots__ = ("roots",)

    def __init__(self, roots: list[tuple[str, _RootField | str]]) -> None:
        self.roots = roots


class _Unsupported(Exception):
    """Raised while making a plan for something graphql-core must run."""


class CompiledOperation:
    """One operation of one validated document, run without graphql-core's executor."""

    __slots__ = (
        "_conditions",
        "_definitions",
        "_fragments",
        "_operation",
        "_root_type",
        "_schema",
        "_variants",
    )

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        root_type: GraphQLObjectType,
        conditions: Sequence[str],
    ) -> None:
        self._schema = schema
        self._operation = operation
        self._root_type = root_type
        self._fragments = {
            definition.name.value: FragmentDetails(definition)
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self._definitions = {name: details.definition for name, details in self._fragments.items()}
        self._conditions = tuple(conditions)
        self._variants: dict[tuple[object, ...], _Variant | None] = {}

    async def execute(
        self, variables: dict[str, Any] | None, context: Any, root_value: Any
    ) -> ExecutionResult | None:
        """The result, as graphql-core's ``execute`` gives it; None when graphql-core must run this request.

        None is decided before any resolver is called: a @skip/@include variable that is not a boolean
        (graphql-core reports that), or a new combination of them once ``MAX_VARIANTS`` are kept.
        """
        coerced = get_variable_values(
            self._schema,
            self._operation.variable_definitions or (),
            variables or {},
            max_errors=_MAX_COERCION_ERRORS,
        )
        if isinstance(coerced, list):
            return ExecutionResult(None, coerced)
        variant = self._variant(coerced)
        if variant is None:
            return None
        if self._operation.operation is OperationType.MUTATION:
            return await self._run_serially(variant, coerced, context, root_value)
        return await self._run(variant, coerced, context, root_value)

    def _variant(self, variables: VariableValues) -> _Variant | None:
        values = variables.coerced
        key = tuple(values.get(name) for name in self._conditions)
        if not all(type(value) is bool for value in key):
            return None
        variants = self._variants
        if key in variants:
            return variants[key]
        if len(variants) >= MAX_VARIANTS:
            return None
        variant = variants[key] = self._make_variant(variables)
        return variant

    def _make_variant(self, variables: VariableValues) -> _Variant | None:
        """The plan for the @skip/@include values in ``variables``; None if graphql-core must run it."""
        try:
            return _Planner(self._schema, self._fragments, self._operation, variables).root(self._root_type)
        except (_Unsupported, RecursionError):
            return None

    def _info(
        self,
        field: _RootField | _JoinField,
        parent: GraphQLObjectType,
        path: Path,
        variables: VariableValues,
        context: Any,
        root_value: Any,
    ) -> GraphQLResolveInfo[Any]:
        return GraphQLResolveInfo(
            field.name,
            field.nodes,
            field.field.type,
            parent,
            path,
            self._schema,
            self._definitions,
            root_value,
            self._operation,
            variables,
            context,
            graphql_is_awaitable,
            None,
            _HELPERS,
        )

    def _start(self, root: _RootField, variables: VariableValues, context: Any, root_value: Any) -> Any:
        """Call the root field's resolver; its result, or the exception it (or its arguments) raised."""
        try:
            args = root.args
            if args is None:
                args = get_argument_values(root.field, root.nodes[0], variables)
            resolve = root.field.resolve
            assert resolve is not None  # checked when the plan was made
            return resolve(
                root_value,
                self._info(root, self._root_type, root.path, variables, context, root_value),
                **args,
            )
        except Exception as error:
            return error

    async def _run(
        self, variant: _Variant, variables: VariableValues, context: Any, root_value: Any
    ) -> ExecutionResult:
        errors = _Outcome()
        data: dict[str, Any] = {}
        pending: list[tuple[_RootField, Awaitable[Any]]] = []
        # Like graphql-core: every resolver is called first, then all their results are awaited together.
        for response_key, root in variant.roots:
            if isinstance(root, str):
                data[response_key] = root
                continue
            result = self._start(root, variables, context, root_value)
            if isawaitable(result):
                data[response_key] = None
                pending.append((root, result))
            else:
                data[response_key] = root.complete(result, errors)
        if len(pending) == 1:
            root, awaitable = pending[0]
            data[root.response_key] = root.complete(await _settled(awaitable), errors)
        elif pending:
            # Tasks awaited in turn rather than asyncio.gather: the same concurrency for about half the
            # cost (no gathering future, no per-child callbacks); _settled keeps their errors as values.
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(_settled(awaitable)) for _, awaitable in pending]
            try:
                results = [await task for task in tasks]
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise
            for (root, _), result in zip(pending, results, strict=True):
                data[root.response_key] = root.complete(result, errors)
        if errors.joins:
            await self._fill_joins(errors, variables, context, root_value)
        return ExecutionResult(data, errors or None)

    async def _run_serially(
        self, variant: _Variant, variables: VariableValues, context: Any, root_value: Any
    ) -> ExecutionResult:
        errors = _Outcome()
        data: dict[str, Any] = {}
        for response_key, root in variant.roots:
            if isinstance(root, str):
                data[response_key] = root
                continue
            result = self._start(root, variables, context, root_value)
            if isawaitable(result):
                result = await _settled(result)
            data[response_key] = root.complete(result, errors)
            if errors.joins:
                await self._fill_joins(errors, variables, context, root_value)
        return ExecutionResult(data, errors or None)

    async def _fill_joins(
        self, outcome: _Outcome, variables: VariableValues, context: Any, root_value: Any
    ) -> None:
        """Call the joined fields met so far, all at once (a batch gathers the level's keys), and
        complete their values in place; the joins those values hold are the next round."""
        while outcome.joins:
            level, outcome.joins = outcome.joins, []
            started = [
                self._start_join(join, parent, path, key, variables, context, root_value)
                for join, parent, _, key, path in level
            ]
            tasks = [
                asyncio.ensure_future(_settled(value)) if isawaitable(value) else value for value in started
            ]
            for (join, _, data, key, path), task in zip(level, tasks, strict=True):
                result = await task if isinstance(task, asyncio.Future) else task
                if isinstance(result, Exception):
                    outcome.append(located_error(result, join.nodes, _path_list((path, key))))
                else:
                    data[key] = join.slot.complete(result, path, key, outcome)

    def _start_join(
        self,
        join: _JoinField,
        parent: Any,
        path: _Path,
        key: str,
        variables: VariableValues,
        context: Any,
        root_value: Any,
    ) -> Any:
        """Call the joined field's resolver; its result, or the exception it (or its arguments) raised."""
        try:
            args = join.args
            if args is None:
                args = get_argument_values(join.field, join.nodes[0], variables)
            graphql_path = None
            for step in _path_list((path, key)):
                graphql_path = Path(graphql_path, step, None)
            assert graphql_path is not None
            info = self._info(join, join.parent, graphql_path, variables, context, root_value)
            return join.resolve(parent, info, **args)
        except Exception as error:
            return error


async def _settled(awaitable: Awaitable[Any]) -> Any:
    """The awaitable's result, or the exception it raised (as graphql-core catches it)."""
    try:
        return await awaitable
    except Exception as error:
        return error


class _Planner:
    """Makes one variant's plan with graphql-core's field collection, for the variables given."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        operation: OperationDefinitionNode,
        variables: VariableValues,
    ) -> None:
        self._schema = schema
        self._fragments = fragments
        self._operation = operation
        self._variables = variables

    def root(self, root_type: GraphQLObjectType) -> _Variant:
        collected = collect_fields(self._schema, self._fragments, self._variables, root_type, self._operation)
        if collected.new_defer_usages:
            raise _Unsupported
        roots: list[tuple[str, _RootField | str]] = []
        for response_key, details in collected.grouped_field_set.items():
            name = details[0].node.name.value
            if name == "__typename":
                roots.append((response_key, root_type.name))
                continue
            field = root_type.fields.get(name)
            if field is None or not is_operation_resolver(field.resolve) or is_non_null_type(field.type):
                raise _Unsupported
            slot = self._slot(field.type, details, root_type)
            root = _RootField(response_key, field, details, root_type.name, slot)
            root.args = _constant_args(field, details[0].node)
            roots.append((response_key, root))
        return _Variant(roots)

    def _slot(self, type_: GraphQLOutputType, details: FieldDetailsList, parent: GraphQLObjectType) -> _Slot:
        non_null = isinstance(type_, GraphQLNonNull)
        nullable: GraphQLOutputType = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        field_name = details[0].node.name.value
        return _Slot(
            self._completer(nullable, details, parent),
            non_null,
            [detail.node for detail in details],
            f"Cannot return null for non-nullable field {parent.name}.{field_name}.",
        )

    def _completer(
        self, type_: GraphQLOutputType, details: FieldDetailsList, parent: GraphQLObjectType
    ) -> _Completer:
        if isinstance(type_, GraphQLList):
            field_name = details[0].node.name.value
            return _List(
                self._slot(type_.of_type, details, parent),
                f"Expected Iterable, but did not find one for field '{parent.name}.{field_name}'.",
            )
        if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
            if type_ is GraphQLInt:
                return _IntLeaf(type_)
            if type_ is GraphQLFloat:
                return _FloatLeaf(type_)
            return _Leaf(type_)
        if isinstance(type_, GraphQLObjectType) and type_.is_type_of is is_json_object:
            return self._object(type_, details)
        if isinstance(type_, GraphQLInterfaceType | GraphQLUnionType) and isinstance(
            type_.resolve_type, TypeResolver
        ):
            objects = {
                possible.name: self._object(possible, details)
                for possible in self._schema.get_possible_types(type_)
                if possible.is_type_of is is_json_object
            }
            return _Abstract(type_.resolve_type.name, objects)
        raise _Unsupported

    def _object(self, type_: GraphQLObjectType, details: FieldDetailsList) -> _Object:
        collected = collect_subfields(
            self._schema, self._fragments, self._variables, self._operation, type_, details
        )
        if collected.new_defer_usages:
            raise _Unsupported
        completer = _Object(type_.name)
        fields: list[tuple[str, str, _Slot | None]] = []
        for response_key, sub_details in collected.grouped_field_set.items():
            name = sub_details[0].node.name.value
            if name == "__typename":
                fields.append((response_key, name, None))
                continue
            field = type_.fields.get(name)
            if field is None:
                continue  # graphql-core leaves an unknown field out (validation refuses it first)
            if isinstance(field.resolve, JoinResolver):
                join = _JoinField(field, field.resolve, type_, self._slot(field.type, sub_details, type_))
                join.args = _constant_args(field, sub_details[0].node)
                completer.joins[response_key] = join
                fields.append((response_key, name, None))
                continue
            if not isinstance(field.resolve, DictField):
                raise _Unsupported
            key = response_key if isinstance(field.resolve, ResponseKeyField) else field.resolve.key
            fields.append((response_key, key, self._slot(field.type, sub_details, type_)))
        completer.fields = tuple(fields)
        return completer


def _constant_args(field: GraphQLField, node: FieldNode) -> dict[str, Any] | None:
    """The field's arguments when no variable can change them and nothing in them can be changed in place."""
    if _has_variables(node.arguments):
        return None
    try:
        args = get_argument_values(field, node)
    except Exception:
        return None  # raised per request instead, where graphql-core raises it
    immutable = all(value is None or isinstance(value, str | int | float | bool) for value in args.values())
    return args if immutable else None


class _VariableFinder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_variable(self, *_: Any) -> None:
        self.found = True


def _has_variables(arguments: Sequence[ArgumentNode] | None) -> bool:
    finder = _VariableFinder()
    for argument in arguments or ():
        visit(argument, finder)
    return finder.found


# --- what can be planned -------------------------------------------------------------------------


def compile_operation(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> CompiledOperation | None:
    """A plan for ``operation`` of the validated ``document``, or None when graphql-core must run it."""
    if operation.operation is OperationType.QUERY:
        root_type = schema.query_type
    elif operation.operation is OperationType.MUTATION:
        root_type = schema.mutation_type
    else:
        return None
    if root_type is None or operation.directives:
        return None
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    check = _Check(schema, fragments, root_type)
    try:
        if not check.selections(root_type, operation.selection_set):
            return None
    except RecursionError:
        return None
    compiled = CompiledOperation(schema, document, operation, root_type, sorted(check.conditions))
    if not check.conditions and compiled._variant(VariableValues({}, {})) is None:
        return None
    return compiled


class _Check:
    """Walks every selection, whatever @skip/@include say, for anything a plan cannot run."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        root_type: GraphQLObjectType,
    ) -> None:
        self._schema = schema
        self._fragments = fragments
        self._root_type = root_type
        self._visiting: set[str] = set()
        # Names of the variables @skip/@include read.
        self.conditions: set[str] = set()

    def selections(self, parent: GraphQLObjectType, selection_set: SelectionSetNode) -> bool:
        for selection in selection_set.selections:
            if not self._directives_supported(selection.directives):
                return False
            if isinstance(selection, FieldNode):
                if not self._field(parent, selection):
                    return False
            elif isinstance(selection, InlineFragmentNode):
                # A fragment on another possible type of an abstract field is not run for this one.
                if self._applies(selection.type_condition, parent) and not self.selections(
                    parent, selection.selection_set
                ):
                    return False
            elif isinstance(selection, FragmentSpreadNode):
                if not self._spread(parent, selection):
                    return False
            else:
                return False
        return True

    def _directives_supported(self, directives: Sequence[Any] | None) -> bool:
        for directive in directives or ():
            if directive.name.value not in _CONDITIONS:
                return False
            for argument in directive.arguments or ():
                value: ValueNode = argument.value
                if isinstance(value, VariableNode):
                    self.conditions.add(value.name.value)
        return True

    def _applies(self, condition: Any, parent: GraphQLObjectType) -> bool:
        """Whether a fragment with this type condition applies to ``parent`` (graphql-core's rule)."""
        if condition is None:
            return True
        named = type_from_ast(self._schema, condition)
        if named is parent:
            return True
        return is_abstract_type(named) and self._schema.is_sub_type(named, parent)

    def _spread(self, parent: GraphQLObjectType, spread: FragmentSpreadNode) -> bool:
        name = spread.name.value
        fragment = self._fragments.get(name)
        if fragment is None or fragment.variable_definitions or fragment.directives:
            return False
        if getattr(spread, "arguments", None):
            return False  # fragment arguments (experimental)
        if not self._applies(fragment.type_condition, parent):
            return True  # on another possible type: not run for this one
        if name in self._visiting:
            return True  # a cycle: validation refuses it
        self._visiting.add(name)
        try:
            return self.selections(parent, fragment.selection_set)
        finally:
            self._visiting.discard(name)

    def _field(self, parent: GraphQLObjectType, node: FieldNode) -> bool:
        name = node.name.value
        if name == "__typename":
            return node.selection_set is None
        field = parent.fields.get(name)  # __schema and __type are not among them
        if field is None:
            return False
        if parent is self._root_type:
            if not is_operation_resolver(field.resolve) or is_non_null_type(field.type):
                return False
        elif not isinstance(field.resolve, DictField | JoinResolver):
            return False
        named = get_named_type(field.type)
        if is_leaf_type(named):
            return node.selection_set is None
        if node.selection_set is None:
            return False
        if isinstance(named, GraphQLObjectType):
            return named.is_type_of is is_json_object and self.selections(named, node.selection_set)
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            # Each possible type runs the selections that apply to it, as graphql-core does.
            selection_set = node.selection_set
            return isinstance(named.resolve_type, TypeResolver) and all(
                possible.is_type_of is is_json_object and self.selections(possible, selection_set)
                for possible in self._schema.get_possible_types(named)
            )
        return False
