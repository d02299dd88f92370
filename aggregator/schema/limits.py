"""Request limits enforced at validation time, so a refused query costs no upstream call."""

from __future__ import annotations

from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


def max_fields_rule(limit: int) -> type[ASTValidationRule]:
    """A rule refusing operations that select more than ``limit`` fields once fragments are expanded
    (introspection fields aside).

    Counting after expansion is what stops alias and fragment bombs: ten fragments that each spread
    the previous one twice select 2^10 fields from a tiny document.
    """

    class MaxFields(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            fragments = {
                d.name.value: d
                for d in self.context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            memo: dict[str, int] = {}
            count = _count(node.selection_set, fragments, memo, frozenset(), limit)
            if count > limit:
                name = f" '{node.name.value}'" if node.name else ""
                self.report_error(
                    GraphQLError(
                        f"Operation{name} selects more than {limit} fields (aliases and fragments "
                        f"included); the limit is {limit}.",
                        node,
                        extensions={"code": "QUERY_TOO_LARGE"},
                    )
                )

    return MaxFields


def _count(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    memo: dict[str, int],
    visiting: frozenset[str],
    limit: int,
) -> int:
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):
                # Introspection is answered from the schema and costs no upstream call: GraphiQL's
                # own introspection query alone selects hundreds of fields.
                continue
            total += 1 + _count(selection.selection_set, fragments, memo, visiting, limit)
        elif isinstance(selection, InlineFragmentNode):
            total += _count(selection.selection_set, fragments, memo, visiting, limit)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            # A cycle or an unknown fragment is reported by graphql's own rules; count it as nothing.
            if name in visiting or name not in fragments:
                continue
            if name not in memo:
                memo[name] = _count(fragments[name].selection_set, fragments, memo, visiting | {name}, limit)
            total += memo[name]
        if total > limit:
            # Stop early: the answer is already "too many", and bombs make exact totals astronomical.
            return total
    return total


__all__ = ["max_fields_rule"]
