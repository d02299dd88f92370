"""gRPC upstreams end to end against real grpc.aio servers on loopback: values both ways, metadata,
deadlines, status codes, retries, the breaker, size limits, reflection and TLS."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_servers import PROTOS, GrpcServer, Handler, echo, services
from upstream_apps import OAuthServer

from aggregator.config import loads
from aggregator.config.models import Config
from aggregator.errors import UpstreamError
from aggregator.module import IntegrationModule
from aggregator.resilience.retry import classify

SERVICES = services("inventory/v1/inventory.proto", "types/v1/types.proto")
GET_ITEM = "/inventory.v1.Inventory/GetItem"
RESERVE = "/inventory.v1.Inventory/Reserve"
RELEASE = "/inventory.v1.Inventory/Release"
ECHO = "/types.v1.Types/Echo"
LAMP = {"itemId": "lamp", "name": "Lamp", "quantity": 3, "price": {"currency": "EUR", "units": "12"}}
SECRET = "s3cr3t-token"


async def get_item(request: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"item": {**LAMP, "itemId": request.get("itemId", "")}}


async def reserve(request: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"reservationId": "r-1", "item": LAMP}


async def release(request: dict[str, Any], context: Any) -> dict[str, Any]:
    return {}


def failing(code: grpc.StatusCode, details: str = "", trailers: tuple[tuple[str, Any], ...] = ()) -> Handler:
    async def handler(request: dict[str, Any], context: Any) -> dict[str, Any]:
        await context.abort(code, details, trailing_metadata=trailers)
        raise AssertionError("abort returns never")

    return handler


def flaky(failures: int, code: grpc.StatusCode, then: Handler) -> Handler:
    """Fails ``failures`` times with ``code``, then answers as ``then``."""
    left = [failures]

    async def handler(request: dict[str, Any], context: Any) -> dict[str, Any]:
        if left[0] > 0:
            left[0] -= 1
            await context.abort(code, "not now")
        return await then(request, context)

    return handler


@pytest.fixture
def handlers() -> dict[str, Handler]:
    return {GET_ITEM: get_item, RESERVE: reserve, RELEASE: release, ECHO: echo}


@pytest.fixture
def server(handlers: dict[str, Handler]) -> Iterator[GrpcServer]:
    with GrpcServer(SERVICES, handlers).running() as running:
        yield running


def grpc_config(url: str, extra: str = "", operations: str = "") -> Config:
    """One grpc integration `inv` over the test protos with the usual operations and ``extra`` keys."""
    ops = operations or textwrap.dedent(
        """\
        getItem: {rpc: inventory.v1.Inventory/GetItem, select: item}
        reserve: {rpc: inventory.v1.Inventory/Reserve}
        release: {rpc: inventory.v1.Inventory/Release}
        echo: {rpc: types.v1.Types/Echo}
        """
    )
    text = (
        "integrations:\n  inv:\n    type: grpc\n"
        f"    base_url: {url}\n"
        "    proto: [inventory/v1/inventory.proto, types/v1/types.proto]\n"
        "    proto_paths: [.]\n"
        + textwrap.indent(textwrap.dedent(extra), "    ")
        + "    operations:\n"
        + textwrap.indent(ops, "      ")
    )
    return loads(text, base_dir=PROTOS, env={"TOKEN": SECRET})


async def call(config: Config, operation: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    async with IntegrationModule(config) as module:
        return await module.call("inv", operation, params or {}, **kwargs)


async def failure(config: Config, operation: str, params: dict[str, Any] | None = None) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await call(config, operation, params)
    return caught.value


# Values ------------------------------------------------------------------------------------------------

ALL_VALUES = {
    "int32Value": -5,
    "sint32Value": -6,
    "sfixed32Value": 7,
    "uint32Value": 4_000_000_000,
    "fixed32Value": 8,
    "int64Value": 2**62,
    "uint64Value": 2**64 - 1,
    "sint64Value": -(2**62),
    "fixed64Value": 9,
    "sfixed64Value": -9,
    "floatValue": 1.5,
    "doubleValue": 2.25,
    "boolValue": True,
    "stringValue": "héllo",
    "bytesValue": base64.b64encode(b"\x00\xffbytes").decode(),
    "color": "GREEN",
    "tags": ["a", "b"],
    "inners": [{"label": "x", "child": {"label": "y"}}],
    "counts": {"a": 1, "b": 2},
    "choiceNumber": 4,
    "at": "2024-05-01T12:30:00Z",
    "took": "1.500s",
    "maybeInt32": 0,
    "maybeInt64": 12,
    "maybeString": "",
    "maybeBool": False,
    "maybeDouble": 0.5,
    "document": {"nested": {"list": [1, "two", None]}},
    "anything": [1, "x"],
    "flag": True,
    "inner": {"label": "solo"},
    "optionalInt32": 0,
}


async def test_every_type_travels_to_the_server_and_back(server: GrpcServer) -> None:
    """Each value of the mapping reaches the server as proto3 JSON and comes back as GraphQL's value."""
    answer = await call(grpc_config(server.url), "echo", ALL_VALUES)
    expected = {**ALL_VALUES, **{k: str(ALL_VALUES[k]) for k in ("int64Value", "uint64Value", "sint64Value")}}
    expected |= {"fixed64Value": "9", "sfixed64Value": "-9", "maybeInt64": "12"}
    assert answer == expected
    assert server.received[0].request["flag"] == {}


async def test_fields_left_out_come_back_as_their_zero_values_and_absent_messages_as_null(
    server: GrpcServer,
) -> None:
    """proto3 scalars without presence have a value; messages, wrappers and oneofs not set are null."""
    answer = await call(grpc_config(server.url), "echo", {})
    assert (answer["int32Value"], answer["stringValue"], answer["tags"], answer["color"]) == (
        0,
        "",
        [],
        "COLOR_UNSPECIFIED",
    )
    assert all(key not in answer for key in ("inner", "maybeInt32", "flag", "choiceText", "optionalInt32"))


async def test_a_method_returning_empty_answers_true(server: GrpcServer) -> None:
    """google.protobuf.Empty as a response is Boolean true."""
    assert await call(grpc_config(server.url), "release", {"reservationId": "r-1"}) is True


async def test_select_returns_the_selected_part_of_the_response(server: GrpcServer) -> None:
    """select: item answers the Item inside GetItemResponse."""
    assert await call(grpc_config(server.url), "getItem", {"itemId": "lamp"}) == LAMP


async def test_a_value_the_request_message_cannot_hold_is_invalid_params(server: GrpcServer) -> None:
    """An unknown enum name is refused before anything is sent."""
    from aggregator.errors import InvalidParams

    with pytest.raises(InvalidParams, match="color"):
        await call(grpc_config(server.url), "echo", {"color": "PURPLE"})
    assert server.received == []


# Metadata and deadlines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "key", "value"),
    [
        pytest.param("{type: bearer, token: '${TOKEN}'}", "authorization", f"Bearer {SECRET}", id="bearer"),
        pytest.param("{type: api_key, key: '${TOKEN}'}", "x-api-key", SECRET, id="api-key-header"),
        pytest.param(
            "{type: api_key, key: '${TOKEN}', in: query, name: key}", "key", SECRET, id="api-key-query"
        ),
        pytest.param(
            "{type: basic, username: me, password: '${TOKEN}'}",
            "authorization",
            "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode(),
            id="basic",
        ),
    ],
)
async def test_auth_becomes_metadata(server: GrpcServer, auth: str, key: str, value: str) -> None:
    """Every static auth type reaches the server as metadata; an api key in: query under its name."""
    await call(grpc_config(server.url, f"auth: {auth}\n"), "getItem", {"itemId": "a"})
    assert server.received[0].metadata[key] == value


async def test_oauth2_token_becomes_metadata(server: GrpcServer, oauth_server: OAuthServer) -> None:
    """A client-credentials token is fetched from the token endpoint and sent as a bearer token."""
    auth = f"auth: {{type: oauth2, token_url: '{oauth_server.url}/token', client_id: a, client_secret: b}}\n"
    await call(grpc_config(server.url, auth), "getItem", {"itemId": "a"})
    assert server.received[0].metadata["authorization"] == "Bearer tok-1"


async def test_request_id_and_forwarded_headers_become_metadata(server: GrpcServer) -> None:
    """X-Request-Id always travels; forward_headers pass the listed incoming headers, lower-cased."""
    config = grpc_config(server.url, "forward_headers: [X-Tenant]\nheaders: {X-Client: gateway}\n")
    incoming = {"X-Request-Id": "req-1", "X-Tenant": "acme", "X-Other": "no"}
    await call(config, "getItem", {"itemId": "a"}, headers=incoming)
    metadata = server.received[0].metadata
    assert (metadata["x-request-id"], metadata["x-tenant"], metadata["x-client"]) == (
        "req-1",
        "acme",
        "gateway",
    )
    assert "x-other" not in metadata


async def test_the_server_sees_the_attempt_timeout_as_its_deadline(server: GrpcServer) -> None:
    """grpc-timeout carries the operation's timeout."""
    await call(grpc_config(server.url, "timeout: 2s\n"), "getItem", {"itemId": "a"})
    remaining = server.received[0].time_remaining
    assert remaining is not None
    assert 1.0 < remaining <= 2.1


async def test_the_server_sees_what_is_left_of_the_calls_deadline(handlers: dict[str, Handler]) -> None:
    """After a retry wait, the deadline sent is what the call's deadline leaves, below the timeout."""
    handlers[GET_ITEM] = flaky(1, grpc.StatusCode.UNAVAILABLE, get_item)
    extra = "timeout: 5s\nretry: {max_attempts: 2, initial_wait: 300ms, jitter: none, deadline: 1s}\n"
    with GrpcServer(SERVICES, handlers).running() as server:
        await call(grpc_config(server.url, extra), "getItem", {"itemId": "a"})
    first, second = (r.time_remaining for r in server.received)
    assert first is not None
    assert second is not None
    assert 0.5 < first <= 1.1
    assert second <= 0.75


# Status codes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (grpc.StatusCode.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", "failure"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "UPSTREAM_TIMEOUT", "failure"),
        (grpc.StatusCode.INTERNAL, "UPSTREAM_GRPC_ERROR", "failure"),
        (grpc.StatusCode.UNKNOWN, "UPSTREAM_GRPC_ERROR", "failure"),
        (grpc.StatusCode.DATA_LOSS, "UPSTREAM_GRPC_ERROR", "failure"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", "ignored"),
        (grpc.StatusCode.NOT_FOUND, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.INVALID_ARGUMENT, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.ALREADY_EXISTS, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.PERMISSION_DENIED, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.UNAUTHENTICATED, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.FAILED_PRECONDITION, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.ABORTED, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.OUT_OF_RANGE, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.UNIMPLEMENTED, "UPSTREAM_GRPC_ERROR", "success"),
        (grpc.StatusCode.CANCELLED, "UPSTREAM_GRPC_ERROR", "success"),
    ],
    ids=lambda value: value.name if isinstance(value, grpc.StatusCode) else None,
)
async def test_each_status_maps_to_its_error_code_and_breaker_outcome(
    handlers: dict[str, Handler], status: grpc.StatusCode, code: str, outcome: str
) -> None:
    """The error code, grpcStatus where the code is gRPC's own, the redacted message, the breaker's view."""
    handlers[RESERVE] = failing(status, f"no luck for {SECRET}")
    with GrpcServer(SERVICES, handlers).running() as server:
        error = await failure(grpc_config(server.url, "auth: {type: bearer, token: '${TOKEN}'}\n"), "reserve")
    extensions = error.extensions
    assert (extensions["code"], extensions["integration"], extensions["operation"]) == (
        code,
        "inv",
        "reserve",
    )
    if code in ("UPSTREAM_GRPC_ERROR", "RATE_LIMITED"):
        assert extensions["grpcStatus"] == status.name
        assert "status" not in extensions
    assert SECRET not in str(error)
    assert "no luck for ***" in str(error)
    assert classify(error) == outcome


# Retries -----------------------------------------------------------------------------------------------

RETRY = "retry: {max_attempts: 3, initial_wait: 10ms, max_wait: 50ms}\n"


@pytest.mark.parametrize(
    ("operation", "path", "attempts"),
    [
        pytest.param("getItem", GET_ITEM, 3, id="no-side-effects"),
        pytest.param("release", RELEASE, 3, id="idempotent"),
        pytest.param("reserve", RESERVE, 1, id="not-idempotent"),
    ],
)
async def test_only_idempotent_methods_are_retried(
    handlers: dict[str, Handler], operation: str, path: str, attempts: int
) -> None:
    """UNAVAILABLE is retried up to max_attempts for NO_SIDE_EFFECTS and IDEMPOTENT methods only."""
    handlers[path] = failing(grpc.StatusCode.UNAVAILABLE)
    with GrpcServer(SERVICES, handlers).running() as server:
        error = await failure(grpc_config(server.url, RETRY), operation, {})
    assert (error.code, error.attempts, len(server.received)) == ("UPSTREAM_UNAVAILABLE", attempts, attempts)


async def test_idempotent_true_makes_a_method_retried(handlers: dict[str, Handler]) -> None:
    """idempotent: true on the operation allows retries of a method of unknown idempotency."""
    handlers[RESERVE] = flaky(2, grpc.StatusCode.UNAVAILABLE, reserve)
    ops = "reserve: {rpc: inventory.v1.Inventory/Reserve, idempotent: true}\n"
    with GrpcServer(SERVICES, handlers).running() as server:
        answer = await call(grpc_config(server.url, RETRY, ops), "reserve", {"itemId": "a"})
    assert (answer["reservationId"], len(server.received)) == ("r-1", 3)


@pytest.mark.parametrize(
    "status", [grpc.StatusCode.INTERNAL, grpc.StatusCode.NOT_FOUND], ids=lambda status: status.name
)
async def test_other_statuses_are_not_retried(handlers: dict[str, Handler], status: grpc.StatusCode) -> None:
    """INTERNAL (a breaker failure) and NOT_FOUND are answered at once, even for a query."""
    handlers[GET_ITEM] = failing(status)
    with GrpcServer(SERVICES, handlers).running() as server:
        error = await failure(grpc_config(server.url, RETRY), "getItem", {"itemId": "a"})
    assert (error.attempts, len(server.received)) == (1, 1)


def retry_info(seconds: float) -> tuple[tuple[str, Any], ...]:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(seconds * 1e9))
    info = error_details_pb2.RetryInfo(retry_delay=delay)
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="slow down")
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


@pytest.mark.parametrize(
    "trailers",
    [
        pytest.param(retry_info(0.3), id="retry-info"),
        pytest.param((("grpc-retry-pushback-ms", "300"),), id="pushback"),
    ],
)
async def test_resource_exhausted_is_retried_after_the_delay_the_server_asks(
    handlers: dict[str, Handler], trailers: tuple[tuple[str, Any], ...]
) -> None:
    """RATE_LIMITED waits at least the RetryInfo or grpc-retry-pushback-ms delay before trying again."""
    calls: list[float] = []
    loop_time = asyncio.get_running_loop().time

    async def limited(request: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(loop_time())
        if len(calls) == 1:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", trailing_metadata=trailers)
        return await get_item(request, context)

    handlers[GET_ITEM] = limited
    with GrpcServer(SERVICES, handlers).running() as server:
        config = grpc_config(server.url, "retry: {max_attempts: 2, initial_wait: 1ms, max_wait: 2s}\n")
        assert await call(config, "getItem", {"itemId": "a"}) == {**LAMP, "itemId": "a"}
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.29


async def test_a_delay_longer_than_max_wait_is_not_waited_for(handlers: dict[str, Handler]) -> None:
    """A RetryInfo past max_wait ends the call with RATE_LIMITED and its retryAfter."""
    handlers[GET_ITEM] = failing(grpc.StatusCode.RESOURCE_EXHAUSTED, "later", retry_info(30))
    with GrpcServer(SERVICES, handlers).running() as server:
        error = await failure(grpc_config(server.url, RETRY), "getItem", {"itemId": "a"})
    assert (error.code, error.attempts, error.extensions["retryAfter"]) == ("RATE_LIMITED", 1, 30.0)


# Limits and the breaker --------------------------------------------------------------------------------


async def test_a_message_over_max_response_bytes_is_a_bad_response(handlers: dict[str, Handler]) -> None:
    """grpc.max_receive_message_length caps the answer: UPSTREAM_BAD_RESPONSE, a breaker failure."""

    async def big(request: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"stringValue": "x" * 5000}

    handlers[ECHO] = big
    with GrpcServer(SERVICES, handlers).running() as server:
        error = await failure(grpc_config(server.url, "max_response_bytes: 1KiB\n"), "echo")
    assert error.code == "UPSTREAM_BAD_RESPONSE"
    assert "1024 bytes" in str(error)


async def test_the_breaker_opens_on_failures_and_half_opens_after_reset(handlers: dict[str, Handler]) -> None:
    """INTERNAL twice opens it (calls refused unsent); after reset_after a trial goes through, closing it."""
    broken = [True]

    async def internal_until_fixed(request: dict[str, Any], context: Any) -> dict[str, Any]:
        if broken[0]:
            await context.abort(grpc.StatusCode.INTERNAL, "boom")
        return await get_item(request, context)

    handlers[GET_ITEM] = internal_until_fixed
    extra = "circuit_breaker: {threshold: 2, failure_rate: 0.5, reset_after: 300ms}\n"
    with GrpcServer(SERVICES, handlers).running() as server:
        async with IntegrationModule(grpc_config(server.url, extra)) as module:
            for _ in range(2):
                with pytest.raises(UpstreamError, match="INTERNAL"):
                    await module.call("inv", "getItem", {"itemId": "a"})
            with pytest.raises(UpstreamError) as refused:
                await module.call("inv", "getItem", {"itemId": "a"})
            assert refused.value.code == "CIRCUIT_OPEN"
            assert len(server.received) == 2
            broken[0] = False
            await asyncio.sleep(0.5)
            assert module.stats("inv").circuit_state == "half_open"
            assert await module.call("inv", "getItem", {"itemId": "a"}) == {**LAMP, "itemId": "a"}
            assert module.stats("inv").circuit_state == "closed"


# Reflection ---------------------------------------------------------------------------------------------

REFLECTION = textwrap.dedent(
    """\
    integrations:
      inv:
        type: grpc
        base_url: grpc://127.0.0.1:{port}
        reflection: true
        operations:
          getItem: {{rpc: inventory.v1.Inventory/GetItem, select: item}}
    """
)


async def test_reflection_types_the_operations_at_start(handlers: dict[str, Handler]) -> None:
    """The server's descriptors type the fields as protos would, and calls work."""
    server = GrpcServer(SERVICES, handlers, reflection_services=("inventory.v1.Inventory",))
    with server.running():
        config = loads(REFLECTION.format(port=server.port))
        async with IntegrationModule(config) as module:
            typed = module.typed_config(config)
            op = typed.integrations["inv"].operations["getItem"]
            assert (op.kind, str(op.returns), [p.name for p in op.params]) == ("query", "Item", ["itemId"])
            assert set(typed.types["Money"].fields) == {"currency", "units"}
            assert await module.call("inv", "getItem", {"itemId": "b"}) == {**LAMP, "itemId": "b"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_reflection_retries_in_the_background_when_the_upstream_is_down_at_start(
    handlers: dict[str, Handler], caplog: pytest.LogCaptureFixture
) -> None:
    """Start-up goes on (logged), calls are UPSTREAM_UNAVAILABLE; once the server is up, fields are typed."""
    port = free_port()
    config = loads(REFLECTION.format(port=port))
    changed = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="aggregator.upstreams.grpc"):
        async with IntegrationModule(config) as module:
            module.on_schema_change(changed.set)
            assert "could not be read by reflection" in caplog.text
            assert module.typed_config(config) == config
            with pytest.raises(UpstreamError) as refused:
                await module.call("inv", "getItem", {"itemId": "b"})
            assert refused.value.code == "UPSTREAM_UNAVAILABLE"
            server = GrpcServer(
                SERVICES, handlers, reflection_services=("inventory.v1.Inventory",), port=port
            )
            with server.running():
                await asyncio.wait_for(changed.wait(), 10)
                assert (
                    str(module.typed_config(config).integrations["inv"].operations["getItem"].returns)
                    == "Item"
                )
                assert await module.call("inv", "getItem", {"itemId": "b"}) == {**LAMP, "itemId": "b"}


# TLS ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A certificate authority of the tests' own; its leaf certificate is for 127.0.0.1."""
    return trustme.CA()


@pytest.fixture
def tls_files(authority: trustme.CA, tmp_path: Path) -> Path:
    """ca.pem, and client.pem/client.key issued by the same authority, in a folder of their own."""
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = authority.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    return tmp_path


def server_credentials(authority: trustme.CA, *, require_client: bool) -> grpc.ServerCredentials:
    leaf = authority.issue_cert("127.0.0.1")
    pair = (leaf.private_key_pem.bytes(), b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=authority.cert_pem.bytes() if require_client else None,
        require_client_auth=require_client,
    )


def tls_config(url: str, tls: str, folder: Path) -> Config:
    text = (
        f"integrations:\n  inv:\n    type: grpc\n    base_url: {url}\n"
        f"    proto: {PROTOS / 'inventory/v1/inventory.proto'}\n    proto_paths: ['{PROTOS}']\n{tls}"
        "    operations: {getItem: {rpc: inventory.v1.Inventory/GetItem, select: item}}\n"
    )
    return loads(text, base_dir=folder)


async def test_grpcs_trusts_a_private_authority_given_by_ca_file(
    handlers: dict[str, Handler], authority: trustme.CA, tls_files: Path
) -> None:
    """tls: {ca_file} verifies the server's certificate; without it the default store refuses it."""
    credentials = server_credentials(authority, require_client=False)
    with GrpcServer(SERVICES, handlers, credentials=credentials).running() as server:
        trusted = tls_config(server.url, "    tls: {ca_file: ca.pem}\n", tls_files)
        assert await call(trusted, "getItem", {"itemId": "t"}) == {**LAMP, "itemId": "t"}
        error = await failure(tls_config(server.url, "", tls_files), "getItem", {"itemId": "t"})
    assert error.code == "UPSTREAM_UNAVAILABLE"


async def test_ssl_cert_file_replaces_the_default_trust_store(
    handlers: dict[str, Handler], authority: trustme.CA, tls_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a tls: block, SSL_CERT_FILE names the authorities trusted, as for https."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files / "ca.pem"))
    credentials = server_credentials(authority, require_client=False)
    with GrpcServer(SERVICES, handlers, credentials=credentials).running() as server:
        assert await call(tls_config(server.url, "", tls_files), "getItem", {"itemId": "t"}) == {
            **LAMP,
            "itemId": "t",
        }


async def test_mutual_tls_presents_the_client_certificate(
    handlers: dict[str, Handler], authority: trustme.CA, tls_files: Path
) -> None:
    """A server that requires a client certificate accepts cert_file/key_file and refuses a call without."""
    credentials = server_credentials(authority, require_client=True)
    with GrpcServer(SERVICES, handlers, credentials=credentials).running() as server:
        mutual = "    tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key}\n"
        assert await call(tls_config(server.url, mutual, tls_files), "getItem", {"itemId": "m"}) == {
            **LAMP,
            "itemId": "m",
        }
        error = await failure(
            tls_config(server.url, "    tls: {ca_file: ca.pem}\n", tls_files), "getItem", {}
        )
    assert error.code == "UPSTREAM_UNAVAILABLE"
