"""GraphQL upstream documents, checked at load time: syntax, the one operation, variables, `select`.

Without the upstream's schema only the rules that need no schema run (undefined or unused variables,
unknown fragments, fragment cycles, ...); with ``schema:`` the documents are validated in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import graphql
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    validation,
)

from aggregator.config.models import FieldKind, TypeExpr
from aggregator.config.values import type_expr

__all__ = ["Document", "DocumentProblem", "parse_document"]

_SCHEMALESS_RULES = (
    validation.ExecutableDefinitionsRule,
    validation.KnownFragmentNamesRule,
    validation.LoneAnonymousOperationRule,
    validation.NoFragmentCyclesRule,
    validation.NoUndefinedVariablesRule,
    validation.NoUnusedFragmentsRule,
    validation.NoUnusedVariablesRule,
    validation.UniqueArgumentNamesRule,
    validation.UniqueFragmentNamesRule,
    validation.UniqueOperationNamesRule,
    validation.UniqueVariableNamesRule,
)
# The schema-free rules look only at the document, so any schema will do as their context.
_PLACEHOLDER_SCHEMA = graphql.build_schema("type Query { _unused: Int }")
_KINDS: dict[OperationType, FieldKind] = {OperationType.QUERY: "query", OperationType.MUTATION: "mutation"}


class DocumentProblem(Exception):
    """A document was refused; each issue has a message and its 1-based line in the document, if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.issues: tuple[tuple[str, int | None], ...] = ((message, line),)

    @classmethod
    def of(cls, prefix: str, errors: list[GraphQLError]) -> DocumentProblem:
        problem = cls(f"{prefix}: {_message(errors[0])}", _line(errors[0]))
        problem.issues = tuple((f"{prefix}: {_message(error)}", _line(error)) for error in errors)
        return problem


@dataclass(frozen=True)
class Variable:
    type: TypeExpr
    has_default: bool
    # The declared default as a JSON value (``$first: Int = 2`` -> 2), when ``has_default``.
    default: Any = None


@dataclass(frozen=True)
class Document:
    """What the loader needs from a parsed document: the chosen operation and its variables."""

    ast: DocumentNode
    operation: OperationDefinitionNode
    kind: FieldKind
    variables: dict[str, Variable]

    @property
    def operation_name(self) -> str | None:
        return self.operation.name.value if self.operation.name else None

    def root_keys(self) -> tuple[str, ...] | None:
        """The response keys at the top of ``data``; ``None`` when fragments make them unknowable here."""
        return _response_keys(self.operation.selection_set)

    def check_select(self, select: str) -> None:
        """Refuse a dotted ``select`` path that the operation's selection set cannot produce."""
        selection: SelectionSetNode | None = self.operation.selection_set
        walked: list[str] = []
        for segment in select.split("."):
            if selection is None:
                raise DocumentProblem(f"'{'.'.join(walked)}' is a leaf field; it has no '{segment}'")
            keys = _response_keys(selection)
            if keys is None:
                return
            if segment not in keys:
                raise DocumentProblem(
                    f"'{segment}' is not selected by the document at "
                    f"{'.'.join(walked) or 'the top'}; selected there: {', '.join(keys)}"
                )
            walked.append(segment)
            selection = _field(selection, segment).selection_set


def _response_keys(selection: SelectionSetNode) -> tuple[str, ...] | None:
    keys: list[str] = []
    for node in selection.selections:
        if not isinstance(node, FieldNode):
            return None
        keys.append(node.alias.value if node.alias else node.name.value)
    return tuple(keys)


def _field(selection: SelectionSetNode, key: str) -> FieldNode:
    return next(
        node
        for node in selection.selections
        if isinstance(node, FieldNode) and (node.alias or node.name).value == key
    )


def parse_document(text: str, operation_name: str | None, schema: GraphQLSchema | None) -> Document:
    """Parse and check ``text``; raise DocumentProblem with the first thing wrong."""
    try:
        ast = graphql.parse(text)
    except GraphQLError as exc:
        raise DocumentProblem.of("GraphQL syntax error", [exc]) from None
    if schema is None:
        errors = graphql.validate(_PLACEHOLDER_SCHEMA, ast, _SCHEMALESS_RULES)
    else:
        errors = graphql.validate(schema, ast)
    if errors:
        raise DocumentProblem.of("invalid GraphQL document", errors)
    operations = [d for d in ast.definitions if isinstance(d, OperationDefinitionNode)]
    operation = _choose(operations, operation_name)
    kind = _KINDS.get(operation.operation)
    if kind is None:
        raise DocumentProblem(
            "subscriptions are not supported; use a query or a mutation", _node_line(operation)
        )
    variables = {
        v.variable.name.value: Variable(
            type_expr(graphql.print_ast(v.type)),
            v.default_value is not None,
            None if v.default_value is None else graphql.value_from_ast_untyped(v.default_value),
        )
        for v in operation.variable_definitions or ()
    }
    return Document(ast, operation, kind, variables)


def _choose(operations: list[OperationDefinitionNode], wanted: str | None) -> OperationDefinitionNode:
    names = [op.name.value for op in operations if op.name]
    if wanted is not None:
        for op in operations:
            if op.name and op.name.value == wanted:
                return op
        raise DocumentProblem(
            f"operation_name: the document has no operation '{wanted}'; "
            f"it has: {', '.join(names) or 'none named'}"
        )
    if not operations:
        raise DocumentProblem("the document has no operation; write e.g. query Product($id: ID!) { ... }")
    if len(operations) > 1:
        raise DocumentProblem(
            f"the document has {len(operations)} operations ({', '.join(names)}); keep one, or set "
            "operation_name: to the one to send"
        )
    return operations[0]


def _line(error: GraphQLError) -> int | None:
    return error.locations[0].line if error.locations else None


def _message(error: GraphQLError) -> str:
    # graphql-core starts syntax errors with "Syntax Error: "; DocumentProblem.of adds its own prefix.
    return error.message.removeprefix("Syntax Error: ")


def _node_line(node: OperationDefinitionNode) -> int | None:
    return node.loc.source.get_location(node.loc.start).line if node.loc else None
