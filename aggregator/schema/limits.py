"""Request limits, checked before the costly steps so that refusing a document costs little.

Three checks, cheapest first (``Limits``):

0. The text's size (``server.max_query_bytes``): graphql-core's lexer reads whitespace, comments and
   strings a character at a time, about 0.2-0.6 µs each, so a megabyte of them - one comment, one
   string argument - costs the event loop 200-600 ms to parse, valid or not, in few tokens.
1. ``prescan`` on the query text, before graphql-core parses it (its parser alone takes about 10 ms on
   a document of 1,000 aliases): one regular expression splits the text into tokens, and one pass
   over them counts the tokens and each operation's fields. It refuses only what the later steps
   would refuse too: its token count never exceeds graphql-core's, and its field count is the
   exact rule's own count (same weights, fragments counted once each and multiplied, so a fragment
   bomb of a few hundred bytes is refused in microseconds) wherever the text parses, and a lower
   bound where it cannot tell (definitions other than operations and fragments are not counted).
   A text that does not parse may be refused for its size before its syntax error is found.
2. ``check`` on the parsed document, before validation (graphql-core's
   OverlappingFieldsCanBeMergedRule alone takes over 100 ms on 1,000 aliases of one field): the
   exact rules, depth and fields.
3. validation, by the caller, only for a document that passed both.

Both exact rules expand fragments (with memoisation, so fragment bombs cost little to measure) and
ignore fragments that are unknown or cyclic: validation reports those with their proper messages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    SourceLocation,
)

from aggregator.errors import QUERY_TOO_DEEP, QUERY_TOO_LARGE

__all__ = ["MAX_QUERY_BYTES", "MAX_TOKENS", "Limits"]

# GraphiQL's introspection query is about 1,000 tokens; real application queries far fewer.
MAX_TOKENS = 10_000
# Ten thousand tokens of an indented document fit; parsing the worst 64 KiB (one block string)
# costs about 40 ms.
MAX_QUERY_BYTES = 64 * 1024

# Introspection is answered from the schema and costs no upstream call, so its fields weigh two
# fifths of an operation field: GraphiQL's own introspection query (229 fields) passes the default
# limit, while a thousand aliased `__typename` or hundreds of aliased `__schema` selections do not.
_FIELD_WEIGHT = 5
_INTROSPECTION_WEIGHT = 2

# One token of the GraphQL lexical grammar per match, the ignored text before it skipped by the same
# match (whitespace, commas, the BOM, comments: comments count toward graphql-core 3.3.2's max_tokens
# but not toward older versions', so leaving them out keeps this count a lower bound), possessively, so
# that nothing is matched twice. A character the grammar does not know matches alone (graphql-core's lexer
# refuses it); the text's end matches once or twice, with nothing.
_IGNORED = r"(?:[ \t\n\r,\ufeff]++|#[^\n\r]*+)*+"
_TOKEN = (
    r'("""(?:[^"\\]|\\"""|\\(?!""")|"(?!""))*"""|"(?:[^"\\\n\r]|\\.)*"'
    r"|\.\.\.|[_A-Za-z][_0-9A-Za-z]*|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|[^ \t\n\r,\ufeff#])"
)
_TOKENS = re.compile(rf"{_IGNORED}(?:{_TOKEN}|\Z)")
_OPERATIONS = frozenset({"query", "mutation", "subscription"})
_OPEN, _CLOSE, _PARENTHESIS, _DIRECTIVE, _SPREAD, _OTHER_PUNCTUATOR = range(6)
_PUNCTUATORS = {
    "{": _OPEN,
    "}": _CLOSE,
    "(": _PARENTHESIS,
    "@": _DIRECTIVE,
    "...": _SPREAD,
    **dict.fromkeys(("!", "$", "&", ")", ":", "=", "[", "]", "|", ""), _OTHER_PUNCTUATOR),
}


@dataclass
class _Definition:
    """What one operation or fragment selects, its fragments left as names: its fields' weight and
    number, and the fragments it spreads in an ordinary or in an introspection context."""

    name: str  # a fragment's name, or an operation's name as errors give it
    start: int  # index of its first token
    weight: int = 0
    count: int = 0
    spreads: Counter[str] = field(default_factory=Counter)
    spreads_in_introspection: Counter[str] = field(default_factory=Counter)


class Limits:
    """The field, depth and token limits of one schema (made once: every document is checked by it)."""

    __slots__ = ("_first_tokens", "max_bytes", "max_depth", "max_fields", "max_tokens")

    def __init__(
        self,
        *,
        max_depth: int,
        max_fields: int,
        max_tokens: int = MAX_TOKENS,
        max_bytes: int = MAX_QUERY_BYTES,
    ) -> None:
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.max_tokens = max_tokens
        self.max_bytes = max_bytes
        # The first max_tokens tokens of a text that has as many, in one match (atomic: linear time).
        self._first_tokens = re.compile(f"(?>{_IGNORED}{_TOKEN}){{{max_tokens}}}")

    def prescan(self, query: str) -> list[GraphQLError]:
        """Errors for a query text over the size, the token or the field limit; [] when it may pass."""
        # A character is one to four bytes: only a text that may be over the limit is encoded.
        if len(query) * 4 > self.max_bytes:
            size = len(query.encode("utf-8", "surrogatepass"))
            if size > self.max_bytes:
                message = (
                    f"The document is {size:,} bytes; at most {self.max_bytes:,} are accepted"
                    " (server.max_query_bytes)."
                )
                return [GraphQLError(message, extensions={"code": QUERY_TOO_LARGE})]
        # A token is a character or more: only a longer text may hold too many, and it is not
        # split into a list whole (a megabyte of tokens would take longer than parsing it).
        first = self._first_tokens.match(query) if len(query) > self.max_tokens else None
        after = _TOKENS.match(query, first.end()) if first else None
        if after and after[1]:
            message = f"Syntax Error: Document contains more than {self.max_tokens} tokens. Parsing aborted."
            return [_located(message, query, after.start(1), None)]
        tokens = _TOKENS.findall(query)
        while tokens and not tokens[-1]:
            tokens.pop()  # the end of the text
        operations, fragments = _outline(tokens)
        budget = self.max_fields * _FIELD_WEIGHT
        totals: dict[str, tuple[int, int]] = {}
        return [
            _located(
                _too_large(operation.name, self.max_fields),
                query,
                _offset(query, operation.start),
                {"code": QUERY_TOO_LARGE},
            )
            for operation in operations
            if _expand(operation, fragments, totals, budget)[0] > budget
        ]

    def check(self, document: DocumentNode) -> list[GraphQLError]:
        """The exact rules on a parsed document: each operation's fields and depth."""
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        fields = _Rule(fragments, _fields_in, self.max_fields * _FIELD_WEIGHT)
        depth = _Rule(fragments, _depth_of, self.max_depth)
        errors = []
        for node in document.definitions:
            if not isinstance(node, OperationDefinitionNode):
                continue
            name = f"'{node.name.value}'" if node.name else "Anonymous operation"
            if fields.over_budget(node):
                message = _too_large(name, self.max_fields)
                errors.append(GraphQLError(message, node, extensions={"code": QUERY_TOO_LARGE}))
            if depth.over_budget(node):
                message = f"{name} exceeds maximum operation depth of {self.max_depth}."
                errors.append(GraphQLError(message, node, extensions={"code": QUERY_TOO_DEEP}))
        return errors


def _too_large(name: str, limit: int) -> str:
    return f"{name} selects more than {limit} fields (aliases and fragments included)."


def _located(message: str, query: str, offset: int, extensions: dict[str, str] | None) -> GraphQLError:
    """An error located at ``offset`` in ``query``, as graphql-core locates its own.

    Its line and column are counted here: graphql-core 3.3's ``Source.get_location`` runs a regular
    expression over the whole text, 30 ms for a 300 KB document on one line.
    """
    error = GraphQLError(message, extensions=extensions)
    line_start = max(query.rfind("\n", 0, offset), query.rfind("\r", 0, offset)) + 1
    line = query.count("\n", 0, offset) + query.count("\r", 0, offset) - query.count("\r\n", 0, offset)
    error.locations = [SourceLocation(line + 1, offset - line_start + 1)]
    return error


def _offset(query: str, token: int) -> int:
    """Where token number ``token`` (from 0) starts in ``query``: found again only for an error."""
    match = next(islice(_TOKENS.finditer(query), token, None), None)
    return match.start(1) if match is not None else len(query)


# Where the outline is between definitions, or in a definition that selects nothing.
_OTHER = _Definition("", -1)


def _outline(tokens: list[str]) -> tuple[list[_Definition], dict[str, _Definition]]:
    """The operations and fragments of a tokenised document, as the exact field rule counts them.

    Selection sets are followed with a stack of "inside an introspection field" flags; what is in
    parentheses (arguments, variable definitions: values may hold braces) selects nothing. Outside
    parentheses, a token that is no punctuator is a name in any document that parses.
    """
    operations: list[_Definition] = []
    fragments: dict[str, _Definition] = {}
    current = _OTHER  # the definition being read
    stack: list[bool] = []  # per open selection set: inside an introspection field?
    # The last field read is (or is inside) an introspection field: so is its selection set.
    child_is_introspection = False
    end = len(tokens)
    tokens.append("")  # so that looking one token ahead needs no bounds check
    kinds = _PUNCTUATORS
    index = 0
    while index < end:
        token = tokens[index]
        index += 1
        kind = kinds.get(token)
        if kind is None:  # a name
            if not stack:  # between definitions, or in a definition's head
                if current is not _OTHER:
                    continue
                following = tokens[index]
                if token in _OPERATIONS:
                    named = following not in kinds
                    current = _Definition(f"'{following}'" if named else "Anonymous operation", index - 1)
                    operations.append(current)
                elif token == "fragment":
                    current = fragments[following] = _Definition(following, index - 1)
                else:  # another kind of definition (a type, a schema...): it selects nothing
                    current = _Definition("", index - 1)
            elif tokens[index] != ":":  # a field (before a colon: its alias)
                child_is_introspection = stack[-1] or token.startswith("__")
                current.weight += _INTROSPECTION_WEIGHT if child_is_introspection else _FIELD_WEIGHT
                current.count += 1
        elif kind is _CLOSE:
            if stack:
                stack.pop()
                if not stack:
                    current = _OTHER
        elif kind is _OPEN:
            if stack:
                stack.append(stack[-1] or child_is_introspection)
            else:
                if current is _OTHER:  # the query shorthand, `{ ... }`
                    current = _Definition("Anonymous operation", index - 1)
                    operations.append(current)
                stack.append(False)
        elif kind is _PARENTHESIS:
            index = _after_parentheses(tokens, index)
        elif kind is _DIRECTIVE:
            index += 1  # its name
        elif kind is _SPREAD and stack:
            following = tokens[index]
            if following == "on":
                index += 2  # an inline fragment's type condition
            elif following not in kinds:
                index += 1
                spreads = current.spreads_in_introspection if stack[-1] else current.spreads
                spreads[following] += 1
            child_is_introspection = stack[-1]
    del tokens[end:]
    return operations, fragments


def _after_parentheses(tokens: list[str], index: int) -> int:
    """The index after the `)` closing the `(` just before ``index`` (found by list searches, in C)."""
    depth = 1
    try:
        while True:
            closing = tokens.index(")", index)
            depth += tokens[index:closing].count("(") - 1
            index = closing + 1
            if depth == 0:
                return index
    except ValueError:  # never closed: the parser refuses the text
        return len(tokens)


def _expand(
    root: _Definition, fragments: dict[str, _Definition], totals: dict[str, tuple[int, int]], cap: int
) -> tuple[int, int]:
    """The weight and number of the fields ``root`` selects with fragments expanded, each stopped
    just above ``cap``; ``totals`` keeps each fragment's, so that each is expanded once.

    A spread of an unknown fragment selects nothing, as in the exact rule. So does a spread within
    a cycle of fragments (the document is invalid, and validation says why): the exact rule leaves
    out the spreads that close a cycle on its way through, which depend on the way taken, so here
    every spread inside a strongly connected set of fragments is left out, which never counts more.
    The sets are found with Tarjan's algorithm, iteratively: a chain of fragments may be longer than
    Python's recursion limit.
    """
    order: dict[str, int] = {}  # when each fragment was reached
    low: dict[str, int] = {}  # the earliest fragment on the stack it reaches
    stack: list[str] = []
    on_stack: set[str] = set()

    def reach(name: str) -> tuple[str, Iterator[str]]:
        order[name] = low[name] = len(order)
        stack.append(name)
        on_stack.add(name)
        return name, iter(_known_spreads(fragments[name], fragments))

    for start in _known_spreads(root, fragments):
        if start in totals or start in order:
            continue
        path = [reach(start)]
        while path:
            name, spreads = path[-1]
            for spread in spreads:
                if spread in totals:
                    continue
                if spread not in order:
                    path.append(reach(spread))
                    break
                if spread in on_stack:
                    low[name] = min(low[name], order[spread])
            else:
                path.pop()
                if path:
                    parent = path[-1][0]
                    low[parent] = min(low[parent], low[name])
                if low[name] == order[name]:  # the first of a strongly connected set: all done
                    members = stack[stack.index(name) :]
                    del stack[stack.index(name) :]
                    on_stack.difference_update(members)
                    for member in members:
                        totals[member] = _totals(fragments[member], totals, cap, frozenset(members))
    return _totals(root, totals, cap, frozenset())


def _known_spreads(definition: _Definition, fragments: dict[str, _Definition]) -> list[str]:
    return [name for name in (*definition.spreads, *definition.spreads_in_introspection) if name in fragments]


def _totals(
    definition: _Definition, totals: dict[str, tuple[int, int]], cap: int, left_out: frozenset[str]
) -> tuple[int, int]:
    weight, count = definition.weight, definition.count
    for name, n in definition.spreads.items():
        if name not in left_out:
            fragment_weight, fragment_count = totals.get(name, (0, 0))
            weight += n * fragment_weight
            count += n * fragment_count
    for name, n in definition.spreads_in_introspection.items():
        if name not in left_out:
            fragment_count = totals.get(name, (0, 0))[1]
            weight += n * _INTROSPECTION_WEIGHT * fragment_count
            count += n * fragment_count
    return min(weight, cap + 1), min(count, cap + 1)


# The exact rules, on the parsed document ------------------------------------------------------------

Measure = Callable[["_Rule", SelectionSetNode | None, frozenset[str]], int]


class _Rule:
    """One exact rule over one document: ``measure`` a selection set, fragments memoised by name."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode], measure: Measure, budget: int) -> None:
        self.fragments = fragments
        self.measure = measure
        self.budget = budget
        self.memo: dict[str, int] = {}

    def over_budget(self, operation: OperationDefinitionNode) -> bool:
        return self.measure(self, operation.selection_set, frozenset()) > self.budget

    def spread(self, node: FragmentSpreadNode, visiting: frozenset[str]) -> int:
        name = node.name.value
        if name in visiting or name not in self.fragments:
            return 0
        if name not in self.memo:
            self.memo[name] = self.measure(self, self.fragments[name].selection_set, visiting | {name})
        return self.memo[name]


def _fields_in(rule: _Rule, selection_set: SelectionSetNode | None, visiting: frozenset[str]) -> int:
    """The weight of the fields selected (aliases count; introspection fields two fifths), fragments
    expanded: ten fragments that each spread the previous one twice select 2^10 fields."""
    total = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):
                below = _count_below(selection.selection_set, rule.fragments, visiting, rule.budget)
                total += _INTROSPECTION_WEIGHT * (1 + below)
            else:
                total += _FIELD_WEIGHT + _fields_in(rule, selection.selection_set, visiting)
        elif isinstance(selection, InlineFragmentNode):
            total += _fields_in(rule, selection.selection_set, visiting)
        elif isinstance(selection, FragmentSpreadNode):
            total += rule.spread(selection, visiting)
        if total > rule.budget:
            # Stop early: the answer is already "too many", and bombs make totals astronomical.
            return total
    return total


def _count_below(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    visiting: frozenset[str],
    cap: int,
) -> int:
    """Fields below an introspection field, fragments expanded, counting stopped at ``cap``."""
    total = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            total += 1 + _count_below(selection.selection_set, fragments, visiting, cap)
        elif isinstance(selection, InlineFragmentNode):
            total += _count_below(selection.selection_set, fragments, visiting, cap)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in visiting and name in fragments:
                total += _count_below(fragments[name].selection_set, fragments, visiting | {name}, cap)
        if total > cap:
            return total
    return total


def _depth_of(rule: _Rule, selection_set: SelectionSetNode | None, visiting: frozenset[str]) -> int:
    """How deep fields nest (introspection fields aside), fragments expanded."""
    deepest = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):
                continue
            depth = 1 + _depth_of(rule, selection.selection_set, visiting)
        elif isinstance(selection, InlineFragmentNode):
            depth = _depth_of(rule, selection.selection_set, visiting)
        elif isinstance(selection, FragmentSpreadNode):
            depth = rule.spread(selection, visiting)
        else:
            continue
        deepest = max(deepest, depth)
    return deepest
