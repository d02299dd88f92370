"""RestUpstream in isolation: how params are placed (prepare) and how answers and failures become
values or errors (send over httpx.MockTransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from builders import integration, operation, param
from conftest import StartUpstream

from aggregator.config.models import ApiKeyAuth, BearerAuth, Operation, Secret
from aggregator.errors import (
    InvalidParams,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.testing import FakeClock
from aggregator.upstreams.http import EXCERPT_CHARS, redact
from aggregator.upstreams.rest import RestUpstream

BASE = "http://upstream.test/api"
GET_USER = operation(
    "getUser",
    path="/users/{id}",
    params=(param("id", "ID!", "path"), param("expand", "Boolean"), param("tags", "[String]")),
)
CREATE_USER = operation("createUser", method="POST", path="/users", params=(param("input", "JSON!", "body"),))


def prepared(op: Operation, params: dict[str, Any], **fields: Any) -> Any:
    return RestUpstream(integration(BASE, op, **fields)).prepare(op, params)


# --- prepare: validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"id": "1", "nickname": "x"}, "unknown param(s) nickname"),
        ({"expand": True}, "missing required param(s) id"),
        ({"id": None}, "missing required param(s) id"),
    ],
)
def test_unknown_or_missing_params_are_invalid(params: dict[str, Any], words: str) -> None:
    """An unknown name or an absent/null required param is INVALID_PARAMS, naming the param."""
    with pytest.raises(InvalidParams, match=words.replace("(", r"\(").replace(")", r"\)")) as caught:
        prepared(GET_USER, params)
    assert caught.value.code == "INVALID_PARAMS"


# --- prepare: path ---------------------------------------------------------------------------------


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
def test_path_values_are_one_percent_encoded_segment(value: object, segment: str) -> None:
    """A path value cannot add segments, a query, a fragment, a dot segment or a host."""
    assert prepared(GET_USER, {"id": value}).url == f"{BASE}/users/{segment}"


def test_empty_path_value_is_invalid() -> None:
    """An empty path value would turn /users/{id} into /users/: refused."""
    with pytest.raises(InvalidParams, match="must not be empty"):
        prepared(GET_USER, {"id": ""})


@pytest.mark.parametrize("base", ["http://h/api", "http://h/api/"])
@pytest.mark.parametrize(
    ("path", "expected"), [("/users", "/api/users"), ("users", "/api/users"), ("", "/api")]
)
def test_base_url_and_path_join_with_one_slash(base: str, path: str, expected: str) -> None:
    """base_url's path and the operation's path are joined without doubled or missing slashes."""
    op = operation(path=path)
    request = RestUpstream(integration(base, op)).prepare(op, {})
    assert request.url.rstrip("/") == f"http://h{expected}"


def test_query_in_base_url_is_kept() -> None:
    """A query string in base_url (e.g. an API version) is sent along with the params."""
    op = operation(params=(param("q"),))
    request = RestUpstream(integration("http://h/api?version=2", op)).prepare(op, {"q": "x"})
    assert (request.url, request.params) == ("http://h/api", [("version", "2"), ("q", "x")])


# --- prepare: query, headers, body ------------------------------------------------------------------


def test_query_values_follow_the_contract() -> None:
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
    request = prepared(
        op, {"flag": True, "off": False, "tag": ["a", None, "b"], "n": 3, "gone": None, "f": 1.5}
    )
    assert request.params == [
        ("flag", "true"),
        ("off", "false"),
        ("tag", "a"),
        ("tag", "b"),
        ("n", "3"),
        ("f", "1.5"),
    ]


def test_header_params_are_sent_as_headers() -> None:
    """An `in: header` param becomes a header of that name."""
    op = operation(params=(param("X-Tenant", "String!", "header"),))
    assert prepared(op, {"X-Tenant": "acme"}).headers["X-Tenant"] == "acme"


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b"])
def test_header_param_with_line_break_is_invalid(value: str) -> None:
    """A header value with CR, LF or NUL could smuggle headers: INVALID_PARAMS."""
    op = operation(params=(param("X-Tenant", "String!", "header"),))
    with pytest.raises(InvalidParams, match="line break"):
        prepared(op, {"X-Tenant": value})


@pytest.mark.parametrize("document", [{"name": "Ada", "tags": ["x"]}, [1, 2], "text", 7])
def test_one_json_body_param_is_the_whole_body(document: object) -> None:
    """A single `in: body` param of type JSON is sent as the entire JSON body."""
    request = prepared(CREATE_USER, {"input": document})
    assert (request.body, request.headers["Content-Type"]) == (orjson.dumps(document), "application/json")


def test_several_body_params_form_an_object_without_nulls() -> None:
    """Several body params (or one that is not JSON-typed) form one JSON object; nulls are left out."""
    op = operation(method="POST", params=(param("name", "String!", "body"), param("age", "Int", "body")))
    assert prepared(op, {"name": "Ada"}).body == b'{"name":"Ada"}'
    single = operation(method="POST", params=(param("name", "String!", "body"),))
    assert prepared(single, {"name": "Ada"}).body == b'{"name":"Ada"}'


def test_absent_optional_json_body_sends_no_body() -> None:
    """An optional whole-body param that is absent means no body and no Content-Type."""
    op = operation(method="POST", params=(param("input", "JSON", "body"),))
    request = prepared(op, {})
    assert (request.body, "Content-Type" in request.headers) == (None, False)


def test_body_that_is_not_json_encodable_is_invalid() -> None:
    """A body value orjson cannot encode is the caller's error, not an upstream failure."""
    with pytest.raises(InvalidParams, match="JSON"):
        prepared(CREATE_USER, {"input": {"when": object()}})


@pytest.mark.parametrize(
    ("op", "headers", "idempotent"),
    [
        (operation(method="GET"), {}, True),
        (operation(method="POST"), {}, False),
        (operation(method="POST", idempotent=True), {}, True),
        (
            operation(method="POST", params=(param("Idempotency-Key", "String", "header"),)),
            {"Idempotency-Key": "k1"},
            True,
        ),
    ],
)
def test_idempotency_comes_from_the_operation_or_an_idempotency_key(
    op: Operation, headers: dict[str, str], idempotent: bool
) -> None:
    """A request is idempotent if its operation is, or it carries an Idempotency-Key header."""
    assert prepared(op, headers).idempotent is idempotent


def test_integration_headers_are_sent_and_secrets_revealed() -> None:
    """Integration headers are copied; a Secret value goes out as its real value, not ***."""
    op = operation()
    request = prepared(op, {}, headers={"X-Client": "aggregator", "X-Secret": Secret("s3cr3t")})
    assert (request.headers["X-Client"], request.headers["X-Secret"]) == ("aggregator", "s3cr3t")


def test_only_listed_headers_and_the_request_id_are_forwarded() -> None:
    """forward_headers names are matched case-insensitively; X-Request-Id always goes; others never."""
    op = operation()
    upstream = RestUpstream(integration(BASE, op, forward_headers=("authorization",)))
    incoming = {"Authorization": "Bearer user", "x-request-id": "r-1", "Cookie": "c=1", "Host": "front.test"}
    request = upstream.prepare(op, {}, forwarded_headers=incoming)
    assert request.headers == {"Authorization": "Bearer user", "x-request-id": "r-1"}
    assert request.forwarded == {"authorization", "x-request-id"}


# --- send: over a MockTransport --------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


async def send_via(
    start_upstream: StartUpstream,
    handler: Handler,
    op: Operation = GET_USER,
    params: dict[str, Any] | None = None,
    *,
    forwarded: dict[str, str] | None = None,
    **fields: Any,
) -> Any:
    upstream = await start_upstream(
        integration(BASE, op, **fields), transport=httpx.MockTransport(handler), clock=FakeClock()
    )
    request = upstream.prepare(op, {"id": "1"} if params is None else params, forwarded_headers=forwarded)
    return await upstream.send(request)


def answer(status: int = 200, **kwargs: Any) -> Handler:
    return lambda request: httpx.Response(status, **kwargs)


async def failure_of(start_upstream: StartUpstream, handler: Handler, **kwargs: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await send_via(start_upstream, handler, **kwargs)
    return caught.value


async def test_send_before_start_is_a_programming_error() -> None:
    """send() on an upstream that was never started raises RuntimeError, not an upstream error."""
    upstream = RestUpstream(integration(BASE, GET_USER))
    with pytest.raises(RuntimeError, match="before start"):
        await upstream.send(upstream.prepare(GET_USER, {"id": "1"}))


async def test_stop_closes_the_transport(start_upstream: StartUpstream) -> None:
    """stop() closes the shared client and so its transport."""
    closed: list[bool] = []

    class Transport(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    upstream = await start_upstream(integration(BASE, GET_USER), transport=Transport(answer(200)))
    await upstream.stop()
    assert closed == [True]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(200, json={"id": "1"}), {"id": "1"}),
        (httpx.Response(200, content=b"[1,2]"), [1, 2]),
        (httpx.Response(204), None),
        (httpx.Response(205), None),
        (httpx.Response(200, content=b""), None),
    ],
)
async def test_2xx_answers_are_decoded_json_or_none_when_empty(
    start_upstream: StartUpstream, response: httpx.Response, expected: object
) -> None:
    """A 2xx body is parsed as JSON (whatever the content type); an empty one or 204/205 is None."""
    assert await send_via(start_upstream, lambda _: response) == expected


async def test_head_answers_none(start_upstream: StartUpstream) -> None:
    """A HEAD request returns None whatever headers came back."""
    op = operation(method="HEAD")
    assert await send_via(start_upstream, answer(200, headers={"Content-Length": "10"}), op, {}) is None


@pytest.mark.parametrize("returns", ["String", "ID", "JSON", "String!"])
async def test_non_json_text_is_returned_for_string_like_returns(
    start_upstream: StartUpstream, returns: str
) -> None:
    """A non-JSON text/plain body is returned as text when the operation returns a string-like scalar."""
    op = operation(returns=returns)
    handler = answer(200, text="plain words", headers={"Content-Type": "text/plain; charset=utf-8"})
    assert await send_via(start_upstream, handler, op, {}) == "plain words"


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
async def test_unparseable_body_is_a_bad_response(
    start_upstream: StartUpstream, returns: str, content_type: str
) -> None:
    """Non-JSON for an object/list/number return, or for a body declared JSON, is UPSTREAM_BAD_RESPONSE."""
    op = operation(returns=returns)
    handler = answer(200, content=b"{not json", headers={"Content-Type": content_type})
    with pytest.raises(UpstreamBadResponse, match="not valid JSON"):
        await send_via(start_upstream, handler, op, {})


class Unreadable(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover - makes this an async generator


async def test_declared_oversize_body_is_refused_unread(start_upstream: StartUpstream) -> None:
    """A Content-Length over max_response_bytes is refused before a byte of the body is read."""
    response = httpx.Response(200, headers={"Content-Length": "101"}, stream=Unreadable())
    with pytest.raises(UpstreamBadResponse, match="response over 100 bytes"):
        await send_via(start_upstream, lambda _: response, max_response_bytes=100)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(start_upstream: StartUpstream, status: int) -> None:
    """A 3xx is an UPSTREAM_HTTP_ERROR with its status: credentials never travel to the Location."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.host))
        return httpx.Response(status, headers={"Location": "http://elsewhere.test/"})

    error = await failure_of(start_upstream, handler, auth=BearerAuth(token=Secret("tkn")))
    assert isinstance(error, UpstreamHTTPError)
    assert (error.status, seen) == (status, ["upstream.test"])
    assert "not followed" in str(error)


async def test_error_excerpt_is_bounded_and_redacted(start_upstream: StartUpstream) -> None:
    """The error body is cut to EXCERPT_CHARS characters after the credentials were masked."""
    body = "token=tkn-secret " + "x" * 5000
    error = await failure_of(
        start_upstream, answer(500, text=body), auth=BearerAuth(token=Secret("tkn-secret"))
    )
    assert isinstance(error, UpstreamHTTPError)
    assert error.body.startswith("token=*** x")
    assert len(error.body) == EXCERPT_CHARS


@pytest.mark.parametrize(("status", "retry_after"), [(503, 7.0), (500, None)])
async def test_retry_after_is_read_on_503(
    start_upstream: StartUpstream, status: int, retry_after: float | None
) -> None:
    """A 503's Retry-After is parsed onto the error; other statuses carry none."""
    error = await failure_of(start_upstream, answer(status, headers={"Retry-After": "7"}))
    assert (error.code, error.retry_after) == ("UPSTREAM_HTTP_ERROR", retry_after)


async def test_errors_name_integration_and_operation(start_upstream: StartUpstream) -> None:
    """Every error of send() says which integration and operation it belongs to."""
    error = await failure_of(start_upstream, answer(404))
    assert (error.integration, error.operation) == ("users", "getUser")
    assert str(error).startswith("users.getUser: upstream answered HTTP 404")


def raising(error: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


@pytest.mark.parametrize(
    ("exception", "kind", "sent"),
    [
        (httpx.ConnectError("refused"), UpstreamUnavailable, False),
        (httpx.ConnectTimeout("slow connect"), UpstreamUnavailable, False),
        (httpx.PoolTimeout("pool full"), UpstreamUnavailable, False),
        (httpx.LocalProtocolError("bad request line"), UpstreamUnavailable, False),
        (httpx.WriteError("broken pipe"), UpstreamUnavailable, True),
        (httpx.ReadError("reset"), UpstreamUnavailable, True),
        (httpx.RemoteProtocolError("server disconnected"), UpstreamUnavailable, True),
        (httpx.ReadTimeout("slow read"), UpstreamTimeout, None),
        (httpx.WriteTimeout("slow write"), UpstreamTimeout, None),
        (httpx.DecodingError("bad gzip"), UpstreamBadResponse, None),
    ],
)
async def test_transport_failures_map_to_upstream_errors(
    start_upstream: StartUpstream, exception: Exception, kind: type[UpstreamError], sent: bool | None
) -> None:
    """Failures before the request left are sent=False; anything after it may have been received."""
    error = await failure_of(start_upstream, raising(exception))
    assert type(error) is kind
    if sent is not None:
        assert isinstance(error, UpstreamUnavailable)
        assert error.sent is sent


async def test_transport_error_text_is_redacted_and_not_chained(start_upstream: StartUpstream) -> None:
    """An httpx error quoting the URL cannot leak a query api key, raw or percent-encoded."""
    key = "k/ey+1"

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}")

    error = await failure_of(
        start_upstream, handler, auth=ApiKeyAuth(key=Secret(key), location="query", name="api_key")
    )
    assert "api_key=***" in str(error)
    assert "k%2Fey%2B1" not in str(error)
    assert key not in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


async def test_auth_beats_integration_headers_and_header_params(start_upstream: StartUpstream) -> None:
    """The integration's auth overrides an Authorization set by integration headers or a header param."""
    op = operation(params=(param("Authorization", "String", "header"),))
    handler: Handler = lambda request: httpx.Response(200, json=request.headers["authorization"])  # noqa: E731
    sent = await send_via(
        start_upstream,
        handler,
        op,
        {"Authorization": "Bearer caller"},
        auth=BearerAuth(token=Secret("configured")),
        headers={"authorization": "Bearer static"},
    )
    assert sent == "Bearer configured"


@pytest.mark.parametrize(
    ("incoming", "overrides", "expected"),
    [
        ({"Authorization": "Bearer user"}, frozenset({"authorization"}), "Bearer user"),
        ({"Authorization": "Bearer user"}, frozenset(), "Bearer own"),
        ({}, frozenset({"authorization"}), "Bearer own"),
    ],
)
async def test_auth_wins_over_a_forwarded_header_unless_it_overrides_auth(
    start_upstream: StartUpstream, incoming: dict[str, str], overrides: frozenset[str], expected: str
) -> None:
    """The integration's auth wins over a forwarded header of the same name, unless forward_headers
    marks it override_auth; without an incoming value, auth applies either way."""
    handler: Handler = lambda request: httpx.Response(200, json=request.headers.get_list("authorization"))  # noqa: E731
    sent = await send_via(
        start_upstream,
        handler,
        operation(),
        {},
        forwarded=incoming,
        auth=BearerAuth(token=Secret("own")),
        forward_headers=("Authorization",),
        forward_overrides_auth=overrides,
    )
    assert sent == [expected]


async def test_forwarded_credentials_are_redacted(start_upstream: StartUpstream) -> None:
    """A forwarded user token echoed back in an error body is masked like our own credentials."""
    error = await failure_of(
        start_upstream,
        lambda request: httpx.Response(401, text=f"bad {request.headers['authorization']}"),
        forwarded={"Authorization": "Bearer user-token-1"},
        forward_headers=("Authorization",),
    )
    assert isinstance(error, UpstreamHTTPError)
    assert "user-token-1" not in error.body


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
