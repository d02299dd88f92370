"""Upstream credentials: one Authenticator per integration puts them on every attempt.

``none``, ``bearer``, ``api_key`` and ``basic`` are fixed headers, cookies or query pairs computed once.
``oauth2`` (client credentials) fetches a token from ``token_url``, caches it until shortly before it
expires, shares one in-flight fetch between concurrent callers, and calls the token endpoint through
its own circuit breaker so that an auth-server outage fails fast with UPSTREAM_AUTH_ERROR.

No error raised here contains the client secret or a token: messages are built from statuses and
exception type names, never from the request.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import quote

import httpx
import orjson

from aggregator.config import models
from aggregator.config.models import BreakerPolicy
from aggregator.errors import CircuitOpen, UpstreamAuthError, UpstreamBadResponse
from aggregator.resilience.breaker import CircuitBreaker, Outcome
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.upstreams.http import read_bounded, read_prefix, redact, set_header

__all__ = [
    "Authenticator",
    "ClientFactory",
    "OAuth2Authenticator",
    "StaticAuthenticator",
    "build_authenticator",
]

ClientFactory = Callable[[], httpx.AsyncClient]

# Without ``expires_in`` a token is kept this long; a 401 still refreshes it earlier.
DEFAULT_TOKEN_LIFETIME = 300.0
# A token is refreshed this long before it expires (at most), so that it does not expire in flight.
REFRESH_MARGIN = 30.0
REFRESH_MARGIN_SHARE = 0.1
_TOKEN_BODY_LIMIT = 64 * 1024
_OAUTH_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


class Authenticator(Protocol):
    @property
    def header_names(self) -> frozenset[str]:
        """Lower-cased names of the headers ``apply`` sets (empty if it sets none)."""

    async def apply(self, headers: dict[str, str], query: list[tuple[str, str]]) -> None:
        """Add the credentials of one attempt to its headers or query."""

    def invalidate(self, headers: Mapping[str, str]) -> bool:
        """The upstream answered 401 to an attempt sent with ``headers``: forget those credentials.
        True when applying again gives fresh ones, so retrying the attempt once is worthwhile."""

    def secrets(self) -> frozenset[str]:
        """Every credential value this authenticator has put on a request, for redaction."""

    async def aclose(self) -> None: ...


def _default_client_factory() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, follow_redirects=False)


def build_authenticator(
    auth: models.Auth,
    *,
    client_factory: ClientFactory = _default_client_factory,
    clock: Clock = SYSTEM_CLOCK,
    timeout: float = 10.0,
) -> Authenticator:
    """The Authenticator for an integration's ``auth`` block. ``client_factory`` and ``timeout`` are
    used for the oauth2 token endpoint only."""
    match auth:
        case models.NoAuth():
            return StaticAuthenticator()
        case models.BearerAuth(token=token):
            return StaticAuthenticator(
                headers={"Authorization": f"Bearer {token.reveal()}"}, secrets={token.reveal()}
            )
        case models.ApiKeyAuth(key=key, location="query", name=name):
            return StaticAuthenticator(query=[(name, key.reveal())], secrets={key.reveal()})
        case models.ApiKeyAuth(key=key, location="cookie", name=name):
            # Added to the Cookie header other sources set (request.py), not replacing it.
            cookie = f"{name}={quote(key.reveal(), safe='')}"
            return StaticAuthenticator(headers={"Cookie": cookie}, secrets={key.reveal(), cookie})
        case models.ApiKeyAuth(key=key, header=header):
            return StaticAuthenticator(headers={header: key.reveal()}, secrets={key.reveal()})
        case models.BasicAuth(username=username, password=password):
            credentials = _b64(f"{username}:{password.reveal()}")
            return StaticAuthenticator(
                headers={"Authorization": f"Basic {credentials}"},
                secrets={password.reveal(), credentials},
            )
        case models.OAuth2Auth():
            return OAuth2Authenticator(auth, client_factory=client_factory, clock=clock, timeout=timeout)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


class StaticAuthenticator:
    """Credentials that never change: fixed headers and query pairs."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        query: list[tuple[str, str]] | None = None,
        secrets: set[str] | None = None,
    ) -> None:
        self._headers = dict(headers or {})
        self._query = list(query or [])
        self._secrets = frozenset(secrets or ())
        self.header_names = frozenset(name.lower() for name in self._headers)

    async def apply(self, headers: dict[str, str], query: list[tuple[str, str]]) -> None:
        for name, value in self._headers.items():
            set_header(headers, name, value)
        query.extend(self._query)

    def invalidate(self, headers: Mapping[str, str]) -> bool:
        return False

    def secrets(self) -> frozenset[str]:
        return self._secrets

    async def aclose(self) -> None:
        return None


class OAuth2Authenticator:
    """OAuth2 client credentials (RFC 6749 section 4.4) with a shared, cached bearer token."""

    def __init__(
        self,
        auth: models.OAuth2Auth,
        *,
        client_factory: ClientFactory,
        clock: Clock,
        timeout: float = 10.0,
        breaker_policy: BreakerPolicy | None = None,
    ) -> None:
        self._auth = auth
        self._client_factory = client_factory
        self._clock = clock
        self._timeout = timeout
        self._breaker = CircuitBreaker(
            breaker_policy or BreakerPolicy(), clock, name=f"token endpoint {auth.token_url}"
        )
        self._client: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._refresh_at = 0.0
        self._inflight: asyncio.Future[str] | None = None
        # Recently issued tokens: a 401 to one of them is ours to cure; to anything else it is not.
        self._issued: deque[str] = deque(maxlen=8)
        secret = auth.client_secret.reveal()
        self._static_secrets = frozenset({secret, self._basic_credentials()})

    header_names = frozenset({"authorization"})

    async def apply(self, headers: dict[str, str], query: list[tuple[str, str]]) -> None:
        set_header(headers, "Authorization", f"Bearer {await self.token()}")

    async def token(self) -> str:
        """The cached token, or the result of the one fetch all current callers share."""
        if self._token is not None and self._clock.monotonic() < self._refresh_at:
            return self._token
        if self._inflight is None:
            task = asyncio.ensure_future(self._fetch())
            task.add_done_callback(self._fetch_done)
            self._inflight = task
        try:
            # Shielded: a caller that gives up must not cancel the fetch the others are waiting for.
            return await asyncio.shield(self._inflight)
        except UpstreamAuthError as exc:
            # Each caller gets its own error: the executor stamps integration and operation on it.
            raise UpstreamAuthError(exc.detail, retry_after=exc.retry_after) from None

    def invalidate(self, headers: Mapping[str, str]) -> bool:
        token = next(
            (v.removeprefix("Bearer ") for k, v in headers.items() if k.lower() == "authorization"), None
        )
        if token is None or token not in self._issued:
            return False  # e.g. a forwarded user token: refreshing ours would not help
        if token == self._token:
            self._token = None
        return True

    def secrets(self) -> frozenset[str]:
        return self._static_secrets | frozenset(self._issued)

    async def aclose(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _fetch_done(self, task: asyncio.Future[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # every awaiter may have gone; the error is theirs, not the loop's

    def _basic_credentials(self) -> str:
        # RFC 6749 2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
        client_id = quote(self._auth.client_id, safe="")
        return _b64(f"{client_id}:{quote(self._auth.client_secret.reveal(), safe='')}")

    async def _fetch(self) -> str:
        try:
            permit = self._breaker.acquire()
        except CircuitOpen as exc:
            raise UpstreamAuthError(
                "token endpoint is failing; it is not asked again until its circuit breaker "
                f"allows a trial (in {exc.retry_after or 0.0:.1f}s)",
                retry_after=exc.retry_after,
            ) from None
        with permit:
            started = self._clock.monotonic()
            outcome, result = await self._exchange()
            permit.record(outcome)
        if isinstance(result, UpstreamAuthError):
            raise result
        token, lifetime = result
        self._token = token
        self._issued.append(token)
        margin = min(REFRESH_MARGIN, lifetime * REFRESH_MARGIN_SHARE)
        self._refresh_at = started + lifetime - margin
        return token

    async def _exchange(self) -> tuple[Outcome, tuple[str, float] | UpstreamAuthError]:
        """One token request: the breaker outcome and either (token, lifetime) or the error."""
        try:
            async with self._clock.timeout(self._timeout):
                status, body = await self._post()
        except TimeoutError:
            return "failure", UpstreamAuthError(f"token endpoint did not answer within {self._timeout}s")
        except UpstreamBadResponse:
            return "failure", UpstreamAuthError(f"token endpoint answer is over {_TOKEN_BODY_LIMIT} bytes")
        except httpx.HTTPError as exc:
            return "failure", UpstreamAuthError(f"token endpoint unreachable ({type(exc).__name__})")
        if status >= 300:
            unhealthy = status >= 500 or status == 408
            message = f"token endpoint answered HTTP {status}{self._oauth_error(body)}"
            return ("failure" if unhealthy else "success"), UpstreamAuthError(message)
        try:
            return "success", _parse_token(body)
        except ValueError as exc:
            return "failure", UpstreamAuthError(f"token endpoint answer is unusable: {exc}")

    async def _post(self) -> tuple[int, bytes]:
        if self._client is None:
            self._client = self._client_factory()
        auth = self._auth
        form = {"grant_type": "client_credentials"}
        if auth.scopes:
            form["scope"] = " ".join(auth.scopes)
        headers = {"Accept": "application/json"}
        if auth.client_auth == "basic":
            headers["Authorization"] = f"Basic {self._basic_credentials()}"
        else:
            form |= {"client_id": auth.client_id, "client_secret": auth.client_secret.reveal()}
        async with self._client.stream(
            "POST", auth.token_url, data=form, headers=headers, timeout=self._timeout
        ) as response:
            if response.is_success:
                return response.status_code, await read_bounded(response, _TOKEN_BODY_LIMIT)
            return response.status_code, await read_prefix(response)

    def _oauth_error(self, body: bytes) -> str:
        """The RFC 6749 ``error`` code of a refusal (``invalid_client``...), when it is one."""
        try:
            code = orjson.loads(body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            return ""
        if isinstance(code, str) and _OAUTH_ERROR_CODE.fullmatch(code):
            return f" ({redact(code, self.secrets())})"
        return ""


def _parse_token(body: bytes) -> tuple[str, float]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("no access_token")
    expires_in = data.get("expires_in")
    if expires_in is None:
        return token, DEFAULT_TOKEN_LIFETIME
    try:
        lifetime = float(expires_in)  # some servers send it as a string
    except (TypeError, ValueError):
        raise ValueError("expires_in is not a number") from None
    return token, max(0.0, lifetime)
