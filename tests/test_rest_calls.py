"""RestUpstream on the production HTTP client (wire.py), against real loopback upstreams: where each
param lands, which value of a header is sent, and how answers and failures become values or errors.

Most tests share one recording upstream (``RecordingUpstream``, module-scoped): it keeps every request
exactly as it arrived and answers with what the test set. Peers that misbehave below HTTP (hang up,
send garbage, announce a body and never send it) are raw sockets on the test's loop (``serve_raw``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from builders import integration, operation, param
from conftest import StartUpstream
from servers import closed_port_url, never_answer, read_request, serve_asgi, serve_raw
from upstream_apps import Answer, Received, RecordingUpstream

from aggregator.config.models import ApiKeyAuth, BearerAuth, Operation, ParamStyle, RetryPolicy, Secret
from aggregator.errors import (
    InvalidParams,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.module import IntegrationModule
from aggregator.testing import FakeClock
from aggregator.upstreams.http import EXCERPT_CHARS, redact
from aggregator.upstreams.rest import RestUpstream

GET_USER = operation(
    "getUser",
    path="/users/{id}",
    params=(param("id", "ID!", "path"), param("expand", "Boolean"), param("tags", "[String]")),
)
CREATE_USER = operation("createUser", method="POST", path="/users", params=(param("input", "JSON!", "body"),))
TENANT = param("X-Tenant", "String!", "header")


class Upstream:
    """The shared recording upstream, and calls to it through a started RestUpstream."""

    def __init__(self, recorder: RecordingUpstream, url: str, start_upstream: StartUpstream) -> None:
        self.recorder = recorder
        self.url = url
        self.base = f"{url}/api"
        self._start = start_upstream

    def answers(self, status: int = 200, body: bytes = b"{}", **headers: str) -> None:
        """Answer every request with this status, body and headers (names with _ for -)."""
        items = tuple((name.replace("_", "-"), value) for name, value in headers.items())
        self.recorder.answer = Answer(status, body, items or (("content-type", "application/json"),))

    async def call(
        self,
        op: Operation = GET_USER,
        params: dict[str, Any] | None = None,
        *,
        forwarded: dict[str, str] | None = None,
        base: str | None = None,
        **fields: Any,
    ) -> Any:
        """Prepare and send one call; ``fields`` are the integration's (auth, headers...)."""
        upstream = await self._start(integration(base or self.base, op, **fields))
        request = upstream.prepare(op, {"id": "1"} if params is None else params, forwarded_headers=forwarded)
        return await upstream.send(request)

    async def failure(self, op: Operation = GET_USER, **kwargs: Any) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await self.call(op, **kwargs)
        return caught.value

    @property
    def only(self) -> Received:
        """The one request the upstream received."""
        assert len(self.recorder.received) == 1, self.recorder.received
        return self.recorder.received[0]


@pytest.fixture(scope="module")
def recording_server() -> Iterator[tuple[RecordingUpstream, str]]:
    recorder = RecordingUpstream()
    with serve_asgi(recorder) as url:
        yield recorder, url


@pytest.fixture
def upstream(recording_server: tuple[RecordingUpstream, str], start_upstream: StartUpstream) -> Upstream:
    """The shared recording upstream, emptied and answering 200 {} again."""
    recorder, url = recording_server
    recorder.reset()
    return Upstream(recorder, url, start_upstream)


# --- params the call refuses: nothing is sent ------------------------------------------------------


UNKNOWN_OR_MISSING = [
    ({"id": "1", "nickname": "x"}, r"unknown param\(s\) nickname"),
    ({"expand": True}, r"missing required param\(s\) id"),
    ({"id": None}, r"missing required param\(s\) id"),
    ({"id": ""}, "path param id must not be empty"),
]


@pytest.mark.parametrize(("params", "words"), UNKNOWN_OR_MISSING, ids=["unknown", "missing", "null", "empty"])
async def test_params_that_cannot_make_a_request_are_invalid_and_nothing_is_sent(
    upstream: Upstream, params: dict[str, Any], words: str
) -> None:
    """An unknown, absent or null required param, or an empty path value (it would turn /users/{id}
    into /users/) is INVALID_PARAMS naming the param; nothing is sent."""
    with pytest.raises(InvalidParams, match=words) as caught:
        await upstream.call(params=params)
    assert caught.value.code == "INVALID_PARAMS"
    assert upstream.recorder.received == []


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b"])
async def test_a_header_param_with_a_line_break_is_invalid_and_nothing_is_sent(
    upstream: Upstream, value: str
) -> None:
    """A header value with CR, LF or NUL could smuggle headers: INVALID_PARAMS."""
    with pytest.raises(InvalidParams, match="line break"):
        await upstream.call(operation(params=(TENANT,)), {"X-Tenant": value})
    assert upstream.recorder.received == []


async def test_a_body_that_is_not_json_encodable_is_invalid(upstream: Upstream) -> None:
    """A body value orjson cannot encode is the caller's error, not an upstream failure."""
    with pytest.raises(InvalidParams, match="JSON"):
        await upstream.call(CREATE_USER, {"input": {"when": object()}})
    assert upstream.recorder.received == []


# --- where params land ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("42", "42"),
        (42, "42"),
        ("a/b", "a%2Fb"),
        ("x?admin=1", "x%3Fadmin%3D1"),
        ("x#frag", "x%23frag"),
        ("100%", "100%25"),
        ("a b", "a%20b"),
        ("line\r\nX-Evil: 1", "line%0D%0AX-Evil%3A%201"),
        ("../../admin", "..%2F..%2Fadmin"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("@evil.test", "%40evil.test"),
    ],
)
async def test_a_path_value_arrives_as_one_percent_encoded_segment(
    upstream: Upstream, value: object, segment: str
) -> None:
    """A path value cannot add segments, a query, a fragment, a dot segment or a host."""
    await upstream.call(params={"id": value})
    assert (upstream.only.path, upstream.only.query_string) == (f"/api/users/{segment}", "")
    assert upstream.only.header("host") == [upstream.url.removeprefix("http://")]


@pytest.mark.parametrize("base_path", ["/api", "/api/"])
@pytest.mark.parametrize(
    ("path", "expected"), [("/users", "/api/users"), ("users", "/api/users"), ("", "/api")]
)
async def test_base_url_and_path_join_with_one_slash(
    upstream: Upstream, base_path: str, path: str, expected: str
) -> None:
    """base_url's path and the operation's path are joined without doubled or missing slashes."""
    await upstream.call(operation(path=path), {}, base=f"{upstream.url}{base_path}")
    assert upstream.only.path == expected


async def test_a_query_in_base_url_is_sent_along_with_the_params(upstream: Upstream) -> None:
    """A query string in base_url (e.g. an API version) comes first, then the params."""
    await upstream.call(operation(params=(param("q"),)), {"q": "x"}, base=f"{upstream.url}/api?version=2")
    assert upstream.only.query == [("version", "2"), ("q", "x")]


async def test_query_values_follow_the_contract(upstream: Upstream) -> None:
    """Booleans as true/false, lists as repeated keys, numbers as text, null params and items left out."""
    op = operation(
        params=(
            param("flag", "Boolean"),
            param("off", "Boolean"),
            param("tag", "[String]"),
            param("n", "Int"),
            param("gone"),
            param("f", "Float"),
        )
    )
    await upstream.call(
        op, {"flag": True, "off": False, "tag": ["a", None, "b"], "n": 3, "gone": None, "f": 1.5}
    )
    assert upstream.only.query == [
        ("flag", "true"),
        ("off", "false"),
        ("tag", "a"),
        ("tag", "b"),
        ("n", "3"),
        ("f", "1.5"),
    ]


@pytest.mark.parametrize(
    ("style", "explode", "value", "pairs"),
    [
        ("form", True, [1, 2], [("a", "1"), ("a", "2")]),
        ("form", False, [1, None, 2], [("a", "1,2")]),
        ("spaceDelimited", False, ["x", "y"], [("a", "x y")]),
        ("pipeDelimited", False, ["x", "y"], [("a", "x|y")]),
        ("form", False, [], []),
        ("form", False, "one", [("a", "one")]),
        ("deepObject", False, {"state": "open", "n": 2, "gone": None}, [("a[state]", "open"), ("a[n]", "2")]),
        ("deepObject", False, {"k": {"j": True}}, [("a[k][j]", "true")]),
        ("form", True, {"k": 1}, [("a", '{"k":1}')]),
    ],
)
async def test_query_values_follow_the_params_style_and_explode(
    upstream: Upstream, style: ParamStyle, explode: bool, value: object, pairs: list[tuple[str, str]]
) -> None:
    """Lists repeat the key when exploded, else join with the style's delimiter; deepObject brackets keys."""
    await upstream.call(
        operation(params=(replace(param("a", "JSON"), style=style, explode=explode),)), {"a": value}
    )
    assert upstream.only.query == pairs


async def test_a_header_param_is_sent_as_a_header(upstream: Upstream) -> None:
    """An `in: header` param becomes a header of that name."""
    await upstream.call(operation(params=(TENANT,)), {"X-Tenant": "acme"})
    assert upstream.only.header("X-Tenant") == ["acme"]


async def test_a_list_header_param_is_sent_comma_separated(upstream: Upstream) -> None:
    """A list in a header is OpenAPI's simple style: its non-null items joined by commas."""
    await upstream.call(
        operation(params=(param("X-Tags", "[String]", "header"),)), {"X-Tags": ["a", None, "b"]}
    )
    assert upstream.only.header("X-Tags") == ["a,b"]


@pytest.mark.parametrize(
    ("value", "sent"),
    [("abc", "abc"), ('a b;c=d,"e"%', "a%20b%3Bc=d%2C%22e%22%25"), (7, "7"), (["x,1", None, "y"], "x%2C1,y")],
    ids=["plain", "reserved-characters", "number", "list"],
)
async def test_a_cookie_param_is_sent_in_the_cookie_header(
    upstream: Upstream, value: object, sent: str
) -> None:
    """An `in: cookie` param is `name=value` in one Cookie header, characters a cookie cannot hold
    percent-encoded."""
    await upstream.call(operation(params=(param("session", "JSON", "cookie"),)), {"session": value})
    assert upstream.only.header("cookie") == [f"session={sent}"]


async def test_cookie_params_join_the_cookies_already_set(upstream: Upstream) -> None:
    """Cookie params are added to a Cookie header set elsewhere, replacing a cookie of the same name;
    an absent or null cookie param adds nothing."""
    op = operation(
        params=(
            param("theme", "String", "cookie"),
            param("lang", "String", "cookie"),
            param("x", "String", "cookie"),
        )
    )
    await upstream.call(
        op, {"theme": "dark", "lang": "en", "x": None}, headers={"Cookie": "theme=light; consent=yes"}
    )
    assert upstream.only.header("cookie") == ["consent=yes; theme=dark; lang=en"]


async def test_an_api_key_cookie_is_added_to_the_cookies_already_set(upstream: Upstream) -> None:
    """`auth: api_key` in a cookie joins the integration's and the params' cookies, and wins a name."""
    op = operation(params=(param("theme", "String", "cookie"), param("sid", "String", "cookie")))
    await upstream.call(
        op,
        {"theme": "dark", "sid": "from-the-client"},
        headers={"Cookie": "consent=yes"},
        auth=ApiKeyAuth(key=Secret("k3y"), location="cookie", name="sid"),
    )
    assert upstream.only.header("cookie") == ["consent=yes; theme=dark; sid=k3y"]


@pytest.mark.parametrize("document", [{"name": "Ada", "tags": ["x"]}, [1, 2], "text", 7])
async def test_one_json_body_param_is_the_whole_body(upstream: Upstream, document: object) -> None:
    """A single `in: body` param of type JSON is sent as the entire JSON body."""
    await upstream.call(CREATE_USER, {"input": document})
    assert (upstream.only.method, upstream.only.body) == ("POST", orjson.dumps(document))
    assert upstream.only.header("content-type") == ["application/json"]


@pytest.mark.parametrize(
    ("params", "given", "body"),
    [
        ((param("name", "String!", "body"), param("age", "Int", "body")), {"name": "Ada"}, b'{"name":"Ada"}'),
        ((param("name", "String!", "body"),), {"name": "Ada"}, b'{"name":"Ada"}'),
    ],
    ids=["several", "one-not-json-typed"],
)
async def test_body_params_form_an_object_without_nulls(
    upstream: Upstream, params: tuple[Any, ...], given: dict[str, Any], body: bytes
) -> None:
    """Several body params (or one that is not JSON-typed) form one JSON object; nulls are left out."""
    await upstream.call(operation(method="POST", params=params), given)
    assert upstream.only.body == body


async def test_an_absent_optional_json_body_sends_no_body(upstream: Upstream) -> None:
    """An optional whole-body param that is absent means an empty body and no Content-Type."""
    await upstream.call(operation(method="POST", params=(param("input", "JSON", "body"),)), {})
    assert (upstream.only.body, upstream.only.header("content-type")) == (b"", [])
    assert upstream.only.header("content-length") == ["0"]


# --- which value of a header is sent ----------------------------------------------------------------

AUTHORIZATION = param("Authorization", "String", "header")


@pytest.mark.parametrize(
    ("fields", "params", "incoming", "sent"),
    [
        ({"headers": {"authorization": "Bearer static"}}, (), {}, "Bearer static"),
        (
            {"headers": {"authorization": "Bearer static"}, "forward_headers": ("Authorization",)},
            (),
            {"Authorization": "Bearer client"},
            "Bearer client",
        ),
        (
            {"forward_headers": ("Authorization",)},
            (AUTHORIZATION,),
            {"Authorization": "Bearer client"},
            "Bearer param",
        ),
        (
            {"headers": {"authorization": "Bearer static"}, "auth": BearerAuth(token=Secret("own"))},
            (AUTHORIZATION,),
            {},
            "Bearer own",
        ),
        (
            {"forward_headers": ("Authorization",), "auth": BearerAuth(token=Secret("own"))},
            (),
            {"Authorization": "Bearer client"},
            "Bearer own",
        ),
        (
            {
                "forward_headers": ("Authorization",),
                "forward_overrides_auth": frozenset({"authorization"}),
                "auth": BearerAuth(token=Secret("own")),
            },
            (),
            {"Authorization": "Bearer client"},
            "Bearer client",
        ),
        (
            {
                "forward_headers": ("Authorization",),
                "forward_overrides_auth": frozenset({"authorization"}),
                "auth": BearerAuth(token=Secret("own")),
            },
            (),
            {},
            "Bearer own",
        ),
        (
            {
                "forward_headers": ("Authorization",),
                "forward_overrides_auth": frozenset({"authorization"}),
                "auth": BearerAuth(token=Secret("own")),
            },
            (AUTHORIZATION,),
            {"Authorization": "Bearer client"},
            "Bearer own",
        ),
    ],
    ids=[
        "integration-headers",
        "forwarded-over-integration-headers",
        "header-param-over-forwarded",
        "auth-over-header-param",
        "auth-over-forwarded",
        "override_auth-forwarded-over-auth",
        "auth-when-the-client-sends-none",
        "header-param-replaces-an-override-then-auth-wins",
    ],
)
async def test_the_strongest_source_of_a_header_is_sent_once(
    upstream: Upstream, fields: dict[str, Any], params: tuple[Any, ...], incoming: dict[str, str], sent: str
) -> None:
    """Weakest first: integration headers, forwarded headers, header params, auth; a forwarded header
    marked override_auth beats auth unless a header param replaced it. One value goes out."""
    op = operation(params=params)
    given = {"Authorization": "Bearer param"} if params else {}
    await upstream.call(op, given, forwarded=incoming, **fields)
    assert upstream.only.header("authorization") == [sent]


async def test_a_header_param_wins_over_a_forwarded_header_of_the_same_name(upstream: Upstream) -> None:
    """The argument written into the operation is sent, not the client's header, whatever its case."""
    await upstream.call(
        operation(params=(TENANT,)),
        {"X-Tenant": "from-the-argument"},
        forwarded={"x-tenant": "from-the-client"},
        forward_headers=("X-Tenant",),
    )
    assert upstream.only.header("x-tenant") == ["from-the-argument"]


async def test_integration_headers_are_sent_with_secrets_revealed(upstream: Upstream) -> None:
    """Integration headers are sent; a Secret value goes out as its real value, not ***."""
    await upstream.call(headers={"X-Client": "aggregator", "X-Secret": Secret("s3cr3t")})
    assert (upstream.only.header("x-client"), upstream.only.header("x-secret")) == (
        ["aggregator"],
        ["s3cr3t"],
    )


async def test_only_listed_headers_and_the_request_id_are_forwarded(upstream: Upstream) -> None:
    """forward_headers names match in any case; X-Request-Id always goes; others never, Host least."""
    incoming = {"Authorization": "Bearer user", "x-request-id": "r-1", "Cookie": "c=1", "Host": "front.test"}
    await upstream.call(forwarded=incoming, forward_headers=("authorization",))
    received = upstream.only
    assert (received.header("authorization"), received.header("x-request-id")) == (["Bearer user"], ["r-1"])
    assert received.header("cookie") == []
    assert received.header("host") == [upstream.url.removeprefix("http://")]


@pytest.mark.parametrize(
    ("op", "headers", "attempts"),
    [
        (operation(method="GET"), {}, 2),
        (operation(method="POST"), {}, 1),
        (operation(method="POST", idempotent=True), {}, 2),
        (
            operation(method="POST", params=(param("Idempotency-Key", "String", "header"),)),
            {"Idempotency-Key": "k1"},
            2,
        ),
    ],
    ids=["GET", "POST", "idempotent-POST", "POST-with-Idempotency-Key"],
)
async def test_a_call_is_retried_after_sending_only_when_idempotent(
    upstream: Upstream, op: Operation, headers: dict[str, str], attempts: int
) -> None:
    """An answered 503 is retried for an idempotent operation or a request with an Idempotency-Key."""
    upstream.answers(503)
    module = IntegrationModule(clock=FakeClock())
    module.register(integration(upstream.base, op, retry=RetryPolicy(max_attempts=2)))
    async with module:
        with pytest.raises(UpstreamHTTPError):
            await module.call("users", op.id, headers)
    assert len(upstream.recorder.received) == attempts


# --- how answers come back ---------------------------------------------------------------------------


async def test_send_before_start_is_a_programming_error() -> None:
    """send() on an upstream that was never started raises RuntimeError, not an upstream error."""
    rest = RestUpstream(integration("http://127.0.0.1:9/api", GET_USER))
    with pytest.raises(RuntimeError, match="before start"):
        await rest.send(rest.prepare(GET_USER, {"id": "1"}))


async def test_stop_closes_the_pooled_connections(start_upstream: StartUpstream) -> None:
    """A kept-alive connection is closed by stop(): the upstream sees it end."""
    closed = asyncio.Event()

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                closed.set()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    async with serve_raw(keep_alive) as url:
        rest = await start_upstream(integration(url, GET_USER))
        assert await rest.send(rest.prepare(GET_USER, {"id": "1"})) == {}
        assert not closed.is_set()
        await rest.stop()
        async with asyncio.timeout(5):
            await closed.wait()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"id": "1"}', {"id": "1"}),
        (200, b"[1,2]", [1, 2]),
        (204, b"", None),
        (205, b"", None),
        (200, b"", None),
    ],
)
async def test_2xx_answers_are_decoded_json_or_none_when_empty(
    upstream: Upstream, status: int, body: bytes, expected: object
) -> None:
    """A 2xx body is parsed as JSON; an empty one, 204 or 205 gives None."""
    upstream.answers(status, body)
    assert await upstream.call() == expected


async def test_a_json_body_is_decoded_whatever_its_content_type(upstream: Upstream) -> None:
    """An upstream that labels JSON as text/html still gives the decoded value."""
    upstream.answers(200, b'{"id": "1"}', content_type="text/html")
    assert await upstream.call() == {"id": "1"}


@pytest.mark.parametrize(("status", "body"), [(204, b""), (200, b"")])
async def test_a_bodiless_success_of_a_boolean_operation_is_true(
    upstream: Upstream, status: int, body: bytes
) -> None:
    """An operation returning Boolean (an OpenAPI 204) answers true when the success has no body."""
    upstream.answers(status, body)
    assert await upstream.call(operation(method="DELETE", returns="Boolean"), {}) is True


async def test_head_answers_none(upstream: Upstream) -> None:
    """A HEAD request returns None whatever headers came back."""
    upstream.answers(200, b"", content_length="10")
    assert await upstream.call(operation(method="HEAD"), {}) is None
    assert upstream.only.method == "HEAD"


@pytest.mark.parametrize("returns", ["String", "ID", "JSON", "String!"])
async def test_non_json_text_is_returned_for_string_like_returns(upstream: Upstream, returns: str) -> None:
    """A non-JSON text/plain body is returned as text when the operation returns a string-like scalar."""
    upstream.answers(200, b"plain words", content_type="text/plain; charset=utf-8")
    assert await upstream.call(operation(returns=returns), {}) == "plain words"


@pytest.mark.parametrize(
    ("returns", "content_type"),
    [
        ("User", "text/plain"),
        ("[String]", "text/plain"),
        ("Int", "text/plain"),
        ("JSON", "application/json"),
        ("String", "application/problem+json"),
    ],
)
async def test_an_unparseable_body_is_a_bad_response(
    upstream: Upstream, returns: str, content_type: str
) -> None:
    """Non-JSON for an object/list/number return, or for a body declared JSON, is UPSTREAM_BAD_RESPONSE."""
    upstream.answers(200, b"{not json", content_type=content_type)
    with pytest.raises(UpstreamBadResponse, match="not valid JSON"):
        await upstream.call(operation(returns=returns), {})


async def test_a_body_that_does_not_decode_is_a_bad_response(upstream: Upstream) -> None:
    """A body that is not what its Content-Encoding says is UPSTREAM_BAD_RESPONSE."""
    upstream.answers(200, b"not gzip at all", content_type="application/json", content_encoding="gzip")
    error = await upstream.failure()
    assert isinstance(error, UpstreamBadResponse)


async def test_a_declared_oversize_body_is_refused_unread(start_upstream: StartUpstream) -> None:
    """A Content-Length over max_response_bytes is refused at once, without waiting for the body."""

    async def announce_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n")
        await reader.read()  # the body never comes

    async with serve_raw(announce_only) as url:
        rest = await start_upstream(integration(url, GET_USER, max_response_bytes=100))
        with pytest.raises(UpstreamBadResponse, match="response over 100 bytes"):
            await rest.send(rest.prepare(GET_USER, {"id": "1"}))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_to_another_origin_are_not_followed(upstream: Upstream, status: int) -> None:
    """A 3xx to another origin is an UPSTREAM_HTTP_ERROR with its status: credentials never travel there."""
    upstream.answers(status, b"", location="http://elsewhere.invalid/elsewhere")
    error = await upstream.failure(auth=BearerAuth(token=Secret("tkn")))
    assert isinstance(error, UpstreamHTTPError)
    assert (error.status, upstream.only.path) == (status, "/api/users/1")
    assert "not followed" in str(error)


async def test_the_error_excerpt_is_bounded_and_redacted(upstream: Upstream) -> None:
    """The error body is cut to EXCERPT_CHARS characters after the credentials were masked."""
    upstream.answers(500, b"token=tkn-secret " + b"x" * 5000, content_type="text/plain")
    error = await upstream.failure(auth=BearerAuth(token=Secret("tkn-secret")))
    assert isinstance(error, UpstreamHTTPError)
    assert error.body.startswith("token=*** x")
    assert len(error.body) == EXCERPT_CHARS


@pytest.mark.parametrize(("status", "retry_after"), [(503, 7.0), (500, None)])
async def test_retry_after_is_read_on_503_only(
    upstream: Upstream, status: int, retry_after: float | None
) -> None:
    """A 503's Retry-After is parsed onto the error; other statuses carry none."""
    upstream.answers(status, retry_after="7")
    error = await upstream.failure()
    assert (error.code, error.retry_after) == ("UPSTREAM_HTTP_ERROR", retry_after)


async def test_errors_name_the_integration_and_operation(upstream: Upstream) -> None:
    """Every error of send() says which integration and operation it belongs to."""
    upstream.answers(404)
    error = await upstream.failure()
    assert (error.integration, error.operation) == ("users", "getUser")
    assert str(error).startswith("users.getUser: upstream answered HTTP 404")


async def test_forwarded_credentials_are_redacted(upstream: Upstream) -> None:
    """A forwarded user token echoed back in an error body is masked like the gateway's own."""
    upstream.answers(401, b"bad Bearer user-token-1", content_type="text/plain")
    error = await upstream.failure(
        forwarded={"Authorization": "Bearer user-token-1"}, forward_headers=("Authorization",)
    )
    assert isinstance(error, UpstreamHTTPError)
    assert "user-token-1" not in error.body


# --- when the connection fails ----------------------------------------------------------------------


async def close_after_the_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)


async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"SMTP ready\r\n\r\n")
    await reader.read()


@pytest.mark.parametrize(
    ("handler", "kind", "sent"),
    [
        (close_after_the_request, UpstreamUnavailable, True),
        (answer_garbage, UpstreamUnavailable, True),
    ],
    ids=["closed-before-answering", "not-http"],
)
async def test_a_broken_exchange_after_sending_may_have_arrived(
    start_upstream: StartUpstream, handler: Any, kind: type[UpstreamError], sent: bool | None
) -> None:
    """A peer that hangs up, answers something other than HTTP or says nothing after reading the request:
    the error says the request may have been received (sent=True) or is a timeout."""
    op = operation(timeout=0.3)
    async with serve_raw(handler) as url:
        rest = await start_upstream(integration(url, op))
        with pytest.raises(UpstreamError) as caught:
            await rest.send(rest.prepare(op, {}))
    assert type(caught.value) is kind
    if sent is not None:
        assert isinstance(caught.value, UpstreamUnavailable)
        assert caught.value.sent is sent


async def test_a_header_that_cannot_be_written_is_unavailable_and_unsent(upstream: Upstream) -> None:
    """A configured header value with a line break cannot go on the wire: sent=False, nothing arrives."""
    error = await upstream.failure(headers={"X-Broken": "a\r\nb"})
    assert isinstance(error, UpstreamUnavailable)
    assert error.sent is False
    assert upstream.recorder.received == []


async def test_waiting_for_a_free_connection_too_long_is_unavailable_and_unsent(
    start_upstream: StartUpstream,
) -> None:
    """With max_concurrency connections busy, a call that finds none free in time was never sent."""
    op = operation(timeout=0.3)
    accepted = asyncio.Event()
    async with serve_raw(never_answer(accepted)) as url:
        rest = await start_upstream(integration(url, op, max_concurrency=1))
        busy = asyncio.create_task(rest.send(rest.prepare(op, {})))
        await accepted.wait()
        with pytest.raises(UpstreamUnavailable) as caught:
            await rest.send(rest.prepare(op, {}))
        with pytest.raises(UpstreamTimeout):
            await busy
    assert caught.value.sent is False


async def test_a_transport_error_is_not_chained_and_never_shows_a_query_key(
    start_upstream: StartUpstream,
) -> None:
    """The httpx exception (whose request holds the URL with its api key) is not attached to the error."""
    key = "k/ey+1"
    rest = await start_upstream(
        integration(
            closed_port_url(), GET_USER, auth=ApiKeyAuth(key=Secret(key), location="query", name="api_key")
        )
    )
    with pytest.raises(UpstreamUnavailable) as caught:
        await rest.send(rest.prepare(GET_USER, {"id": "1"}))
    error = caught.value
    for text in (str(error), repr(error)):
        assert key not in text
        assert "k%2Fey%2B1" not in text
    assert (error.__cause__, error.__suppress_context__) == (None, True)


# --- redact --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("key=abc&x=1", ["abc"], "key=***&x=1"),
        ("key=a%2Fb", ["a/b"], "key=***"),
        ("q=a+b", ["a b"], "q=***"),
        ("abcdef and abc", ["abc", "abcdef"], "*** and ***"),
        ("nothing", ["", "zzz"], "nothing"),
    ],
)
def test_redact_masks_raw_and_url_encoded_secrets(text: str, secrets: list[str], expected: str) -> None:
    """redact() masks each secret, also as it appears percent- or form-encoded, longest first."""
    assert redact(text, secrets) == expected
