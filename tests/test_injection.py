"""Injection through params: whatever a GraphQL client puts in an argument, the upstream request keeps its
host, its path shape and its headers. Asserted on what the upstream (a real loopback server) received.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest
from faults import FaultUpstream, Seen
from gateway import Gateway, serve_gateway

from aggregator.config import loads
from aggregator.errors import ConfigError, Problem

CONFIG = """
integrations:
  files:
    base_url: {url}/api/v1
    operations:
      getFile: {{path: "/files/{{name}}/raw", params: {{name: "String!"}}}}
      getInDir: {{path: "/dirs/{{dir}}/files/{{name}}", params: {{dir: "String!", name: "String!"}}}}
      search: {{path: /search, params: {{q: String, tag: "[String!]"}}}}
      traced: {{path: /traced, params: {{trace: {{type: String, in: header}}}}}}
"""
GET_FILE = "query($v: String!) { files_getFile(name: $v) }"

HOSTILE = [
    "a/b",
    "..",
    ".",
    "../../admin",
    "..%2F..%2Fadmin",
    "a?x=1",
    "a#fragment",
    "%2F",
    "%",
    "%00",
    "\u0000",
    "a\r\nX-Injected: 1",
    "a\nb",
    "//evil.example/x",
    "http://evil.example/",
    "@evil.example",
    ":8080",
    " spaced ",
    "ünï©ødé",
    "{name}",
    "a;b=c",
    "a\\b",
    "?",
    "#",
    "&",
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with FaultUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: FaultUpstream) -> Iterator[Gateway]:
    with serve_gateway(CONFIG.format(url=upstream.url)) as served:
        yield served


@pytest.fixture(autouse=True)
def fresh(upstream: FaultUpstream) -> None:
    upstream.clear()


def only_request(upstream: FaultUpstream) -> Seen:
    (seen,) = upstream.seen
    return seen


def upstream_host(upstream: FaultUpstream) -> str:
    return urlsplit(upstream.url).netloc


@pytest.mark.parametrize("value", HOSTILE)
def test_a_path_param_is_one_segment_on_the_same_host(
    value: str, gateway: Gateway, upstream: FaultUpstream
) -> None:
    """The value arrives percent-encoded as exactly the one segment it fills; host, path, query unchanged."""
    body = gateway.query(GET_FILE, {"v": value})
    assert "errors" not in body, body
    seen = only_request(upstream)
    assert seen.headers["host"] == upstream_host(upstream)
    segments = seen.path.split("/")
    assert segments[:4] == ["", "api", "v1", "files"], seen.path
    assert segments[5:] == ["raw"], seen.path
    assert unquote(segments[4]) == value
    assert seen.query == ()
    assert "x-injected" not in seen.headers


@pytest.mark.parametrize(("directory", "name"), [("../..", "etc/passwd"), ("a/b/c", ".."), ("%2e%2e", "%2f")])
def test_two_path_params_keep_the_segment_count(
    directory: str, name: str, gateway: Gateway, upstream: FaultUpstream
) -> None:
    """Several path params: each fills its own segment and no more."""
    body = gateway.query(
        "query($d: String!, $n: String!) { files_getInDir(dir: $d, name: $n) }", {"d": directory, "n": name}
    )
    assert "errors" not in body, body
    segments = only_request(upstream).path.split("/")
    assert len(segments) == len(["", "api", "v1", "dirs", "D", "files", "N"])
    assert (unquote(segments[4]), unquote(segments[6])) == (directory, name)


def test_an_empty_path_param_is_refused_and_nothing_is_sent(
    gateway: Gateway, upstream: FaultUpstream
) -> None:
    """An empty segment would change the path's shape (`/files//raw`): INVALID_PARAMS, no request."""
    body = gateway.query(GET_FILE, {"v": ""})
    assert body["errors"][0]["extensions"]["code"] == "INVALID_PARAMS"
    assert upstream.seen == []


def test_a_path_param_too_long_for_a_url_is_invalid_params(gateway: Gateway, upstream: FaultUpstream) -> None:
    """A value that makes the URL longer than HTTP clients accept is the caller's mistake, reported as
    INVALID_PARAMS (not an internal error without a code), and nothing is sent."""
    body = gateway.query(GET_FILE, {"v": "x" * 70_000})
    assert body["data"] == {"files_getFile": None}
    assert body["errors"][0]["extensions"]["code"] == "INVALID_PARAMS", body["errors"][0]
    assert upstream.seen == []


@pytest.mark.parametrize("value", ["a&admin=true", "x#y", "=", "a+b", "%26", "q\r\nX-Injected: 1"])
def test_a_query_param_stays_one_value(value: str, gateway: Gateway, upstream: FaultUpstream) -> None:
    """`&`, `=`, `#`, `+` and line breaks in a query value cannot add keys or cut the query."""
    body = gateway.query(
        "query($q: String, $t: [String!]) { files_search(q: $q, tag: $t) }", {"q": value, "t": [value]}
    )
    assert "errors" not in body, body
    seen = only_request(upstream)
    assert seen.query == (("q", value), ("tag", value))
    assert seen.path == "/api/v1/search"
    assert "x-injected" not in seen.headers


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rb", "a\u0000b"])
def test_a_header_param_with_a_line_break_is_refused_and_nothing_is_sent(
    value: str, gateway: Gateway, upstream: FaultUpstream
) -> None:
    """CR, LF or NUL in a header value would split the request: INVALID_PARAMS before anything is sent."""
    body = gateway.query("query($t: String) { files_traced(trace: $t) }", {"t": value})
    assert body["errors"][0]["extensions"]["code"] == "INVALID_PARAMS"
    assert upstream.seen == []


def test_a_plain_header_param_is_sent(gateway: Gateway, upstream: FaultUpstream) -> None:
    """The refusal above is about line breaks, not header params: a plain value arrives as is."""
    assert "errors" not in gateway.query('{ files_traced(trace: "abc-123") }')
    assert only_request(upstream).headers["trace"] == "abc-123"


HOST_PARAM = """
integrations:
  files:
    base_url: {url}
    operations:
      get: {{path: /x, params: {{Host: {{type: String, in: header}}}}}}
"""


def test_a_header_param_cannot_change_the_host_the_upstream_sees(upstream: FaultUpstream) -> None:
    """A header param named Host is refused by the config (either is fine), or its value never becomes
    the Host the upstream sees."""
    text = HOST_PARAM.format(url=upstream.url)
    problems = problems_of(text)
    if problems:
        assert any("Host" in problem.key for problem in problems), problems
    else:
        with serve_gateway(text) as gateway:
            gateway.query('{ files_get(Host: "evil.example") }')
        assert only_request(upstream).headers["host"] == upstream_host(upstream)


def problems_of(text: str) -> list[Problem]:
    try:
        loads(text)
    except ConfigError as refused:
        return list(refused.problems)
    return []


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://127.0.0.1/api",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "ws://127.0.0.1/socket",
        "javascript:alert(1)",
        "//127.0.0.1/api",
        "127.0.0.1:8080/api",
        "http:/127.0.0.1/api",
        "unix:///var/run/docker.sock",
    ],
)
def test_base_url_must_be_http_or_https(base_url: str) -> None:
    """The config refuses any base_url that is not an http:// or https:// URL with a host."""
    text = f"integrations:\n  files:\n    base_url: '{base_url}'\n    operations: {{get: {{path: /x}}}}\n"
    with pytest.raises(ConfigError) as refused:
        loads(text)
    assert any(problem.key == "integrations.files.base_url" for problem in refused.value.problems)


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:9/api", "https://api.example.com/v1", "HTTPS://API.example.com"]
)
def test_http_and_https_base_urls_are_accepted(base_url: str) -> None:
    """The two schemes a REST upstream speaks are accepted, in any case."""
    text = f"integrations:\n  files:\n    base_url: '{base_url}'\n    operations: {{get: {{path: /x}}}}\n"
    assert loads(text).integrations["files"].base_url
