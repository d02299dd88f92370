"""Build the Strawberry schema from the config.

Strawberry generates the types and the SDL; requests run straight on graphql-core (execution.py). Field
resolution is set directly on the graphql-core fields after the build: upstream JSON stays plain dicts
(no copying into dataclasses) and operation fields call the module with the arguments graphql-core has
already coerced. Both are on the hot path of every request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any

import strawberry
from graphql import (
    ASTValidationRule,
    GraphQLDefaultInput,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLUnionType,
    NoSchemaIntrospectionCustomRule,
)
from graphql.execution.values import VariableValues
from strawberry.exceptions import MissingQueryError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext as StrawberryExecutionContext
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from aggregator.config.models import (
    Config,
    Integration,
    InterfaceType,
    Join,
    NamedType,
    ObjectType,
    Operation,
    TypeExpr,
    UnionType,
)
from aggregator.errors import (
    BadUserInput,
    BulkheadFull,
    CallError,
    CircuitOpen,
    ConfigError,
    Problem,
    UpstreamBadValue,
    UpstreamError,
)
from aggregator.module import IntegrationModule
from aggregator.schema.compiled import DictField, ResponseKeyField, TypeResolver, operation_resolver
from aggregator.schema.context import RequestContext
from aggregator.schema.execution import DocumentRunner
from aggregator.schema.joins import JoinResolver, depth_rule, keep_paths
from aggregator.schema.limits import Limits
from aggregator.schema.scalars import SCALAR_MAP
from aggregator.schema.shapes import is_json_object, mark_origin
from aggregator.schema.stats import IntegrationStats, to_graphql
from aggregator.schema.types import (
    BuiltTypes,
    arguments_stub,
    build_types,
    mutable_defaults,
    python_type,
    to_wire,
)
from aggregator.upstreams.graphql import PartialResult
from aggregator.upstreams.selection import ClientSelection

log = logging.getLogger("aggregator.graphql")

# Bounded: the set of distinct query texts reaching a public endpoint is not trusted.
_CACHE_SIZE = 1024
_ALL_OPERATIONS = frozenset(OperationType)


def _resolver_stub(
    op: Operation, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> Callable[..., Any]:
    """A function whose signature tells Strawberry the operation field's arguments and (nullable) type."""
    returns = python_type(TypeExpr(name=op.returns.name, of=op.returns.of, non_null=False), outputs)
    return arguments_stub(op.params, inputs, returns)


def _operation_resolver(
    module: IntegrationModule, integration: Integration, op: Operation, enum_reaching: frozenset[str]
) -> Callable[..., Any]:
    integration_id, operation_id = integration.id, op.id
    # Enum arguments arrive as members of Python enums (types.py): only then is there work to do.
    wire = any(param.type.named in enum_reaching for param in op.params)

    async def run(info: GraphQLResolveInfo[Any], context: RequestContext | None, args: Any) -> Any:
        try:
            headers = context.headers if context is not None else None
            nodes = info.field_nodes
            # What the client selected below the field goes down, so that only that is fetched.
            selection = None
            if nodes[0].selection_set is not None:
                values = info.variable_values
                # graphql-core 3.3 gives VariableValues; an execution context of Strawberry's a plain dict.
                variables = values.coerced if isinstance(values, VariableValues) else values
                definitions = info.operation.variable_definitions or ()
                selection = ClientSelection(nodes, info.fragments, variables, definitions)
            # An AggregatorError propagates as is: graphql-core takes its message and `extensions` dict.
            params = to_wire(args) if wire else args
            result = await module.call(
                integration_id, operation_id, params, headers=headers, selection=selection
            )
        finally:
            if context is not None:
                context.call_ended()
        if isinstance(result, PartialResult):
            if context is not None:
                context.add_partial_errors(info, integration_id, op, result)
            return result.data
        return result

    # Marked: compiled plans (compiled.py) call it themselves, with a real GraphQLResolveInfo; and
    # with its origin, which errors about its answer name (shapes.py). Not a coroutine function
    # itself: the call is counted when the executor calls the resolver.
    @operation_resolver
    def resolve(_root: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Awaitable[Any]:
        context = info.context
        if isinstance(context, RequestContext):
            context.call_started()
            return run(info, context, args)
        return run(info, None, args)

    mark_origin(resolve, integration_id, operation_id)
    return resolve


def _dict_resolver(key: str) -> Callable[..., Any]:
    # A DictField carries its key, so that compiled plans (compiled.py) read the same key themselves.
    return DictField(key)


def _log_errors(errors: list[GraphQLError], context: Any) -> None:
    """Log a request's errors: Strawberry logs every one with a traceback at ERROR; most are expected."""
    request_id = context.request_id if isinstance(context, RequestContext) else "-"
    for error in errors:
        original = error.original_error
        if isinstance(original, CircuitOpen | BulkheadFull):
            # Refusals come in floods while an upstream is down; the breaker logs its transitions.
            log.debug("[%s] %s", request_id, original, extra={"request_id": request_id})
        elif isinstance(original, UpstreamBadValue):
            # Found after the call, so no attempt count: the value's path says the rest.
            log.warning(
                "[%s] upstream answer refused: %s",
                request_id,
                original,
                extra={"request_id": request_id, "graphql_path": error.path, "upstream": original.extensions},
            )
        elif isinstance(original, UpstreamError):
            log.warning(
                "[%s] upstream call failed: %s (%s after %d attempt(s))",
                request_id,
                original,
                original.code,
                original.attempts,
                extra={
                    "request_id": request_id,
                    "graphql_path": error.path,
                    "upstream": original.extensions,
                },
            )
        elif original is None or isinstance(original, CallError) or error.path is None:
            # No path: a parse, validation or variable error (a scalar refusing a value included).
            log.debug("[%s] request error: %s", request_id, error.message, extra={"request_id": request_id})
        else:
            log.error(
                "[%s] resolver failed at %s",
                request_id,
                error.path,
                exc_info=original,
                extra={"request_id": request_id},
            )


class _Schema(strawberry.Schema):
    """Strawberry's schema, executed straight on graphql-core by a ``DocumentRunner`` (execution.py)."""

    def __init__(
        self, *args: Any, limits: Limits, rules: Sequence[type[ASTValidationRule]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._runner = DocumentRunner(
            self._schema,
            limits,
            rules,
            cache_size=_CACHE_SIZE,
            execution_context_class=self.execution_context_class,
            on_errors=_log_errors,
        )

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        if not query:
            raise MissingQueryError
        allowed = _ALL_OPERATIONS if allowed_operation_types is None else frozenset(allowed_operation_types)
        result = await self._runner.run(
            query,
            variables=variable_values,
            context=context_value,
            operation_name=operation_name,
            allowed=allowed,
            root_value=root_value,
            operation_extensions=operation_extensions,
        )
        return ExecutionResult(data=result.data, errors=result.errors)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: StrawberryExecutionContext | None = None
    ) -> None:
        _log_errors(errors, execution_context.context if execution_context else None)


def build_schema(config: Config, module: IntegrationModule) -> strawberry.Schema:
    """The gateway's schema: one field per operation, the config's types, and ``integrationStats``."""
    config = _with_known_joins(config)
    built = build_types(config)
    roots: dict[str, dict[str, Any]] = {"query": {}, "mutation": {}}
    bindings: dict[tuple[str, str], Callable[..., Any]] = {}
    for integration in config.integrations.values():
        for op in integration.operations.values():
            stub = _resolver_stub(op, built.inputs, built.outputs)
            description = op.description or integration.description or None
            roots[op.kind][op.field] = strawberry.field(resolver=stub, name=op.field, description=description)
            bindings[(op.kind, op.field)] = _operation_resolver(module, integration, op, built.enum_reaching)

    types = {i.id: i.type for i in config.integrations.values()}

    async def integration_stats(
        arg1: strawberry.Info,
        arg0: Annotated[str | None, strawberry.argument(name="id")] = None,
    ) -> list[IntegrationStats]:
        if arg0 is not None and arg0 not in types:
            known = ", ".join(sorted(types)) or "none"
            raise BadUserInput(f"integrationStats: no integration {arg0!r}; the known ids are: {known}")
        # After the request's other root fields, so that it shows what their calls did.
        if isinstance(arg1.context, RequestContext):
            await arg1.context.calls_settled()
        snapshots = module.all_stats() if arg0 is None else [module.stats(arg0)]
        return [to_graphql(s, types[s.integration_id]) for s in snapshots]

    roots["query"]["integrationStats"] = strawberry.field(
        resolver=integration_stats,
        name="integrationStats",
        description="Breaker state, counters and latency of every integration, or of the one named.",
    )

    def root_type(name: str, fields: dict[str, Any]) -> type:
        return strawberry.type(type(name, (), {"__module__": __name__, **fields}))

    server = config.server
    rules: list[type[ASTValidationRule]] = []
    if not server.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    if config.joins:
        rules.append(depth_rule(config))
        for (integration_id, operation_id), paths in keep_paths(config).items():
            module.keep_fields(integration_id, operation_id, paths)
    schema = _Schema(
        query=root_type("Query", roots["query"]),
        mutation=root_type("Mutation", roots["mutation"]) if roots["mutation"] else None,
        limits=Limits(
            max_depth=server.max_depth, max_fields=server.max_aliases, max_bytes=server.max_query_bytes
        ),
        rules=rules,
        # Declared types no field returns are still part of the schema (and must exist for _bind).
        types=built.classes,
        config=StrawberryConfig(scalar_map={**SCALAR_MAP, **built.scalar_map}),
    )
    _bind(schema, config, built, bindings, module)
    return schema


def _with_known_joins(config: Config) -> Config:
    """``config`` with the joins of the types it holds: an ``extend:`` of a type derived from a GraphQL
    upstream's schema waits until that schema is known. A derived type that already has a field of
    the join's name is a config problem, reported where the join is written."""
    joins: dict[str, Mapping[str, Join]] = {}
    problems: list[Problem] = []
    for type_name, fields in config.joins.items():
        definition = config.types.get(type_name)
        if not isinstance(definition, ObjectType):
            continue
        for field_name, join in fields.items():
            if field_name in definition.fields:
                problems.append(
                    Problem(
                        join.source,
                        join.line,
                        f"extend.{type_name}.{field_name}",
                        f"'{type_name}' has a field '{field_name}' already; give the join another name",
                    )
                )
        joins[type_name] = fields
    if problems:
        raise ConfigError(problems)
    return replace(config, joins=joins)


def _shapes(config: Config, union: UnionType) -> dict[str, frozenset[str]]:
    """Each member's wire keys: how an imported union picks a member when its discriminator does not."""
    shapes: dict[str, frozenset[str]] = {}
    for member in union.types:
        definition = config.types[member]
        assert isinstance(definition, ObjectType)
        shapes[member] = frozenset(definition.wire_name(field) for field in definition.fields)
    return shapes


def _wire_name(definition: NamedType, field_name: str) -> str:
    return definition.wire_name(field_name) if isinstance(definition, ObjectType) else field_name


# Stateless: one for every field of every forwarded type.
_BY_RESPONSE_KEY = ResponseKeyField()


def _bind(
    schema: strawberry.Schema,
    config: Config,
    built: BuiltTypes,
    bindings: Mapping[tuple[str, str], Callable[..., Any]],
    module: IntegrationModule,
) -> None:
    """How the config's fields resolve, set on the graphql-core schema Strawberry built (see the module
    docstring). Strawberry 0.341 has no hook for what is set here: a field resolved as a lookup in a
    dict, an abstract type whose concrete type is named by the value (its unions resolve only through
    their members' ``is_type_of`` and ``isinstance``), input values as plain dicts."""
    core = schema._schema
    for name, definition in config.types.items():
        gql_type = core.type_map[name]
        if isinstance(gql_type, GraphQLObjectType | GraphQLInterfaceType):
            forwarded = isinstance(definition, ObjectType | InterfaceType) and definition.forwarded
            for field_name, gql_field in gql_type.fields.items():
                gql_field.resolve = (
                    _BY_RESPONSE_KEY if forwarded else _dict_resolver(_wire_name(definition, field_name))
                )
        if isinstance(gql_type, GraphQLObjectType):
            # Strawberry checks that a value is an instance of the type's class; ours are dicts, and a
            # value of another shape is an error at its path, not an object of nulls (shapes.py).
            gql_type.is_type_of = is_json_object
        elif isinstance(definition, UnionType) and isinstance(gql_type, GraphQLUnionType):
            gql_type.resolve_type = TypeResolver(
                name,
                definition.types,
                definition.discriminator,
                definition.mapping,
                _shapes(config, definition) if definition.by_shape else None,
            )
        elif isinstance(gql_type, GraphQLInterfaceType):
            possible = [t.name for t in core.get_possible_types(gql_type)]
            mapping = definition.mapping if isinstance(definition, InterfaceType) else None
            gql_type.resolve_type = TypeResolver(name, possible, mapping=mapping)
    for name, graphql_name in built.input_names.items():
        gql_input = core.type_map[graphql_name]
        assert isinstance(gql_input, GraphQLInputObjectType)
        # Upstreams want plain JSON objects keyed by their wire names, not Strawberry instances.
        gql_input.out_type = GraphQLInputObjectType.out_type  # type: ignore[method-assign]
        for field_name, input_field in gql_input.fields.items():
            input_field.out_name = _wire_name(config.types[name], field_name)
    for type_name, joins in config.joins.items():
        gql_object = core.type_map[type_name]
        assert isinstance(gql_object, GraphQLObjectType)
        for field_name, join in joins.items():
            gql_object.fields[field_name].resolve = JoinResolver(join, module)
    for (kind, field_name), resolve in bindings.items():
        root = core.query_type if kind == "query" else core.mutation_type
        assert root is not None
        root.fields[field_name].resolve = resolve
    for type_name, field_name, param in mutable_defaults(config):
        owner = core.type_map[type_name]
        assert isinstance(owner, GraphQLObjectType | GraphQLInterfaceType)
        owner.fields[field_name].args[param.name].default = GraphQLDefaultInput(param.default)


__all__ = ["RequestContext", "build_schema"]
