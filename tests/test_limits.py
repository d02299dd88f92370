"""Request limits: the cheap scan of the query text agrees with the exact rules, and runs first."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from graphql import GraphQLError, NoFragmentCyclesRule, build_schema, parse, validate
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.schema import RequestContext, execution
from aggregator.schema.limits import Limits

# Rules on fragments alone look at no type: any schema will do.
ANY_SCHEMA = build_schema("type Query { a: Int }")
FRAGMENT_BOMB = "query Bomb { ...F9 } fragment F0 on Query { a b } " + " ".join(
    f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, 10)
)
# Documents the scan must count exactly as the rule on the parsed document does.
CORPUS = {
    "plain": "{ a b c }",
    "aliases": "{ x: a y: a z: b }",
    "nested": "query Q { a { b { c d } e } }",
    "arguments with braces": 'query Q($v: In = {a: {b: 1}}) { a(x: {y: [1, {z: "}"}]}, w: $v) { b } }',
    "directives": "{ a @include(if: true) { b @skip(if: false) } c @dir(arg: {k: 1}) }",
    "strings and comments": '{ a(s: "{ b c }", t: """ { d } \\""" """) # { e f }\n g }',
    "introspection": "{ __typename __schema { types { name fields { name } } } a }",
    "introspection fragments": "{ __schema { ...S } ...R } fragment S on __Schema { types { name } } "
    'fragment R on Query { a __type(name: "A") { ...T } } fragment T on __Type { name kind }',
    "inline fragments": "{ ... on Query { a b } ... @include(if: true) { c } ... { d } }",
    "fragments": "query A { ...F ...F x { ...F } } fragment F on Query { a b { c } }",
    "several operations": "query A { a } query B { b c } mutation C { d e f } subscription D { g }",
    "fragment bomb": FRAGMENT_BOMB,
    "unknown fragment": "{ a ...Nope }",
    "variables and types": "query Q($a: [Int!]! = [1, 2], $b: String) @dir { a(x: $a) { b } }",
    "aliases everywhere": "{ x: a(k: 1) { y: b z: __typename } }",
    "line breaks of every kind": "# c\r\n\r\n query A {\r\n a\r b c }\n\r query B { d e f }",
}


def fields_rule(document: str, limit: int) -> bool:
    """Whether the exact rule refuses ``document`` for its fields at ``limit``."""
    errors = Limits(max_depth=1000, max_fields=limit).check(parse(document))
    return any(e.extensions == {"code": "QUERY_TOO_LARGE"} for e in errors)


def prescan(document: str, limit: int) -> list[GraphQLError]:
    return Limits(max_depth=1000, max_fields=limit).prescan(document)


@pytest.mark.parametrize("document", CORPUS.values(), ids=CORPUS.keys())
def test_the_scan_refuses_exactly_what_the_field_rule_refuses(document: str) -> None:
    """At every limit, the scan of the text and the rule on the parsed document agree."""
    for limit in range(1, 40):
        assert bool(prescan(document, limit)) == fields_rule(document, limit), limit


@pytest.mark.parametrize("document", CORPUS.values(), ids=CORPUS.keys())
def test_the_scan_gives_the_field_rule_s_own_errors(document: str) -> None:
    """Message, location and code of a scan refusal are those of the rule on the parsed document."""
    scanned = [e.formatted for e in prescan(document, 2)]
    exact = [e.formatted for e in Limits(max_depth=1000, max_fields=2).check(parse(document))]
    assert scanned == [e for e in exact if e["extensions"]["code"] == "QUERY_TOO_LARGE"]


@pytest.mark.parametrize(
    "document",
    [
        "{ ...A } fragment A on Query { a ...B } fragment B on Query { b ...A }",
        "{ ...A ...B } fragment A on Query { a b ...B } fragment B on Query { c ...A }",
        "{ __schema { ...A } } fragment A on Query { a { ...A } b }",
    ],
)
def test_the_scan_never_counts_more_than_the_rule_in_a_fragment_cycle(document: str) -> None:
    """Spreads within a cycle count nothing in the scan, whatever way the rule took through it."""
    for limit in range(1, 20):
        assert not prescan(document, limit) or fields_rule(document, limit), limit


def test_definitions_that_select_nothing_are_not_counted() -> None:
    """A type definition's fields are not selections: the scan does not count them."""
    document = "type Query { " + " ".join(f"f{n}: Int" for n in range(100)) + " } { a }"
    assert prescan(document, 5) == []


def test_a_fragment_bomb_is_refused_by_the_scan() -> None:
    """Sixty fragments that each spread the previous one twice select 2^60 fields: refused at once."""
    document = "{ ...F59 } fragment F0 on Query { a } " + " ".join(
        f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, 60)
    )
    [error] = prescan(document, 200)
    assert error.extensions == {"code": "QUERY_TOO_LARGE"}


def test_a_fragment_chain_longer_than_the_recursion_limit_is_counted() -> None:
    """Fragments are expanded without recursion: a chain of thousands is counted, not a crash."""
    length = sys.getrecursionlimit() + 100
    document = "{ ...F0 } " + " ".join(f"fragment F{n} on Query {{ a ...F{n + 1} }}" for n in range(length))
    [error] = prescan(document, length - 1)
    assert error.extensions == {"code": "QUERY_TOO_LARGE"}
    assert prescan(document, length + 1) == []


@pytest.mark.parametrize(
    ("document", "tokens"),
    [
        ("{ a b c }", 5),
        ('{ a(s: "x y z") }', 8),
        ('{ a(s: """x\n y""") }', 8),
        ("{ ...F } fragment F on Q { a }", 11),
        ("query($a: Int = -1.5e3) { a }", 12),
    ],
)
def test_the_token_limit_counts_as_the_parser_does(document: str, tokens: int) -> None:
    """A document of exactly the limit passes; one token fewer allowed and it is refused."""
    assert Limits(max_depth=10, max_fields=10, max_tokens=tokens).prescan(document) == []
    [error] = Limits(max_depth=10, max_fields=10, max_tokens=tokens - 1).prescan(document)
    with pytest.raises(GraphQLError) as parsed:
        parse(document, max_tokens=tokens - 1)
    assert error.formatted == parsed.value.formatted


def test_comments_are_left_to_the_parser_s_own_token_limit() -> None:
    """graphql-core 3.3 counts comments as tokens and 3.2 does not: the scan leaves them out."""
    assert Limits(max_depth=10, max_fields=10, max_tokens=3).prescan("{ a # b c d\n }") == []


def test_a_long_run_of_ignored_text_is_read_once() -> None:
    """A megabyte of whitespace or comments after the document costs a pass, not a quadratic scan."""
    for padding in (" " * 1_000_000, "#\n" * 500_000):
        assert Limits(max_depth=10, max_fields=10, max_bytes=2_000_000).prescan("{ a }" + padding) == []


names = st.sampled_from(["a", "b", "__typename", "__schema", "c"])


@st.composite
def selections(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["field", "field", "alias", "spread", "inline"]))
        if kind == "spread":
            parts.append(f"...F{draw(st.integers(0, 3))}")
            continue
        sub = draw(selections(depth + 1)) if depth < 3 and draw(st.booleans()) else ""
        if kind == "inline":
            parts.append(f"... on Query {{ {sub or 'a'} }}")
        else:
            alias = "x: " if kind == "alias" else ""
            parts.append(f"{alias}{draw(names)}(k: {{v: 1}}){' { ' + sub + ' }' if sub else ''}")
    return " ".join(parts)


@settings(max_examples=200, deadline=None)
@given(operation=selections(), fragments=st.lists(selections(), min_size=4, max_size=4))
def test_generated_documents_are_counted_as_the_field_rule_counts_them(
    operation: str, fragments: list[str]
) -> None:
    """Generated selections with fragments: the scan refuses exactly what the rule refuses, and
    where fragments form a cycle (an invalid document) never more."""
    document = f"query Q {{ {operation} }} " + " ".join(
        f"fragment F{n} on Query {{ {body} }}" for n, body in enumerate(fragments)
    )
    cyclic = bool(validate(ANY_SCHEMA, parse(document), [NoFragmentCyclesRule]))
    for limit in (1, 3, 8, 20):
        if cyclic:
            assert not prescan(document, limit) or fields_rule(document, limit)
        else:
            assert bool(prescan(document, limit)) == fields_rule(document, limit)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The runner's parse and validation calls, recorded in order."""
    seen: list[str] = []

    def recording(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen.append(name)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(execution, "parse", recording("parse", execution.parse))
    monkeypatch.setattr(execution, "validate_document", recording("validate", execution.validate_document))
    return seen


@pytest.mark.parametrize(
    ("document", "code", "expected"),
    [
        ("{ " + "a: __typename " * 1000 + "}", "QUERY_TOO_LARGE", []),
        (FRAGMENT_BOMB.replace("on Query { a b }", "on Query { __typename }"), "QUERY_TOO_LARGE", []),
        ("{ a " * 30 + "}" * 30, "QUERY_TOO_DEEP", ["parse"]),
        ("{ " + "a " * 20_000 + "}", "GRAPHQL_PARSE_FAILED", []),
        ("{ a }" + " " * 70_000, "QUERY_TOO_LARGE", []),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED", ["parse", "validate"]),
    ],
    ids=["aliases", "fragment bomb", "depth", "tokens", "bytes", "valid size"],
)
async def test_limits_are_checked_before_parsing_and_validation(
    runner_schema: Any, steps: list[str], document: str, code: str, expected: list[str]
) -> None:
    """Size is refused before the parse, depth before validation; only a document that passes both
    is validated."""
    result = await runner_schema.execute(document, context_value=RequestContext())
    assert result.data is None
    assert [e.extensions["code"] for e in result.errors] == [code]
    assert steps == expected


@pytest.fixture
def runner_schema() -> Any:
    from aggregator.config import loads
    from aggregator.module import IntegrationModule
    from aggregator.schema import build_schema

    config = loads(
        """
server: {max_depth: 5, max_aliases: 50}
integrations:
  users:
    base_url: http://127.0.0.1:9
    operations:
      ping: {path: /ping}
"""
    )
    return build_schema(config, IntegrationModule(config))


@pytest.mark.parametrize(
    "document",
    [
        "{ a }\n#" + "x" * 70_000,
        '{ a(s: "' + "x" * 70_000 + '") }',
        "{ a }" + " " * 70_000,
        '{ a(s: "' + "é" * 40_000 + '") }',
    ],
    ids=["comment", "string", "whitespace", "two-byte-characters"],
)
def test_a_text_over_the_size_limit_is_refused_before_it_is_lexed(document: str) -> None:
    """Few tokens but costly to lex: a text over max_query_bytes (UTF-8 bytes) is QUERY_TOO_LARGE."""
    [error] = Limits(max_depth=10, max_fields=10).prescan(document)
    assert error.extensions == {"code": "QUERY_TOO_LARGE"}
    assert "server.max_query_bytes" in error.message


def test_a_text_at_the_size_limit_passes() -> None:
    """The size limit counts bytes: a text of exactly max_query_bytes passes."""
    document = "{ a }" + " " * 995
    assert Limits(max_depth=10, max_fields=10, max_bytes=1000).prescan(document) == []
    assert Limits(max_depth=10, max_fields=10, max_bytes=999).prescan(document) != []
