"""Joined fields at request time: a field of a type resolved by another integration's operation.

Every joined call is a module call (``IntegrationModule.call``): the target integration's executor,
breaker, retries, bulkhead, timeouts, auth and stats apply. A call that fails raises at the joined
field alone, so graphql-core (or a compiled plan) nulls that field with its error and keeps the parent.

Per request (``JoinLoads``, kept on the ``RequestContext``):

- Without ``batch:``, identical calls (same operation, arguments and selection) are made once.
- With ``batch:``, the keys asked for in one event-loop tick are collected (every parent of one
  level: both executors resolve a list's items in one synchronous pass), de-duplicated, split by
  ``max_size``, and each part is one call; its items are matched to parents by ``key``. A key no
  item matches gives null (a list field: every item with that key). A key fetched once is not
  fetched again in the same request (a cycle, a second level). A partial answer's error inside an
  item stands at the parents the item was matched to (``_ItemPaths``).

``keep_paths`` says which keys the parents must carry, for GraphQL upstreams to send them although the
client did not select them; ``depth_rule`` refuses a request nesting a joined field deeper than its
``max_depth`` before anything is called.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    get_named_type,
)
from graphql.execution.values import VariableValues
from graphql.language.visitor import SKIP, VisitorAction
from graphql.utilities import type_from_ast

from aggregator.config.models import (
    Config,
    FieldArgument,
    InterfaceType,
    Join,
    ObjectType,
    ParentValue,
    UnionType,
)
from aggregator.errors import UpstreamBadResponse
from aggregator.module import IntegrationModule
from aggregator.schema.context import RequestContext
from aggregator.schema.types import to_wire
from aggregator.upstreams.graphql import PartialResult
from aggregator.upstreams.selection import ClientSelection

__all__ = ["JoinLoads", "JoinResolver", "depth_rule", "keep_paths"]


class JoinResolver:
    """The resolver of one joined field: the parent's keys and the field's arguments become a call.

    A class rather than a closure so that compiled plans (compiled.py) recognise a joined field.
    """

    __slots__ = ("_module", "batch_params", "join", "selective")

    def __init__(self, join: Join, module: IntegrationModule) -> None:
        self.join = join
        self._module = module
        batch = join.batch
        # A GraphQL upstream is sent only what the client selected: calls with different selections
        # differ. Any other answers the same whatever is selected.
        called = batch.integration if batch else join.integration
        self.selective = module.integrations[called].type == "graphql"
        target = module.integrations[batch.integration].operations[batch.operation] if batch else None
        # The batch operation's params besides the key list: other arguments of the join it also takes.
        self.batch_params = frozenset(p.name for p in target.params) if target else frozenset()

    @property
    def origin(self) -> tuple[str, str]:
        """The integration and operation whose answer is this field's value (the batch's, batched)."""
        batch = self.join.batch
        return (batch.integration, batch.operation) if batch else (self.join.integration, self.join.operation)

    def __call__(self, parent: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Awaitable[Any] | None:
        params = self._params(parent, args)
        if params is None:
            return None  # the parent has no key: nothing to join
        loads = _loads(info.context)
        if self.join.batch is None:
            return loads.single(self, params, info)
        return loads.batched(self, params, info)

    def _params(self, parent: Any, args: Mapping[str, Any]) -> dict[str, Any] | None:
        params: dict[str, Any] = {}
        for name, value in self.join.args.items():
            if isinstance(value, ParentValue):
                found = _dig(parent, value.path)
                if found is None:
                    return None
                params[name] = found
            elif isinstance(value, FieldArgument):
                if value.name in args:
                    params[name] = to_wire(args[value.name])
            else:
                params[name] = value.value
        return params

    async def call(
        self, integration: str, operation: str, params: Mapping[str, Any], info: GraphQLResolveInfo[Any]
    ) -> Any:
        """The operation's answer for the field of ``info``; a partial answer's errors stand below it."""
        result = await self.request(integration, operation, params, info)
        if isinstance(result, PartialResult):
            self.add_errors(info, integration, operation, result)
            return result.data
        return result

    async def request(
        self, integration: str, operation: str, params: Mapping[str, Any], info: GraphQLResolveInfo[Any]
    ) -> Any:
        """The module's answer as it is: a PartialResult when a GraphQL upstream answered with errors."""
        context = info.context if isinstance(info.context, RequestContext) else None
        return await self._module.call(
            integration,
            operation,
            params,
            headers=context.headers if context is not None else None,
            selection=_selection(info),
        )

    def add_errors(
        self,
        info: GraphQLResolveInfo[Any],
        integration: str,
        operation: str,
        partial: PartialResult,
        placed: Callable[[list[str | int]], list[list[str | int]]] | None = None,
    ) -> None:
        if isinstance(info.context, RequestContext):
            op = self._module.integrations[integration].operations[operation]
            info.context.add_partial_errors(info, integration, op, partial, placed)


class _Batch:
    __slots__ = ("extra", "info", "keys", "resolver", "waiters")

    def __init__(self, resolver: JoinResolver, extra: dict[str, Any], info: GraphQLResolveInfo[Any]) -> None:
        self.resolver = resolver
        self.extra = extra
        self.info = info
        # Normalised key -> the key as sent, each once.
        self.keys: dict[str, Any] = {}
        # Every parent's key, future and field, in the order the parents asked: they are answered in
        # that order, as graphql-core reports errors in the order fields end.
        self.waiters: list[tuple[str, asyncio.Future[Any], GraphQLResolveInfo[Any]]] = []


class JoinLoads:
    """One request's joined calls: the memo of calls made and the batches being collected.

    Each call is counted on the request's context from when it is asked for (a batch: from its first
    key) until it ends, so that ``integrationStats`` in the same request sees it (``calls_settled``).
    """

    __slots__ = ("_context", "_memo", "_pending", "_tasks")

    def __init__(self, context: RequestContext | None = None) -> None:
        self._context = context
        self._memo: dict[Hashable, Awaitable[Any]] = {}
        self._pending: dict[Hashable, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def single(
        self, resolver: JoinResolver, params: dict[str, Any], info: GraphQLResolveInfo[Any]
    ) -> Awaitable[Any]:
        join = resolver.join
        key = (join.integration, join.operation, _frozen(params), _nodes(info) if resolver.selective else ())
        found = self._memo.get(key)
        if found is None:
            task = asyncio.ensure_future(resolver.call(join.integration, join.operation, params, info))
            self._count(task)
            found = self._memo[key] = task
        return found

    def _count(self, task: asyncio.Future[Any]) -> None:
        context = self._context
        if context is not None:
            context.call_started()
            task.add_done_callback(lambda _: context.call_ended())

    def batched(
        self, resolver: JoinResolver, params: dict[str, Any], info: GraphQLResolveInfo[Any]
    ) -> Awaitable[Any]:
        parent_key = resolver.join.parent_key
        assert parent_key is not None  # the loader refuses a batch without exactly one
        name = parent_key[0]
        value = params[name]
        extra = {k: v for k, v in params.items() if k != name and k in resolver.batch_params}
        group = (id(resolver), _frozen(extra), _nodes(info) if resolver.selective else ())
        normal = _normal(value)
        batch = self._pending.get(group)
        if batch is None or normal not in batch.keys:
            # Fetched (or being fetched) for an earlier level of this request: not again.
            found = self._memo.get((group, normal))
            if found is not None:
                return found
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if batch is None:
            if not self._pending:
                loop.call_soon(self._flush)
                if self._context is not None:
                    self._context.call_started()  # until the batches' calls are started
            batch = self._pending[group] = _Batch(resolver, extra, info)
        if normal not in batch.keys:
            batch.keys[normal] = value
            self._memo[(group, normal)] = future
        batch.waiters.append((normal, future, info))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for batch in pending.values():
            spec = batch.resolver.join.batch
            assert spec is not None
            keys = list(batch.keys.items())
            for start in range(0, len(keys), spec.max_size):
                task = asyncio.ensure_future(self._fetch(batch, dict(keys[start : start + spec.max_size])))
                self._count(task)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if self._context is not None:
            self._context.call_ended()

    async def _fetch(self, batch: _Batch, keys: Mapping[str, Any]) -> None:
        resolver = batch.resolver
        join = resolver.join
        spec = join.batch
        assert spec is not None
        waiters = [waiter for waiter in batch.waiters if waiter[0] in keys]
        params = {**batch.extra, spec.arg: list(keys.values())}
        try:
            result = await resolver.request(spec.integration, spec.operation, params, batch.info)
            items = result.data if isinstance(result, PartialResult) else result
            if not isinstance(items, list):
                raise UpstreamBadResponse(
                    f"a batch answered {type(items).__name__}, not the list of items the join matches by"
                    f" '{spec.key}'",
                    integration=spec.integration,
                    operation=spec.operation,
                )
        except Exception as error:
            for _, future, _ in waiters:
                if not future.done():
                    future.set_exception(error)
            return
        matched: dict[str, list[Any]] = {}
        for item in items:
            if isinstance(item, dict):
                matched.setdefault(_normal(item.get(spec.key)), []).append(item)
        if isinstance(result, PartialResult):
            placed = _ItemPaths(items, matched, waiters, is_list=join.type.is_list, key=spec.key)
            resolver.add_errors(batch.info, spec.integration, spec.operation, result, placed)
        for normal, future, _ in waiters:
            found = matched.get(normal)
            if not future.done():
                future.set_result(found if join.type.is_list else found[0] if found else None)


class _ItemPaths:
    """Where an error inside a batch's answer stands: at every parent whose key its item matched
    (below the item's index in the parent's list, for a list field). An error outside any item, or
    in an item no parent asked for, stands at the first parent's field: the call was made for it too."""

    __slots__ = ("_is_list", "_items", "_key", "_matched", "_waiters")

    def __init__(
        self,
        items: list[Any],
        matched: Mapping[str, list[Any]],
        waiters: Sequence[tuple[str, asyncio.Future[Any], GraphQLResolveInfo[Any]]],
        *,
        is_list: bool,
        key: str,
    ) -> None:
        self._items = items
        self._matched = matched
        self._waiters = waiters
        self._is_list = is_list
        self._key = key

    def __call__(self, inner: list[str | int]) -> list[list[str | int]]:
        index = inner[0] if inner else None
        item = self._items[index] if isinstance(index, int) and 0 <= index < len(self._items) else None
        if isinstance(item, dict):
            normal = _normal(item.get(self._key))
            position = next(i for i, found in enumerate(self._matched[normal]) if found is item)
            below = [position, *inner[1:]] if self._is_list else inner[1:]
            paths = [[*info.path.as_list(), *below] for key, _, info in self._waiters if key == normal]
            if paths:
                return paths
        return [[*self._waiters[0][2].path.as_list(), *inner]]


def _loads(context: Any) -> JoinLoads:
    """The request's loads; a context that is not the gateway's shares nothing between fields."""
    if not isinstance(context, RequestContext):
        return JoinLoads()
    if context.join_state is None:
        context.join_state = JoinLoads(context)
    return context.join_state


def _selection(info: GraphQLResolveInfo[Any]) -> ClientSelection | None:
    nodes = info.field_nodes
    if nodes[0].selection_set is None:
        return None
    values = info.variable_values
    variables = values.coerced if isinstance(values, VariableValues) else values
    return ClientSelection(nodes, info.fragments, variables)


def _nodes(info: GraphQLResolveInfo[Any]) -> tuple[int, ...]:
    # The parsed request is cached by its text: node identity tells one field's selection from another.
    return tuple(id(node) for node in info.field_nodes)


def _dig(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _normal(value: Any) -> str:
    """Keys compared as upstreams mean them: the ID 7 and the ID "7" are one key."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _frozen(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


# --- what parents must carry ---------------------------------------------------------------------


def keep_paths(config: Config) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    """Per GraphQL-upstream operation, the paths of response keys below its field that joins read:
    the ``$parent`` keys of every joined type its answer reaches, and a batch operation's ``key``."""
    paths: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for integration in config.integrations.values():
        if integration.type != "graphql":
            continue
        for op in integration.operations.values():
            found = list(_reads(config, op.returns.named, (), frozenset()))
            found.extend(
                (join.batch.key,)
                for joins in config.joins.values()
                for join in joins.values()
                if join.batch and (join.batch.integration, join.batch.operation) == (integration.id, op.id)
            )
            if found:
                paths[(integration.id, op.id)] = found
    return paths


def _reads(
    config: Config, type_name: str, prefix: tuple[str, ...], seen: frozenset[str]
) -> Iterator[tuple[str, ...]]:
    definition = config.types.get(type_name)
    if isinstance(definition, UnionType):
        for member in definition.types:
            yield from _reads(config, member, prefix, seen)
        return
    if isinstance(definition, InterfaceType):
        for name, other in config.types.items():
            if isinstance(other, ObjectType) and type_name in other.interfaces:
                yield from _reads(config, name, prefix, seen)
        return
    if not isinstance(definition, ObjectType) or type_name in seen:
        return
    for join in config.joins.get(type_name, {}).values():
        for value in join.args.values():
            if isinstance(value, ParentValue):
                yield (*prefix, *value.path)
    for field_name, expr in definition.fields.items():
        yield from _reads(config, expr.named, (*prefix, definition.wire_name(field_name)), seen | {type_name})


# --- how deep joins may nest -----------------------------------------------------------------------


def depth_rule(config: Config) -> type[ASTValidationRule]:
    """A validation rule refusing an operation that nests a joined field more than its ``max_depth``
    times on one path (``User.posts -> Post.author -> User.posts ...``)."""
    limits = {(j.type_name, j.field): j.max_depth for joins in config.joins.values() for j in joins.values()}

    class JoinDepth(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> VisitorAction:
            context = self.context
            assert isinstance(context, ValidationContext)  # a rule of executable documents
            root = context.schema.get_root_type(node.operation)
            if root is not None:
                _Walk(context, limits).selections(root, node.selection_set, {}, frozenset())
            return SKIP

    return JoinDepth


class _Walk:
    def __init__(self, context: ValidationContext, limits: Mapping[tuple[str, str], int]) -> None:
        self.context = context
        self.limits = limits
        self.reported: set[tuple[str, str]] = set()

    def selections(
        self,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode,
        counts: dict[tuple[str, str], int],
        visiting: frozenset[str],
    ) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                self.field(parent, selection, counts, visiting)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                typed = type_from_ast(self.context.schema, condition) if condition else parent
                if isinstance(typed, GraphQLNamedType):
                    self.selections(typed, selection.selection_set, counts, visiting)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.context.get_fragment(name)
                if fragment is None or name in visiting:
                    continue
                typed = type_from_ast(self.context.schema, fragment.type_condition)
                if isinstance(typed, GraphQLNamedType):
                    self.selections(typed, fragment.selection_set, counts, visiting | {name})

    def field(
        self,
        parent: GraphQLNamedType,
        node: FieldNode,
        counts: dict[tuple[str, str], int],
        visiting: frozenset[str],
    ) -> None:
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) or node.selection_set is None:
            return
        field = parent.fields.get(node.name.value)
        if field is None:
            return
        key = (parent.name, node.name.value)
        limit = self.limits.get(key)
        if limit is not None:
            counts = {**counts, key: counts.get(key, 0) + 1}
            if counts[key] > limit:
                if key not in self.reported:
                    self.reported.add(key)
                    self.context.report_error(
                        GraphQLError(
                            f"{key[0]}.{key[1]} is a joined field nested more than {limit} times on one"
                            f" path (its max_depth); ask for less depth",
                            node,
                        )
                    )
                return
        self.selections(get_named_type(field.type), node.selection_set, counts, visiting)
