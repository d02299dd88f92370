"""The fault matrix: every fault the fault upstream can act out, end to end through /graphql.

For each fault and each kind of call (GET; POST, never retried once sent; POST marked idempotent) one
test asserts the GraphQL error code and extensions, the attempts the upstream saw, the breaker's state
afterwards (through integrationStats), that a healthy integration in the same request still answers,
and that the gateway's event loop never lagged 100 ms or more while it all happened.

Policy under test: 300 ms per attempt, 3 attempts with 10/20 ms waits, a breaker that opens on 3
failures in its window, responses capped at 64 KiB.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from faults import FaultUpstream
from figures import report
from gateway import Gateway
from looplag import LoopLagWatch, serve_watched_gateway
from servers import closed_port_url, serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

CONFIG = """
types:
  Item: {{id: "ID!", name: String}}
integrations:
  faulty:
    base_url: {faulty}
    timeout: 300ms
    max_response_bytes: 65536
    retry: {{max_attempts: 3, initial_wait: 10ms, max_wait: 100ms, jitter: none, deadline: 5s}}
    circuit_breaker: {{threshold: 3, failure_rate: 0.5, window: 60s, reset_after: 30s}}
    operations:
      getItem:
        path: "/items/{{id}}"
        params: {{id: "ID!", fault: {{type: String, in: query}}}}
        returns: Item
      createItem: {{method: POST, path: /items, params: {{id: "ID!", name: String}}, returns: Item}}
      upsertItem:
        method: POST
        path: /items
        params: {{id: "ID!", name: String}}
        returns: Item
        idempotent: true
      listItems: {{path: /items, returns: "[Item!]"}}
  healthy:
    base_url: {healthy}
    operations:
      getItem: {{path: "/items/{{id}}", params: {{id: "ID!"}}, returns: Item}}
      createItem: {{method: POST, path: /items, params: {{id: "ID!", name: String}}, returns: Item}}
"""

Call = Literal["get", "post", "post_idempotent"]
Where = Literal["http", "socket", "closed"]

# Each call as a request that also asks a healthy integration for something, and the field it fails.
REQUESTS: dict[Call, tuple[str, str, str, str]] = {
    "get": (
        '{ faulty_getItem(id: "1") { id name } healthy_getItem(id: "2") { id name } }',
        "faulty_getItem",
        "getItem",
        "healthy_getItem",
    ),
    "post": (
        'mutation { faulty_createItem(id: "1", name: "a") { id name } '
        'healthy_createItem(id: "2") { id name } }',
        "faulty_createItem",
        "createItem",
        "healthy_createItem",
    ),
    "post_idempotent": (
        'mutation { faulty_upsertItem(id: "1", name: "a") { id name } '
        'healthy_createItem(id: "2") { id name } }',
        "faulty_upsertItem",
        "upsertItem",
        "healthy_createItem",
    ),
}
MAX_LAG = 0.1


@dataclass(frozen=True)
class Case:
    """One row: a fault (``None``: nothing listens), the call, and what must follow."""

    fault: str | None
    call: Call
    code: str | None  # None: the field resolves
    seen: int  # attempts the upstream received
    breaker: Literal["CLOSED", "OPEN"]
    where: Where = "http"
    options: dict[str, Any] = field(default_factory=dict)
    count: int | None = None  # the fault lasts this many requests (None: all)
    reported: int | None = None  # attempts in extensions when they differ from `seen`
    retry_after: tuple[float, float] | None = None  # the bounds retryAfter must lie in

    @property
    def status(self) -> int | None:
        """The upstream status the error carries: the injected one, or the redirect's."""
        if self.code is None:
            return None
        return {"status": self.options.get("code"), "redirect": 302}.get(self.fault or "")


UNAVAILABLE, TIMEOUT, HTTP_ERROR = "UPSTREAM_UNAVAILABLE", "UPSTREAM_TIMEOUT", "UPSTREAM_HTTP_ERROR"
BAD_RESPONSE, RATE_LIMITED = "UPSTREAM_BAD_RESPONSE", "RATE_LIMITED"


def row(id: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Case(*args, **kwargs), id=id)


# fmt: off
CASES = [
    # Connection refused: nothing was sent, so even a POST is retried; three failures open the breaker.
    row("refused-get", None, "get", UNAVAILABLE, 0, "OPEN", where="closed", reported=3),
    row("refused-post", None, "post", UNAVAILABLE, 0, "OPEN", where="closed", reported=3),
    # Accepted, never answered: a timeout; the POST may have been acted on, so it is not repeated.
    row("hang-get", "hang", "get", TIMEOUT, 3, "OPEN", where="socket"),
    row("hang-post", "hang", "post", TIMEOUT, 1, "CLOSED", where="socket"),
    row("hang-post-idempotent", "hang", "post_idempotent", TIMEOUT, 3, "OPEN", where="socket"),
    row("hang-after-http-get", "hang", "get", TIMEOUT, 3, "OPEN"),
    # Slow: an answer later than the attempt timeout is a timeout; one within it is fine.
    row("delay-over-timeout-get", "delay", "get", TIMEOUT, 3, "OPEN", options={"seconds": 1}),
    row("delay-over-timeout-post", "delay", "post", TIMEOUT, 1, "CLOSED", options={"seconds": 1}),
    row("delay-within-timeout-get", "delay", "get", None, 1, "CLOSED", options={"seconds": 0.1}),
    # A body that drips in: the attempt timeout bounds the body too.
    row("drip-get", "drip", "get", TIMEOUT, 3, "OPEN"),
    row("drip-post", "drip", "post", TIMEOUT, 1, "CLOSED"),
    # 5xx: retried for idempotent calls only.
    row("500-get", "status", "get", HTTP_ERROR, 3, "OPEN", options={"code": 500}),
    row("500-post", "status", "post", HTTP_ERROR, 1, "CLOSED", options={"code": 500}),
    row("500-post-idempotent", "status", "post_idempotent", HTTP_ERROR, 3, "OPEN", options={"code": 500}),
    row("502-get", "status", "get", HTTP_ERROR, 3, "OPEN", options={"code": 502}),
    row("502-post", "status", "post", HTTP_ERROR, 1, "CLOSED", options={"code": 502}),
    row("503-get", "status", "get", HTTP_ERROR, 3, "OPEN", options={"code": 503}),
    row("503-post", "status", "post", HTTP_ERROR, 1, "CLOSED", options={"code": 503}),
    # Retry-After longer than max_wait: stop at once and tell the client when to come back.
    row("503-retry-after-seconds-get", "status", "get", HTTP_ERROR, 1, "CLOSED",
        options={"code": 503, "retry_after": 7}, retry_after=(7, 7)),
    row("429-retry-after-seconds-get", "status", "get", RATE_LIMITED, 1, "CLOSED",
        options={"code": 429, "retry_after": 5}, retry_after=(5, 5)),
    row("429-retry-after-date-get", "status", "get", RATE_LIMITED, 1, "CLOSED",
        options={"code": 429, "retry_after_date": 30}, retry_after=(25, 31)),
    row("429-retry-after-date-post", "status", "post", RATE_LIMITED, 1, "CLOSED",
        options={"code": 429, "retry_after_date": 30}, retry_after=(25, 31)),
    # A 429 says "overloaded", not "broken": retried when it may be, never counted against the breaker.
    row("429-retry-after-zero-get", "status", "get", RATE_LIMITED, 3, "CLOSED",
        options={"code": 429, "retry_after": 0}, retry_after=(0, 0)),
    row("429-retry-after-zero-post", "status", "post", RATE_LIMITED, 1, "CLOSED",
        options={"code": 429, "retry_after": 0}, retry_after=(0, 0)),
    # The connection reset halfway through the body.
    row("reset-get", "reset", "get", UNAVAILABLE, 3, "OPEN", where="socket"),
    row("reset-post", "reset", "post", UNAVAILABLE, 1, "CLOSED", where="socket"),
    row("reset-post-idempotent", "reset", "post_idempotent", UNAVAILABLE, 3, "OPEN", where="socket"),
    # Transient faults: one bad answer, then a good one.
    row("reset-once-get", "reset", "get", None, 2, "CLOSED", where="socket", count=1),
    row("reset-once-post", "reset", "post", UNAVAILABLE, 1, "CLOSED", where="socket", count=1),
    row("503-once-get", "status", "get", None, 2, "CLOSED", options={"code": 503}, count=1),
    row("503-once-post", "status", "post", HTTP_ERROR, 1, "CLOSED", options={"code": 503}, count=1),
    # Unusable 200s: counted as failures, never retried (the upstream did answer).
    row("malformed-json-get", "malformed_json", "get", BAD_RESPONSE, 1, "CLOSED"),
    row("malformed-json-post", "malformed_json", "post", BAD_RESPONSE, 1, "CLOSED"),
    row("wrong-content-type-get", "wrong_content_type", "get", BAD_RESPONSE, 1, "CLOSED"),
    row("wrong-content-type-post", "wrong_content_type", "post", BAD_RESPONSE, 1, "CLOSED"),
    row("oversize-declared-get", "oversize", "get", BAD_RESPONSE, 1, "CLOSED"),
    row("oversize-streamed-get", "oversize", "get", BAD_RESPONSE, 1, "CLOSED",
        options={"declared": "false"}),
    row("oversize-streamed-post", "oversize", "post", BAD_RESPONSE, 1, "CLOSED",
        options={"declared": "false"}),
    # An empty 200 is "no value": the field is null without an error (rest.py's documented rule).
    row("empty-body-get", "empty_body", "get", None, 1, "CLOSED"),
    row("empty-body-post", "empty_body", "post", None, 1, "CLOSED"),
    # A redirect is not followed (credentials stay home): an error carrying the 302, upstream healthy.
    row("redirect-get", "redirect", "get", HTTP_ERROR, 1, "CLOSED"),
    row("redirect-post", "redirect", "post", HTTP_ERROR, 1, "CLOSED"),
]
# fmt: on


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultUpstream]:
    with FaultUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def healthy() -> Iterator[FaultUpstream]:
    with FaultUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module", autouse=True)
def matrix_figure(pytestconfig: pytest.Config) -> Iterator[list[str]]:
    passed: list[str] = []
    yield passed
    faults = {case.split("-")[0] for case in passed}
    report(pytestconfig, f"fault matrix: {len(passed)} cases passed, {len(faults)} kinds of fault")


@pytest.fixture(autouse=True)
def fresh_upstreams(faulty: FaultUpstream, healthy: FaultUpstream) -> None:
    faulty.clear()
    healthy.clear()


@pytest.fixture
def serve(faulty: FaultUpstream, healthy: FaultUpstream) -> Iterator[Any]:
    """``serve(where)``: a fresh gateway (fresh breakers) whose faulty integration points at ``where``."""
    stack: list[Any] = []

    def start(where: Where) -> tuple[Gateway, LoopLagWatch]:
        base = {"http": faulty.url, "socket": faulty.socket_url, "closed": closed_port_url()}[where]
        served = serve_watched_gateway(CONFIG.format(faulty=base, healthy=healthy.url))
        stack.append(served)
        gateway, watch = served.__enter__()
        gateway.query("{ __typename }")  # warm up: first-use imports are not what is measured
        watch.reset()
        return gateway, watch

    yield start
    for served in reversed(stack):
        served.__exit__(None, None, None)


def breaker_states(gateway: Gateway) -> dict[str, str]:
    body = gateway.query("{ integrationStats { integrationId circuitState } }")
    return {s["integrationId"]: s["circuitState"] for s in body["data"]["integrationStats"]}


@pytest.mark.parametrize("case", CASES)
def test_fault(
    case: Case,
    serve: Any,
    faulty: FaultUpstream,
    healthy: FaultUpstream,
    matrix_figure: list[str],
    request: pytest.FixtureRequest,
) -> None:
    """The fault gives its code and extensions, the retries it deserves, the breaker state it deserves;
    the healthy sibling answers; the loop never blocks."""
    gateway, watch = serve(case.where)
    options = dict(case.options)
    if case.fault == "redirect":
        options["location"] = healthy.url.replace("127.0.0.1", "localhost") + "/stolen"
    if case.fault is not None:
        faulty.set_mode(case.fault, count=case.count, **options)
    query, field_name, operation, sibling = REQUESTS[case.call]

    body = gateway.query(query)

    assert body["data"][sibling]["id"] == "2", body
    if case.code is None:
        assert "errors" not in body, body
        if case.fault != "empty_body":
            assert body["data"][field_name] == {"id": "1", "name": "item 1"}
    else:
        assert body["data"][field_name] is None
        (error,) = body["errors"]
        assert error["path"] == [field_name]
        expected = {
            "code": case.code,
            "integration": "faulty",
            "operation": operation,
            "attempts": case.seen if case.reported is None else case.reported,
        }
        if case.status is not None:
            expected["status"] = case.status
        if case.status is not None and 400 <= case.status < 500:
            expected["upstreamBody"] = {"error": "injected fault"}  # a 4xx body is shown to the client
        extensions = dict(error["extensions"])
        if case.retry_after is not None:
            low, high = case.retry_after
            assert low <= extensions.pop("retryAfter") <= high
        assert extensions == expected
    assert len(faulty.seen) == case.seen
    assert all(seen.path.startswith("/items") for seen in healthy.seen)  # no redirect was followed
    assert breaker_states(gateway) == {"faulty": case.breaker, "healthy": "CLOSED"}
    assert watch.samples > 0
    assert watch.max_blocked < MAX_LAG, watch.describe()
    matrix_figure.append(request.node.callspec.id)


def test_a_fault_chosen_per_request_fails_only_that_field(serve: Any, faulty: FaultUpstream) -> None:
    """``?fault=`` picks the fault per request: the same operation fails in one alias and not the other."""
    gateway, watch = serve("http")
    body = gateway.query(
        '{ bad: faulty_getItem(id: "1", fault: "malformed_json") { id } '
        'good: faulty_getItem(id: "2") { id } }'
    )
    assert body["data"] == {"bad": None, "good": {"id": "2"}}
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"
    assert sorted(seen.fault for seen in faulty.seen) == ["malformed_json", "ok"]
    assert watch.max_blocked < MAX_LAG, watch.describe()


def test_an_answer_of_the_wrong_shape_is_a_bad_response(serve: Any, faulty: FaultUpstream) -> None:
    """An object where the operation declares a list cannot be used: UPSTREAM_BAD_RESPONSE naming the
    integration and operation, like any other unusable answer (not a bare GraphQL error)."""
    gateway, watch = serve("http")
    body = gateway.query('{ faulty_listItems { id } healthy_getItem(id: "2") { id } }')
    assert body["data"] == {"faulty_listItems": None, "healthy_getItem": {"id": "2"}}
    (error,) = body["errors"]
    extensions = error.get("extensions", {})
    assert extensions.get("code") == "UPSTREAM_BAD_RESPONSE", error
    assert (extensions.get("integration"), extensions.get("operation")) == ("faulty", "listItems")
    assert watch.max_blocked < MAX_LAG, watch.describe()


def test_an_open_breaker_refuses_without_sending(serve: Any, faulty: FaultUpstream) -> None:
    """Once the fault opened the breaker, the next call is CIRCUIT_OPEN and reaches nobody."""
    gateway, watch = serve("http")
    faulty.set_mode("status", code=500)
    gateway.query('{ faulty_getItem(id: "1") { id } }')
    sent = len(faulty.seen)
    body = gateway.query('{ faulty_getItem(id: "1") { id } healthy_getItem(id: "2") { id } }')
    assert body["data"] == {"faulty_getItem": None, "healthy_getItem": {"id": "2"}}
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "CIRCUIT_OPEN"
    assert extensions["attempts"] == 0  # attempts made: none
    assert 0 < extensions["retryAfter"] <= 30
    assert len(faulty.seen) == sent == 3
    assert watch.max_blocked < MAX_LAG, watch.describe()


def test_the_loop_watch_sees_a_handler_that_blocks_the_loop() -> None:
    """The instrument itself: a handler that sleeps synchronously shows up as a blocked loop."""

    async def blocking(_: Request) -> Response:
        time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point
        return PlainTextResponse("slept")

    watch = LoopLagWatch(Starlette(routes=[Route("/", blocking)]))
    with serve_asgi(watch, lifespan="on") as url:
        assert httpx.get(url).text == "slept"
        time.sleep(0.05)  # let the sleeper wake up late and note it
    assert watch.max_blocked >= 0.25, watch.describe()
