"""Running one GraphQL request on the built schema (a plan or graphql-core), parse and validation cached.

Strawberry builds the schema; at request time its ``Schema.execute`` wraps every request in its
extension machinery (an execution context, an extension runner, async context managers around each
phase, a fresh instance of every extension): about an eighth of the CPU of a request making one
upstream call, measured with py-spy under load. The same steps run here on graphql-core, in
Strawberry's order:

1. parse, through a bounded LRU cache keyed by the query text that also keeps the document's
   validation errors once known (one lookup per request); on a miss, the request limits first look
   at the text, then at the parsed document (limits.py), so that an oversized document is refused
   before the costly steps;
2. pick the operation, as GraphQL's GetOperation does: the one ``operationName`` names, or the only
   one -> else ``CannotGetOperationTypeError`` (several operations and no name run nothing); an
   operation type the caller does not allow -> ``InvalidOperationTypeError``;
3. validate with graphql-core's rules, Strawberry's own two and the schema's (introspection);
4. execute: from the operation's compiled plan (compiled.py) where there is one, else with
   graphql-core's ``execute`` and Strawberry's execution context class, so that resolvers Strawberry
   made (``integrationStats``) see what they expect.

Why two executors: resolvers answering at once, graphql-core's ``execute`` costs about 250 µs of CPU for
the benchmark's five-call fan-out and 60 µs for one REST call (its per-field machinery, for fields that
are dict lookups); the plan about 40 µs and 8 µs, with the same results (bench/execution_cost.py).
A plan is made once per document and operation name after the first validation, and kept with the
parsed document; introspection, ``integrationStats``, resolvers that are not the gateway's own,
@defer/@stream and subscriptions get none and run on graphql-core as before.

Errors of any step are handed to ``on_errors`` once, and come back in the result. A parse error
carries ``extensions.code`` GRAPHQL_PARSE_FAILED, a validation error GRAPHQL_VALIDATION_FAILED
(unless its rule gave it a code of its own), variables that do not coerce BAD_USER_INPUT; values of an
upstream's answer that do not fit the schema are reported as its errors (shapes.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from inspect import isawaitable
from typing import Any, TypeGuard, cast

from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
)
from strawberry.execution import optimized_is_awaitable
from strawberry.schema._graphql_core import execution_context_class_kwargs
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType

from aggregator.errors import BAD_USER_INPUT, GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED
from aggregator.schema.compiled import CompiledOperation, compile_operation
from aggregator.schema.limits import Limits
from aggregator.schema.shapes import refine_errors

__all__ = ["DocumentRunner", "ErrorHandler"]

ErrorHandler = Callable[[list[GraphQLError], Any], None]
# Strawberry's faster check (plain values first), typed as graphql-core wants it.
_IS_AWAITABLE = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)


@dataclass(slots=True)
class _Document:
    node: DocumentNode
    # None until the document is first validated; the rules and schema never change for a runner.
    errors: list[GraphQLError] | None = None
    # Per operation name: its compiled plan, or None where graphql-core runs it. Made after validation.
    plans: dict[str | None, CompiledOperation | None] = field(default_factory=dict)


class _Refused(Exception):
    """A document refused before it was parsed, or before it was validated: not kept in the cache."""

    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__(errors[0].message)
        self.errors = errors


class DocumentRunner:
    """Parses, checks, validates and executes requests on one schema (one runner per built schema)."""

    __slots__ = ("_context_kwargs", "_document", "_limits", "_on_errors", "_rules", "_schema")

    def __init__(
        self,
        schema: GraphQLSchema,
        limits: Limits,
        rules: Sequence[type[ASTValidationRule]],
        *,
        cache_size: int,
        execution_context_class: type[Any] | None,
        on_errors: ErrorHandler,
    ) -> None:
        self._schema = schema
        self._limits = limits
        self._rules = (*specified_rules, *rules)
        # Strawberry's own execution context class, passed the way Strawberry passes it.
        self._context_kwargs = execution_context_class_kwargs(execution_context_class)
        self._on_errors = on_errors
        # Bounded: the set of distinct query texts reaching a public endpoint is not trusted.
        # A document that fails to parse is not cached (an exception), like Strawberry's ParserCache.
        self._document = lru_cache(maxsize=cache_size)(self._parse)

    def _parse(self, query: str) -> _Document:
        refused = self._limits.prescan(query)
        if refused:
            raise _Refused(refused)
        # The parser's own token limit too: the prescan's count is a lower bound of the parser's.
        document = parse(query, max_tokens=self._limits.max_tokens)
        refused = self._limits.check(document)
        if refused:
            raise _Refused(refused)
        return _Document(document)

    async def run(
        self,
        query: str,
        *,
        variables: dict[str, Any] | None,
        context: Any,
        operation_name: str | None,
        allowed: Collection[OperationType],
        root_value: Any = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """The request's result; raises only for an operation that cannot be chosen or is not allowed."""
        try:
            document = self._document(query)
        except _Refused as refused:
            return self._failed(_coded(refused.errors, GRAPHQL_PARSE_FAILED), context)
        except GraphQLError as error:
            return self._failed(_coded([error], GRAPHQL_PARSE_FAILED), context)
        except Exception as error:  # a parser crash (RecursionError...) is the request's problem
            failed = GraphQLError(str(error), original_error=error)
            return self._failed(_coded([failed], GRAPHQL_PARSE_FAILED), context)
        operation = get_operation_ast(document.node, operation_name)
        if operation is None:
            raise CannotGetOperationTypeError(operation_name)
        operation_type = OperationType(operation.operation.value)
        if operation_type not in allowed:
            raise InvalidOperationTypeError(operation_type)
        try:
            if document.errors is None:
                found = validate_document(self._schema, document.node, self._rules)
                document.errors = _coded(found, GRAPHQL_VALIDATION_FAILED)
            if document.errors:
                return self._failed(document.errors, context)
            if operation_name in document.plans:
                plan = document.plans[operation_name]
            else:
                plan = document.plans[operation_name] = compile_operation(
                    self._schema, document.node, operation
                )
            result = None
            if plan is not None:
                result = await plan.execute(variables, context, root_value)
            if result is None:
                result = await self._execute(
                    document, variables, context, operation_name, root_value, operation_extensions
                )
        except Exception as error:
            return self._failed([_as_graphql_error(error)], context)
        if result.data is None and result.errors:
            # No data and errors without a path: the variables did not coerce (field errors have paths).
            _coded([e for e in result.errors if e.path is None], BAD_USER_INPUT)
        if result.errors:
            errors = refine_errors(result.errors, self._schema, operation, _fragments(document))
            result = ExecutionResult(result.data, errors, result.extensions)
            self._on_errors(errors, context)
        return result

    async def _execute(
        self,
        document: _Document,
        variables: dict[str, Any] | None,
        context: Any,
        operation_name: str | None,
        root_value: Any,
        operation_extensions: dict[str, Any] | None,
    ) -> ExecutionResult:
        """graphql-core's execution, with Strawberry's execution context class."""
        result = execute(
            self._schema,
            document.node,
            root_value=root_value,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            is_awaitable=_IS_AWAITABLE,
            operation_extensions=operation_extensions,
            **self._context_kwargs,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        return result

    def _failed(self, errors: Iterable[GraphQLError], context: Any) -> ExecutionResult:
        found = list(errors)
        self._on_errors(found, context)
        return ExecutionResult(data=None, errors=found)


def _coded(errors: list[GraphQLError], code: str) -> list[GraphQLError]:
    """``errors``, each given ``extensions.code`` ``code`` unless it has a code already."""
    for error in errors:
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": code}
    return errors


def _fragments(document: _Document) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in document.node.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def _as_graphql_error(error: Exception) -> GraphQLError:
    return error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
