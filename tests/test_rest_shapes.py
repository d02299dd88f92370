"""The shapes real REST APIs use, end to end through the served gateway against a real loopback upstream:
renamed fields (`from:`), params under wire names (`name:`), BigInt, explicit nulls, answers of the wrong
shape, and 4xx bodies shown to the client.

Tests that read answers run twice: on a compiled plan, and on graphql-core (a document that also asks
for ``integrationStats`` has no plan), which must agree.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from gateway import Gateway, serve_gateway
from servers import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aggregator.upstreams.http import TRUNCATED, UPSTREAM_BODY_BYTES

TOKEN = "tkn-shapes-5f1c9a"
ALL_METHODS = ["GET", "POST", "PATCH"]


@dataclass
class Canned:
    """What ``/answer`` returns: a body, its status and content type."""

    body: bytes = b"null"
    status: int = 200
    content_type: str = "application/json"


@dataclass
class Upstream:
    """Answers ``/answer/...`` with what a test put in ``canned``; ``/echo/...`` with the request."""

    canned: Canned = field(default_factory=Canned)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/answer/{rest:path}", self._answer, methods=ALL_METHODS),
                Route("/echo/{rest:path}", self._echo, methods=ALL_METHODS),
            ]
        )

    async def _answer(self, request: Request) -> Response:
        canned = self.canned
        return Response(canned.body, status_code=canned.status, media_type=canned.content_type)

    async def _echo(self, request: Request) -> Response:
        body = await request.body()
        return JSONResponse(
            {
                "path": request.scope["raw_path"].decode(),
                "query": [[k, v] for k, v in request.query_params.multi_items()],
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": body.decode() if body else None,
            }
        )


CONFIG = """
types:
  State: {enum: [open, closed]}
  Sort:
    enum: [{CREATED: created}, {UPDATED: updated-at}]
  Paper: {kind: String, pages: Int}
  Ebook: {kind: String, megabytes: Float}
  Media: {union: [Paper, Ebook]}
  Medium:
    union: [Paper, Ebook]
    discriminator: kind
    mapping: {e-book: Ebook}
  Label: {id: BigInt, name: String, color: String}
  Reactions:
    plusOne: {type: Int, from: "+1"}
    minusOne: {type: Int, from: "-1"}
    total: {type: Int, from: total_count}
  Issue:
    id: BigInt!
    number: Int
    title: String
    labels: "[Label]"
    reactions: Reactions
    closedBy: {type: Label, from: closed-by}
    state: State
    sort: Sort
    media: Media
    medium: Medium
  Echo:
    path: String
    query: "[[String]]"
    headers: "[[String]]"
    body: String
  IssuePatch:
    title: String
    stateReason: {type: String, from: state_reason}
integrations:
  gh:
    base_url: @URL@
    auth: {type: bearer, token: @TOKEN@}
    operations:
      issue: {path: /answer/issue, returns: Issue}
      issues: {path: /answer/issues, returns: "[Issue]"}
      count: {path: /answer/count, returns: Int}
      search:
        path: "/echo/repos/{repo-name}/issues"
        params:
          repoName: {type: String!, name: repo-name}
          state: {type: String, name: "filter[state]"}
          version: {type: String, name: api-version}
          apiVersion: {type: String, in: header, name: X-GitHub-Api-Version}
          If_None_Match: {type: String, in: header}
          session: {type: String, in: cookie, name: gh_sess}
          ids: {type: "[BigInt]", in: query}
        returns: Echo
      listed:
        path: /echo/issues
        params: {state: State, sort: "[Sort]"}
        returns: Echo
      update:
        method: PATCH
        path: /echo/issues
        params:
          title: String
          body: String
          milestone: Int
          assignee: {type: String, name: assignee_login}
          since: {type: String, in: query}
        returns: Echo
      patch:
        method: PATCH
        path: /echo/issues
        params: {patch: {type: IssuePatch, in: body}}
        returns: Echo
      create: {method: POST, path: /answer/create, params: {title: String}, returns: Issue}
"""
# A root field only graphql-core runs: asked for with it, a document gets no compiled plan.
GRAPHQL_CORE = ' integrationStats(id: "gh") { __typename }'


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Gateway, Upstream]]:
    upstream = Upstream()
    with (
        serve_asgi(upstream.app()) as url,
        serve_gateway(CONFIG.replace("@URL@", url).replace("@TOKEN@", TOKEN)) as gateway,
    ):
        yield gateway, upstream


@pytest.fixture
def gateway(served: tuple[Gateway, Upstream]) -> Gateway:
    return served[0]


@pytest.fixture
def upstream(served: tuple[Gateway, Upstream]) -> Upstream:
    served[1].canned = Canned()
    return served[1]


@pytest.fixture(params=["plan", "graphql-core"])
def ask(request: pytest.FixtureRequest, gateway: Gateway) -> Any:
    """Send a query's selection (``{ ... }`` without the braces) through either executor."""

    def send(selection: str, variables: dict[str, Any] | None = None, head: str = "query") -> dict[str, Any]:
        extra = GRAPHQL_CORE if request.param == "graphql-core" and head == "query" else ""
        body = gateway.query(f"{head} {{ {selection}{extra} }}", variables)
        body.get("data", {}).pop("integrationStats", None)
        return body

    return send


def answer(
    upstream: Upstream, value: Any, *, status: int = 200, content_type: str = "application/json"
) -> None:
    upstream.canned = Canned(orjson.dumps(value), status, content_type)


def echoed(body: dict[str, Any], field: str) -> dict[str, Any]:
    echo: dict[str, Any] = body["data"][field]
    return echo


# --- renamed fields ----------------------------------------------------------------------------------


ISSUE = {
    "id": 1,
    "number": 7,
    "title": "t",
    "labels": [{"id": 2, "name": "bug", "color": "red"}],
    "reactions": {"+1": 3, "-1": 1, "total_count": 4},
    "closed-by": {"id": 5, "name": "ada"},
}


def test_renamed_fields_read_their_wire_names_nested_and_in_lists(ask: Any, upstream: Upstream) -> None:
    """`plusOne` reads `+1`, `closedBy` reads `closed-by`, in nested objects and in list items."""
    answer(upstream, [ISSUE, {**ISSUE, "id": 9, "reactions": {"+1": 0}}])
    body = ask("gh_issues { id reactions { plusOne minusOne total } closedBy { name } }")
    assert body == {
        "data": {
            "gh_issues": [
                {
                    "id": 1,
                    "reactions": {"plusOne": 3, "minusOne": 1, "total": 4},
                    "closedBy": {"name": "ada"},
                },
                {
                    "id": 9,
                    "reactions": {"plusOne": 0, "minusOne": None, "total": None},
                    "closedBy": {"name": "ada"},
                },
            ]
        }
    }


def test_a_renamed_field_does_not_read_its_graphql_name(ask: Any, upstream: Upstream) -> None:
    """An answer keyed by the GraphQL name, not the wire name, leaves the renamed field null."""
    answer(upstream, {**ISSUE, "reactions": {"plusOne": 3}})
    assert ask("gh_issue { reactions { plusOne } }") == {
        "data": {"gh_issue": {"reactions": {"plusOne": None}}}
    }


def test_an_input_field_with_from_is_sent_under_its_wire_name(gateway: Gateway) -> None:
    """`stateReason` of an input type goes upstream as `state_reason`; nulls given stay null."""
    body = gateway.query('mutation { gh_patch(patch: {title: "t", stateReason: null}) { body } }')
    assert orjson.loads(echoed(body, "gh_patch")["body"]) == {"title": "t", "state_reason": None}


def test_a_declared_enum_shows_wire_values_by_their_names(ask: Any, upstream: Upstream) -> None:
    """`closed` is the value closed of State; `updated-at` the value UPDATED of Sort."""
    answer(upstream, {**ISSUE, "state": "closed", "sort": "updated-at"})
    assert ask("gh_issue { state sort }") == {"data": {"gh_issue": {"state": "closed", "sort": "UPDATED"}}}


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        ({"kind": "paper", "pages": 412}, {"__typename": "Paper", "pages": 412}),
        ({"megabytes": 2}, {"__typename": "Ebook", "megabytes": 2.0}),
        ({"__typename": "Ebook", "pages": 1}, {"__typename": "Ebook", "megabytes": None}),
    ],
    ids=["paper-by-its-keys", "ebook-by-its-keys", "named-by-typename"],
)
def test_a_declared_union_without_discriminator_is_its_typename_or_best_match(
    ask: Any, upstream: Upstream, media: dict[str, Any], expected: dict[str, Any]
) -> None:
    """`{union: [...]}` alone: the member `__typename` names, else the one whose fields the keys match."""
    answer(upstream, {**ISSUE, "media": media})
    body = ask("gh_issue { media { __typename ... on Paper { pages } ... on Ebook { megabytes } } }")
    assert body == {"data": {"gh_issue": {"media": expected}}}


@pytest.mark.parametrize(
    ("kind", "member"), [("e-book", "Ebook"), ("Paper", "Paper")], ids=["mapped", "by-name"]
)
def test_a_declared_union_with_a_discriminator_reads_the_member_from_it(
    ask: Any, upstream: Upstream, kind: str, member: str
) -> None:
    """`discriminator: kind` names the member through `mapping`, or by its own name."""
    answer(upstream, {**ISSUE, "medium": {"kind": kind, "pages": 3, "megabytes": 1}})
    assert ask("gh_issue { medium { __typename } }") == {
        "data": {"gh_issue": {"medium": {"__typename": member}}}
    }


def test_enum_arguments_are_sent_as_their_wire_values(gateway: Gateway) -> None:
    """An enum argument, alone or in a list, goes upstream as the wire value its name stands for."""
    body = gateway.query("{ gh_listed(state: open, sort: [CREATED, UPDATED]) { query } }")
    assert echoed(body, "gh_listed")["query"] == [
        ["state", "open"],
        ["sort", "created"],
        ["sort", "updated-at"],
    ]


# --- params under wire names ------------------------------------------------------------------------


def test_params_are_sent_under_their_wire_names(gateway: Gateway) -> None:
    """Path placeholder, query keys, headers and cookies take the params' `name:`; a header's `_`
    becomes `-`."""
    body = gateway.query(
        '{ gh_search(repoName: "hello-world", state: "open", version: "2022-11-28", '
        'apiVersion: "2022-11-28", If_None_Match: "\\"etag\\"", session: "s 1", '
        'ids: [1, "9007199254740993"]) { path query headers } }'
    )
    echo = echoed(body, "gh_search")
    headers = dict(echo["headers"])
    assert echo["path"] == "/echo/repos/hello-world/issues"
    assert echo["query"] == [
        ["filter[state]", "open"],
        ["api-version", "2022-11-28"],
        ["ids", "1"],
        ["ids", "9007199254740993"],
    ]
    assert (headers["x-github-api-version"], headers["if-none-match"]) == ("2022-11-28", '"etag"')
    assert headers["cookie"] == "gh_sess=s%201"
    assert not any(name.startswith("if_") for name in headers)


# --- explicit nulls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "sent"),
    [
        pytest.param('title: "t"', {"title": "t"}, id="absent-stays-absent"),
        pytest.param('title: "t", milestone: null', {"title": "t", "milestone": None}, id="null-is-sent"),
        pytest.param(
            "body: null, assignee: null", {"body": None, "assignee_login": None}, id="under-wire-name"
        ),
    ],
)
def test_an_argument_set_to_null_is_sent_as_null_in_the_body(
    gateway: Gateway, arguments: str, sent: dict[str, Any]
) -> None:
    """A body param given as null is sent as JSON null (that clears it); one not given is left out."""
    body = gateway.query(f"mutation {{ gh_update({arguments}) {{ body }} }}")
    assert orjson.loads(echoed(body, "gh_update")["body"]) == sent


def test_a_null_query_value_is_left_out(gateway: Gateway) -> None:
    """A query param given as null is not sent at all."""
    body = gateway.query('mutation { gh_update(title: "t", since: null) { query } }')
    assert echoed(body, "gh_update")["query"] == []


def test_a_null_passed_as_a_variable_is_sent_as_null(gateway: Gateway) -> None:
    """A variable whose value is null counts as an explicit null."""
    body = gateway.query("mutation M($m: Int) { gh_update(milestone: $m) { body } }", {"m": None})
    assert orjson.loads(echoed(body, "gh_update")["body"]) == {"milestone": None}


# --- BigInt -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        pytest.param(2**40, 2**40, id="beyond-32-bits"),
        pytest.param(2**63 - 1, 2**63 - 1, id="largest-signed-64"),
        pytest.param("1234567890123", 1234567890123, id="string-of-digits"),
        pytest.param(12.0, 12, id="integral-float"),
    ],
)
def test_big_int_answers_are_json_numbers(ask: Any, upstream: Upstream, sent: Any, shown: int) -> None:
    """A BigInt is written as a JSON number, whatever integral form the upstream sent it in."""
    answer(upstream, {**ISSUE, "id": sent})
    assert ask("gh_issue { id }") == {"data": {"gh_issue": {"id": shown}}}


def test_a_big_int_variable_is_read_from_a_string_of_digits(gateway: Gateway) -> None:
    """`[BigInt]` arguments take numbers and strings of digits and are sent as integers."""
    body = gateway.query(
        'query Q($ids: [BigInt]) { gh_search(repoName: "r", ids: $ids) { query } }',
        {"ids": ["18446744073709551615", 5]},
    )
    assert echoed(body, "gh_search")["query"] == [["ids", "18446744073709551615"], ["ids", "5"]]


@pytest.mark.parametrize("value", ["12a", 1.5, True, "99999999999999999999"])
def test_a_big_int_variable_that_is_no_64_bit_integer_is_refused(gateway: Gateway, value: Any) -> None:
    """Fractions, booleans, non-digits and values beyond 64 bits are refused before any call."""
    body = gateway.query(
        'query Q($ids: [BigInt]) { gh_search(repoName: "r", ids: $ids) { path } }', {"ids": [value]}
    )
    (error,) = body["errors"]
    assert "BigInt cannot represent" in error["message"]
    assert "data" not in body


# --- answers of the wrong shape ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "selection", "path", "says"),
    [
        pytest.param(
            {**ISSUE, "labels": ["bug"]},
            "labels { id name color }",
            ["gh_issue", "labels", 0],
            "'Label'",
            id="string-item-under-object-list",
        ),
        pytest.param(
            {**ISSUE, "labels": {"id": 2}},
            "labels { id }",
            ["gh_issue", "labels"],
            "Expected Iterable",
            id="object-where-list",
        ),
        pytest.param(
            {**ISSUE, "reactions": "lots"},
            "reactions { plusOne }",
            ["gh_issue", "reactions"],
            "'Reactions'",
            id="string-where-object",
        ),
        pytest.param(
            {**ISSUE, "number": 2**40},
            "number",
            ["gh_issue", "number"],
            "declare the field BigInt",
            id="int-out-of-range",
        ),
        pytest.param(
            {**ISSUE, "number": "seven"},
            "number",
            ["gh_issue", "number"],
            "Int cannot represent",
            id="string-where-int",
        ),
        pytest.param(
            {**ISSUE, "title": {"text": "t"}},
            "title",
            ["gh_issue", "title"],
            "String cannot represent",
            id="object-where-string",
        ),
        pytest.param(
            {**ISSUE, "reactions": {"+1": 1.5}},
            "reactions { plusOne }",
            ["gh_issue", "reactions", "plusOne"],
            "Int cannot represent",
            id="fraction-where-int",
        ),
        pytest.param(
            {**ISSUE, "state": "merged"},
            "state",
            ["gh_issue", "state"],
            "Enum 'State' cannot represent value: 'merged'",
            id="value-an-enum-does-not-list",
        ),
        pytest.param(
            {**ISSUE, "medium": {"kind": "vinyl"}},
            "medium { __typename }",
            ["gh_issue", "medium"],
            "kind 'vinyl', which names no type of Medium",
            id="discriminator-naming-no-member",
        ),
        pytest.param(
            {**ISSUE, "closed-by": {"id": True}},
            "closedBy { id }",
            ["gh_issue", "closedBy", "id"],
            "BigInt cannot represent",
            id="bool-where-big-int",
        ),
    ],
)
def test_a_value_of_the_wrong_shape_nulls_its_field_with_an_error_at_its_path(
    ask: Any, upstream: Upstream, value: Any, selection: str, path: list[Any], says: str
) -> None:
    """The value is nulled; one UPSTREAM_BAD_RESPONSE at its exact path names integration and operation."""
    answer(upstream, value)
    body = ask(f"gh_issue {{ {selection} }}")
    (error,) = body["errors"]
    assert error["path"] == path
    assert error["extensions"] == {"code": "UPSTREAM_BAD_RESPONSE", "integration": "gh", "operation": "issue"}
    assert error["message"].startswith("gh.issue: the answer does not fit the schema at ")
    assert says in error["message"]
    data: Any = body["data"]
    for key in path[:-1]:
        data = data[key]
    assert data[path[-1]] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(True, 1, id="bool-int"),
        pytest.param("12", 12, id="numeric-string"),
        pytest.param(3.0, 3, id="integral-float"),
    ],
)
def test_int_serialization_follows_graphql_js(
    ask: Any, upstream: Upstream, value: Any, expected: int
) -> None:
    """What graphql-js's Int serializes (booleans, numeric strings, integral floats) is kept, not an error."""
    answer(upstream, value)
    assert ask("gh_count") == {"data": {"gh_count": expected}}


def test_a_wrong_root_answer_is_an_upstream_bad_response(ask: Any, upstream: Upstream) -> None:
    """A text where an Int is the operation's whole answer nulls the field, code and operation named."""
    answer(upstream, "many")
    (error,) = ask("gh_count")["errors"]
    assert (error["path"], error["extensions"]["code"], error["extensions"]["operation"]) == (
        ["gh_count"],
        "UPSTREAM_BAD_RESPONSE",
        "count",
    )


# --- 4xx bodies ---------------------------------------------------------------------------------------


GITHUB_422 = {
    "message": "Validation Failed",
    "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}],
    "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
}


def create_error(gateway: Gateway) -> dict[str, Any]:
    body = gateway.query('mutation { gh_create(title: "t") { id } }')
    (error,) = body["errors"]
    extensions: dict[str, Any] = error["extensions"]
    return extensions


def test_a_4xx_json_body_reaches_the_client_parsed(gateway: Gateway, upstream: Upstream) -> None:
    """GitHub's 422 comes back as `extensions.upstreamBody`, the JSON as the upstream sent it."""
    answer(upstream, GITHUB_422, status=422)
    extensions = create_error(gateway)
    assert (extensions["code"], extensions["status"]) == ("UPSTREAM_HTTP_ERROR", 422)
    assert extensions["upstreamBody"] == GITHUB_422


@pytest.mark.parametrize(
    ("content_type", "raw", "shown"),
    [
        pytest.param("text/plain", b"no such issue", "no such issue", id="text"),
        pytest.param("application/problem+json", b'{"title": "gone"}', {"title": "gone"}, id="problem-json"),
        pytest.param("application/json", b'{"broken', '{"broken', id="json-that-is-not"),
        pytest.param("text/plain", b"x" * 5000, "x" * UPSTREAM_BODY_BYTES + TRUNCATED, id="long-text-cut"),
    ],
)
def test_a_4xx_body_is_json_when_json_and_text_otherwise(
    gateway: Gateway, upstream: Upstream, content_type: str, raw: bytes, shown: Any
) -> None:
    """A JSON body is parsed, any other body is text, cut at 4 KiB and marked."""
    upstream.canned = Canned(raw, 404, content_type)
    assert create_error(gateway)["upstreamBody"] == shown


def test_a_4xx_json_body_over_4_kib_is_left_out(gateway: Gateway, upstream: Upstream) -> None:
    """A JSON body too large to show whole is not shown (a cut document is no JSON)."""
    answer(upstream, {"message": "x" * 5000}, status=400)
    extensions = create_error(gateway)
    assert extensions["status"] == 400
    assert "upstreamBody" not in extensions


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_credentials_are_redacted_from_a_4xx_body(
    gateway: Gateway, upstream: Upstream, content_type: str
) -> None:
    """An upstream that repeats the token it was sent shows *** in its place."""
    upstream.canned = Canned(orjson.dumps({"message": f"bad token Bearer {TOKEN}"}), 401, content_type)
    shown = create_error(gateway)["upstreamBody"]
    text = shown if isinstance(shown, str) else orjson.dumps(shown).decode()
    assert TOKEN not in text
    assert "bad token Bearer ***" in text


def test_a_5xx_body_is_logged_at_debug_not_passed_on(
    gateway: Gateway, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5xx body is the upstream's business: not in the response; in the DEBUG log, redacted."""
    caplog.set_level(logging.DEBUG, logger="aggregator.upstreams.http")
    answer(upstream, {"trace": f"db down, token {TOKEN}"}, status=500)
    extensions = create_error(gateway)
    assert extensions["status"] == 500
    assert "upstreamBody" not in extensions
    logged = [r.getMessage() for r in caplog.records if r.name == "aggregator.upstreams.http"]
    assert any("db down, token ***" in line for line in logged), logged
    assert not any(TOKEN in line for line in logged)
