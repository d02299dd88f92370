"""Request limits enforced at validation time, so a refused query costs no upstream call.

Both rules expand fragments (with memoisation, so fragment bombs cost little to measure) and ignore
fragments that are unknown or cyclic: graphql's own rules report those with their proper messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

__all__ = ["max_depth_rule", "max_fields_rule"]

# Introspection is answered from the schema and costs no upstream call, so its fields weigh two
# fifths of an operation field: GraphiQL's own introspection query (229 fields) passes the default
# limit, while a thousand aliased `__typename` or hundreds of aliased `__schema` selections do not.
_FIELD_WEIGHT = 5
_INTROSPECTION_WEIGHT = 2

Measure = Callable[[SelectionSetNode | None, frozenset[str]], int]


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


class _OperationRule(ASTValidationRule):
    """Measures each operation with ``measure`` and reports the ones over ``budget``."""

    budget = 0
    code = ""

    def enter_document(self, node: DocumentNode, *_: Any) -> None:
        # Built once per document: per operation it would be quadratic in a document of many operations.
        self.fragments = _fragments(node)
        self.memo: dict[str, int] = {}

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        if self.measure(node.selection_set, frozenset()) > self.budget:
            name = f"'{node.name.value}'" if node.name else "Anonymous operation"
            self.report_error(GraphQLError(self.message(name), node, extensions={"code": self.code}))

    def message(self, name: str) -> str:
        raise NotImplementedError

    def measure(self, selection_set: SelectionSetNode | None, visiting: frozenset[str]) -> int:
        raise NotImplementedError

    def spread(self, node: FragmentSpreadNode, visiting: frozenset[str]) -> int:
        name = node.name.value
        if name in visiting or name not in self.fragments:
            return 0
        if name not in self.memo:
            self.memo[name] = self.measure(self.fragments[name].selection_set, visiting | {name})
        return self.memo[name]


def max_fields_rule(limit: int) -> type[ASTValidationRule]:
    """Refuse operations selecting more than ``limit`` fields once fragments are expanded (aliases
    count; introspection fields count a fifth): ten fragments that each spread the previous one twice
    select 2^10 fields from a tiny document."""

    class MaxFields(_OperationRule):
        budget = limit * _FIELD_WEIGHT
        code = "QUERY_TOO_LARGE"

        def message(self, name: str) -> str:
            return f"{name} selects more than {limit} fields (aliases and fragments included)."

        def measure(self, selection_set: SelectionSetNode | None, visiting: frozenset[str]) -> int:
            total = 0
            for selection in selection_set.selections if selection_set else ():
                if isinstance(selection, FieldNode):
                    if selection.name.value.startswith("__"):
                        total += _INTROSPECTION_WEIGHT * (
                            1 + _count(selection.selection_set, self.fragments, cap=self.budget)
                        )
                    else:
                        total += _FIELD_WEIGHT + self.measure(selection.selection_set, visiting)
                elif isinstance(selection, InlineFragmentNode):
                    total += self.measure(selection.selection_set, visiting)
                elif isinstance(selection, FragmentSpreadNode):
                    total += self.spread(selection, visiting)
                if total > self.budget:
                    # Stop early: the answer is already "too many", and bombs make totals astronomical.
                    return total
            return total

    return MaxFields


def _count(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    visiting: frozenset[str] = frozenset(),
    cap: int = 100_000,
) -> int:
    """Fields below an introspection field, fragments expanded, counting stopped at ``cap``."""
    total = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            total += 1 + _count(selection.selection_set, fragments, visiting, cap)
        elif isinstance(selection, InlineFragmentNode):
            total += _count(selection.selection_set, fragments, visiting, cap)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in visiting and name in fragments:
                total += _count(fragments[name].selection_set, fragments, visiting | {name}, cap)
        if total > cap:
            return total
    return total


def max_depth_rule(limit: int) -> type[ASTValidationRule]:
    """Refuse operations nesting fields deeper than ``limit`` (introspection fields aside)."""

    class MaxDepth(_OperationRule):
        budget = limit
        code = "QUERY_TOO_DEEP"

        def message(self, name: str) -> str:
            return f"{name} exceeds maximum operation depth of {limit}."

        def measure(self, selection_set: SelectionSetNode | None, visiting: frozenset[str]) -> int:
            deepest = 0
            for selection in selection_set.selections if selection_set else ():
                if isinstance(selection, FieldNode):
                    if selection.name.value.startswith("__"):
                        continue
                    depth = 1 + self.measure(selection.selection_set, visiting)
                elif isinstance(selection, InlineFragmentNode):
                    depth = self.measure(selection.selection_set, visiting)
                elif isinstance(selection, FragmentSpreadNode):
                    depth = self.spread(selection, visiting)
                else:
                    continue
                deepest = max(deepest, depth)
            return deepest

    return MaxDepth
