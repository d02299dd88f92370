"""Upstream auth, end to end against real loopback servers: the credentials each auth type puts on
the wire, and OAuth2 client credentials (fetch, cache, share, expire, refresh on 401, fail fast)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from builders import integration, operation
from conftest import StartUpstream
from servers import closed_port_url, serve_asgi
from upstream_apps import OAuthServer, TokenMode

from aggregator.config.models import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    NoAuth,
    OAuth2Auth,
    Secret,
    TlsFiles,
)
from aggregator.errors import UpstreamAuthError, UpstreamError, UpstreamHTTPError
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.testing import FakeClock
from aggregator.upstreams.auth import OAuth2Authenticator, build_authenticator
from aggregator.upstreams.rest import RestUpstream

CLIENT_SECRET = "cl!ent-secret/1"
API = operation("me", path="/me")


def oauth2(server: OAuthServer | str, **fields: Any) -> OAuth2Auth:
    base = server.url if isinstance(server, OAuthServer) else server
    values: dict[str, Any] = {
        "token_url": f"{base}/token",
        "client_id": "app 1",
        "client_secret": Secret(CLIENT_SECRET),
    }
    return OAuth2Auth(**(values | fields))


async def oauth_upstream(
    start_upstream: StartUpstream, server: OAuthServer, *, clock: Clock = SYSTEM_CLOCK, **fields: Any
) -> RestUpstream:
    return await start_upstream(
        integration(f"{server.url}/api", API, auth=oauth2(server), **fields), clock=clock
    )


async def call(upstream: RestUpstream, forwarded: dict[str, str] | None = None) -> Any:
    return await upstream.send(upstream.prepare(API, {}, forwarded_headers=forwarded))


async def auth_failure(upstream: RestUpstream) -> UpstreamAuthError:
    with pytest.raises(UpstreamAuthError) as caught:
        await call(upstream)
    return caught.value


def assert_no_secret(error: UpstreamError) -> None:
    for text in (str(error), repr(error), str(error.extensions), str(error.args)):
        assert CLIENT_SECRET not in text
        assert "tok-" not in text


# --- static credentials as the upstream receives them -------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "headers", "query"),
    [
        (NoAuth(), {}, []),
        (BearerAuth(token=Secret("t0ken")), {"authorization": "Bearer t0ken"}, []),
        (ApiKeyAuth(key=Secret("k3y")), {"x-api-key": "k3y"}, []),
        (ApiKeyAuth(key=Secret("k3y"), header="X-Custom-Key"), {"x-custom-key": "k3y"}, []),
        (ApiKeyAuth(key=Secret("k3y"), location="query", name="apikey"), {}, [["apikey", "k3y"]]),
        (ApiKeyAuth(key=Secret("k3y;x"), location="cookie", name="sid"), {"cookie": "sid=k3y%3Bx"}, []),
        (
            BasicAuth(username="ada", password=Secret("open sesame")),
            {"authorization": "Basic YWRhOm9wZW4gc2VzYW1l"},
            [],
        ),
    ],
    ids=["none", "bearer", "api_key", "api_key-custom-header", "api_key-query", "api_key-cookie", "basic"],
)
async def test_static_credentials_arrive_as_configured(
    start_upstream: StartUpstream, behaviour_url: str, auth: Auth, headers: dict[str, str], query: list[Any]
) -> None:
    """Each static auth type puts exactly its header (a cookie, a query pair) on the request, nothing else."""
    upstream = await start_upstream(integration(f"{behaviour_url}/echo", API, auth=auth))
    seen = await call(upstream)
    credential_headers = {"authorization", "x-api-key", "x-custom-key", "cookie"}
    assert {k: v for k, v in seen["headers"] if k in credential_headers} == headers
    assert seen["query"] == query


async def test_static_credentials_are_not_retried_on_401(
    start_upstream: StartUpstream, oauth_server: OAuthServer
) -> None:
    """A 401 to fixed credentials is final: one request, UPSTREAM_HTTP_ERROR 401."""
    upstream = await start_upstream(
        integration(f"{oauth_server.url}/api", API, auth=BearerAuth(token=Secret("x")))
    )
    with pytest.raises(UpstreamHTTPError) as caught:
        await call(upstream)
    assert (caught.value.status, oauth_server.api_calls) == (401, 1)


# --- oauth2: the token request -----------------------------------------------------------------------


async def test_oauth2_token_arrives_as_bearer(
    start_upstream: StartUpstream, oauth_server: OAuthServer
) -> None:
    """The upstream receives the fetched access token as `Authorization: Bearer <token>`."""
    upstream = await oauth_upstream(start_upstream, oauth_server)
    assert (await call(upstream))["authorization"] == "Bearer tok-1"


@pytest.mark.parametrize(
    ("client_auth", "authorization", "form"),
    [
        (
            "basic",
            # base64("app%201:cl%21ent-secret%2F1"): id and secret form-encoded first (RFC 6749 2.3.1)
            "Basic YXBwJTIwMTpjbCUyMWVudC1zZWNyZXQlMkYx",
            {"grant_type": "client_credentials", "scope": "read write"},
        ),
        (
            "body",
            None,
            {
                "grant_type": "client_credentials",
                "scope": "read write",
                "client_id": "app 1",
                "client_secret": CLIENT_SECRET,
            },
        ),
    ],
)
async def test_token_request_is_form_encoded_client_credentials(
    oauth_server: OAuthServer, client_auth: str, authorization: str | None, form: dict[str, str]
) -> None:
    """The token request is a form POST of grant_type and space-joined scopes; the client authenticates
    with HTTP Basic or in the form, as client_auth says."""
    auth = build_authenticator(
        oauth2(oauth_server, scopes=("read", "write"), client_auth=client_auth),
        client_factory=httpx.AsyncClient,
    )
    try:
        await auth.apply({}, [])
    finally:
        await auth.aclose()
    assert oauth_server.token_requests == [{"form": form, "authorization": authorization}]


@pytest.fixture
def https_token_endpoint(tmp_path: Path) -> Iterator[tuple[OAuthServer, str, Path]]:
    """A token endpoint over https with a certificate of the tests' own authority; its API over http.

    Yields the server (its ``url`` the https one), the http URL of its API and the authority's file.
    """
    authority = trustme.CA()
    authority.cert_pem.write_to_path(tmp_path / "ca.pem")
    issued = authority.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    issued.private_key_pem.write_to_path(tmp_path / "key.pem")
    server = OAuthServer()
    tls = (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    with serve_asgi(server.app, tls=tls) as https_url, serve_asgi(server.app) as http_url:
        server.url = https_url
        yield server, http_url, tmp_path / "ca.pem"


async def test_a_token_endpoint_behind_a_private_authority_is_trusted_through_tls(
    https_token_endpoint: tuple[OAuthServer, str, Path], start_upstream: StartUpstream
) -> None:
    """The integration's tls: block is used for its token endpoint too, as for its own calls."""
    server, api_url, ca_file = https_token_endpoint
    upstream = await start_upstream(
        integration(f"{api_url}/api", API, auth=oauth2(server), tls=TlsFiles(ca_file=str(ca_file)))
    )
    assert (await call(upstream))["authorization"] == "Bearer tok-1"


async def test_a_token_endpoint_of_an_unknown_authority_is_an_auth_error(
    https_token_endpoint: tuple[OAuthServer, str, Path], start_upstream: StartUpstream
) -> None:
    """Without a tls: block naming its authority, the token endpoint's certificate is refused."""
    server, api_url, _ = https_token_endpoint
    upstream = await start_upstream(integration(f"{api_url}/api", API, auth=oauth2(server)))
    error = await auth_failure(upstream)
    assert server.token_calls == 0
    assert_no_secret(error)


# --- oauth2: caching and sharing -----------------------------------------------------------------------


async def test_concurrent_calls_share_one_token_fetch(
    start_upstream: StartUpstream, oauth_server: OAuthServer
) -> None:
    """50 concurrent calls with no token yet cause exactly one token request, and all succeed."""
    oauth_server.delay = 0.05
    upstream = await oauth_upstream(start_upstream, oauth_server)
    results = await asyncio.gather(*(call(upstream) for _ in range(50)))
    assert {r["authorization"] for r in results} == {"Bearer tok-1"}
    assert (oauth_server.token_calls, oauth_server.api_calls) == (1, 50)


@pytest.mark.parametrize(
    ("expires_in", "elapsed", "fetches"),
    [(100, 89, 1), (100, 91, 2), (3600, 3569, 1), (3600, 3571, 2), (None, 269, 1), (None, 271, 2)],
)
async def test_token_is_cached_until_shortly_before_it_expires(
    start_upstream: StartUpstream,
    oauth_server: OAuthServer,
    expires_in: int | None,
    elapsed: float,
    fetches: int,
) -> None:
    """A token is reused until min(30s, 10%) before expires_in (300s when absent), then fetched anew."""
    oauth_server.expires_in = expires_in
    clock = FakeClock()
    upstream = await oauth_upstream(start_upstream, oauth_server, clock=clock)
    await call(upstream)
    clock.advance(elapsed)
    second = await call(upstream)
    assert (oauth_server.token_calls, second["authorization"]) == (fetches, f"Bearer tok-{fetches}")


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(oauth_server: OAuthServer) -> None:
    """A caller giving up leaves the fetch running for the others: still one token request."""
    auth = build_authenticator(oauth2(oauth_server), client_factory=httpx.AsyncClient)
    assert isinstance(auth, OAuth2Authenticator)
    try:
        quitter = asyncio.ensure_future(auth.token())
        stayer = asyncio.ensure_future(auth.token())
        await asyncio.sleep(0)  # both are now waiting on the one fetch
        quitter.cancel()
        assert await stayer == "tok-1"
        assert quitter.cancelled()
    finally:
        await auth.aclose()
    assert oauth_server.token_calls == 1


# --- oauth2: 401 -------------------------------------------------------------------------------------


async def test_401_refreshes_the_token_and_retries_once(
    start_upstream: StartUpstream, oauth_server: OAuthServer
) -> None:
    """A 401 to our token (revoked server-side) fetches a new one and repeats the attempt, which succeeds."""
    upstream = await oauth_upstream(start_upstream, oauth_server)
    await call(upstream)
    oauth_server.revoke_all()
    assert (await call(upstream))["authorization"] == "Bearer tok-2"
    assert (oauth_server.token_calls, oauth_server.api_calls) == (2, 3)


async def test_persistent_401_is_retried_only_once(
    start_upstream: StartUpstream, oauth_server: OAuthServer
) -> None:
    """If the fresh token is refused too, the 401 is the answer: two requests, two token fetches."""
    oauth_server.reject_api = True
    upstream = await oauth_upstream(start_upstream, oauth_server)
    with pytest.raises(UpstreamHTTPError) as caught:
        await call(upstream)
    assert (caught.value.status, oauth_server.token_calls, oauth_server.api_calls) == (401, 2, 2)
    assert_no_secret(caught.value)


async def test_401_to_a_forwarded_token_does_not_touch_ours(
    start_upstream: StartUpstream, oauth_server: OAuthServer
) -> None:
    """A forwarded Authorization that overrides auth replaces ours: no token is fetched, and its 401
    is not retried."""
    upstream = await oauth_upstream(
        start_upstream,
        oauth_server,
        forward_headers=("Authorization",),
        forward_overrides_auth=frozenset({"authorization"}),
    )
    with pytest.raises(UpstreamHTTPError) as caught:
        await call(upstream, forwarded={"Authorization": "Bearer user-token"})
    assert (caught.value.status, oauth_server.token_calls, oauth_server.api_calls) == (401, 0, 1)


# --- oauth2: the token endpoint failing ----------------------------------------------------------------


async def test_auth_server_down_is_an_auth_error(start_upstream: StartUpstream) -> None:
    """A token endpoint that refuses connections makes the call UPSTREAM_AUTH_ERROR, naming the call."""
    upstream = await start_upstream(
        integration("http://127.0.0.1:9/api", API, auth=oauth2(closed_port_url()))
    )
    error = await auth_failure(upstream)
    assert (error.code, error.integration, error.operation) == ("UPSTREAM_AUTH_ERROR", "users", "me")
    assert "unreachable" in error.detail
    assert_no_secret(error)


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("error_500", "HTTP 500"),
        ("bad_json", "not JSON"),
        ("no_token", "no access_token"),
        ("invalid_client", "HTTP 401 (invalid_client)"),
    ],
)
async def test_token_endpoint_failures_are_auth_errors(
    start_upstream: StartUpstream, oauth_server: OAuthServer, mode: TokenMode, words: str
) -> None:
    """A 5xx, a non-JSON answer, an answer without access_token or a refusal is UPSTREAM_AUTH_ERROR,
    whose message says why and never holds the client secret (even when the server echoes it)."""
    oauth_server.mode = mode
    upstream = await oauth_upstream(start_upstream, oauth_server)
    error = await auth_failure(upstream)
    assert words in error.detail
    assert_no_secret(error)
    assert oauth_server.api_calls == 0


async def test_failing_token_endpoint_trips_its_breaker(oauth_server: OAuthServer) -> None:
    """After 5 failed fetches the token endpoint is not called again until reset_after (30s) passed;
    meanwhile fetches fail fast with UPSTREAM_AUTH_ERROR and the wait."""
    oauth_server.mode = "error_500"
    clock = FakeClock()
    auth = build_authenticator(oauth2(oauth_server), client_factory=httpx.AsyncClient, clock=clock)
    try:
        for _ in range(6):
            with pytest.raises(UpstreamAuthError) as caught:
                await auth.apply({}, [])
        assert (oauth_server.token_calls, caught.value.retry_after) == (5, 30.0)
        assert "circuit breaker" in caught.value.detail
        clock.advance(30)
        oauth_server.mode = "ok"
        headers: dict[str, str] = {}
        await auth.apply(headers, [])
    finally:
        await auth.aclose()
    assert (oauth_server.token_calls, headers) == (6, {"Authorization": "Bearer tok-6"})
