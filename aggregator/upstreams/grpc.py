"""gRPC upstreams: unary calls on one grpc.aio channel per integration, messages built at run time.

``prepare`` turns the params into the request message (the proto3 JSON mapping, through protobuf's
json_format) and the metadata; ``send`` makes one attempt. The executor around it retries, breaks
and times out, as for every kind.

Decisions:

- The attempt's gRPC deadline is the executor's cut-off for it (``attempt_deadline``), so the server
  sees, in ``grpc-timeout``, the smaller of the attempt timeout and what is left of the call's
  deadline. grpcio's own retries are off: the executor is the one retry loop.
- Metadata: the integration's headers, forwarded headers and credentials (every auth type; an api
  key ``in: query`` travels as metadata under its name), all names lower-cased as HTTP/2 wants;
  ``x-request-id`` as every call has it.
- Statuses: UNAVAILABLE is UPSTREAM_UNAVAILABLE and DEADLINE_EXCEEDED UPSTREAM_TIMEOUT (both breaker
  failures, retried for idempotent methods); RESOURCE_EXHAUSTED is RATE_LIMITED (retried like HTTP
  429, after the RetryInfo or ``grpc-retry-pushback-ms`` delay when given); INTERNAL, UNKNOWN and
  DATA_LOSS are UPSTREAM_GRPC_ERROR counted as breaker failures and not retried (DATA_LOSS cannot
  heal, and INTERNAL may have done the work); any other status is UPSTREAM_GRPC_ERROR, the upstream
  being healthy. A message over ``max_response_bytes`` (grpcio refuses it with RESOURCE_EXHAUSTED on
  our side) is UPSTREAM_BAD_RESPONSE, as for HTTP.
- With ``reflection: true`` the services are read at start-up; when the upstream is down then,
  start-up goes on (calls answer UPSTREAM_UNAVAILABLE, fields stay untyped, the log says so) and
  reflection is retried in the background with backoff until it succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from aggregator.config.grpc_schema import EMPTY, Services
from aggregator.config.models import Integration, NamedType, Operation
from aggregator.errors import (
    InvalidParams,
    RateLimited,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamGrpcError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aggregator.resilience.clock import SYSTEM_CLOCK, Clock
from aggregator.resilience.executor import attempt_deadline
from aggregator.upstreams.auth import build_authenticator
from aggregator.upstreams.contract import Typed, flight_key
from aggregator.upstreams.grpc_reflection import reflect
from aggregator.upstreams.http import EXCERPT_CHARS, build_client, redact
from aggregator.upstreams.request import RequestParts
from aggregator.upstreams.selection import ClientSelection
from aggregator.upstreams.tls import grpc_credentials, ssl_context

__all__ = ["GrpcCall", "GrpcUpstream"]

log = logging.getLogger("aggregator.upstreams.grpc")

_FAILURES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})
# How grpcio 1.85 words its own refusal of a message over grpc.max_receive_message_length.
_TOO_LARGE = "CLIENT: Received message larger than max"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_REFLECTION_RETRY_MAX = 60.0


@dataclass(frozen=True, slots=True)
class GrpcCall:
    """One prepared call: the request message and the metadata, without credentials."""

    operation: Operation
    request: Message
    metadata: dict[str, str]
    idempotent: bool
    forwarded: frozenset[str]
    args: Mapping[str, Any]  # the params as given
    upstream: GrpcUpstream

    def flight_key(self) -> Hashable | None:
        return flight_key(self.operation, self.args, self.metadata, self.forwarded)

    def attempt(self) -> Awaitable[Any]:
        return self.upstream.send(self)


@dataclass(frozen=True, slots=True)
class _Method:
    path: str
    request: Descriptor
    response: Descriptor
    request_class: type[Message]


class GrpcUpstream:
    """One gRPC integration: its channel, its credentials and its services."""

    def __init__(self, integration: Integration, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._integration = integration
        self.clock = clock
        self._parts = RequestParts(integration)
        self._auth = build_authenticator(
            integration.auth, client_factory=self._token_client, clock=clock, timeout=integration.timeout
        )
        parts = urlsplit(integration.base_url)
        self._target = f"{parts.hostname}:{parts.port}"
        self._secure = parts.scheme == "grpcs"
        self._channel: grpc.aio.Channel | None = None
        self._methods: dict[str, _Method] = {}
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[Message, Message]] = {}
        self._services: Services | None = None
        self._reflected = False
        # With reflection, the operations as the server's descriptors type them (params checked so).
        self._operations: dict[str, Operation] = {}
        service = integration.grpc
        if service is not None and service.descriptors:
            self._know(Services(service.descriptors))
        self._reflection: asyncio.Task[None] | None = None
        self._on_schema: list[Callable[[], None]] = []

    def _know(self, services: Services) -> None:
        """Find every operation's method in ``services``; one they lack stays uncallable (logged)."""
        self._services = services
        for op in self._integration.operations.values():
            if op.grpc is None:
                continue
            try:
                method = services.method(op.grpc)
            except KeyError as problem:
                log.error("integration %s: operation %s: %s", self._integration.id, op.id, problem.args[0])
                continue
            request_class = message_factory.GetMessageClass(method.input_type)
            self._methods[op.id] = _Method(op.grpc.path, method.input_type, method.output_type, request_class)
        if self._channel is not None:
            self._bind(self._channel)

    def _bind(self, channel: grpc.aio.Channel) -> None:
        self._calls = {
            op_id: channel.unary_unary(
                method.path,
                request_serializer=_serialize,
                response_deserializer=message_factory.GetMessageClass(method.response).FromString,
            )
            for op_id, method in self._methods.items()
        }

    def _token_client(self) -> httpx.AsyncClient:
        return build_client(
            timeout=self._integration.timeout,
            max_connections=4,
            ssl_context=ssl_context(self._integration.tls),
        )

    def on_schema(self, callback: Callable[[], None]) -> None:
        self._on_schema.append(callback)

    def keep_fields(self, operation_id: str, paths: Iterable[Sequence[str]]) -> None:
        """Nothing to do: a response message carries every field."""

    def typed(self, types: Mapping[str, NamedType]) -> Typed | None:
        """With reflection, the operations typed from the services the server described."""
        if not self._reflected or self._services is None:
            return None
        integration = self._integration
        typed = self._services.type_operations(integration.operations.values(), types)
        for op_id, problem in typed.problems.items():
            log.error("integration %s: operation %s: %s", integration.id, op_id, problem)
        operations = {op_id: typed.operations.get(op_id, op) for op_id, op in integration.operations.items()}
        return Typed(replace(integration, operations=operations), typed.types)

    async def start(self) -> None:
        """Open the channel; with reflection, read the services (or keep trying in the background)."""
        if self._channel is not None:
            return
        options = [
            ("grpc.max_receive_message_length", self._integration.max_response_bytes),
            ("grpc.enable_retries", 0),
        ]
        if self._secure:
            credentials = grpc_credentials(self._integration.tls)
            self._channel = grpc.aio.secure_channel(self._target, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self._target, options=options)
        self._bind(self._channel)
        service = self._integration.grpc
        if service is not None and service.reflection and not self._reflected and not await self._reflect():
            log.warning(
                "integration %s: the upstream's services could not be read by reflection; its fields are "
                "untyped and its calls refused until reflection succeeds (retrying in the background)",
                self._integration.id,
            )
            self._reflection = asyncio.create_task(self._reflect_later())

    async def stop(self) -> None:
        """Close the channel (and the token endpoint's client); a later ``start`` opens a fresh one."""
        if self._reflection is not None:
            self._reflection.cancel()
            self._reflection = None
        channel, self._channel = self._channel, None
        self._calls = {}
        if channel is not None:
            await channel.close()
        await self._auth.aclose()

    async def _reflect(self) -> bool:
        assert self._channel is not None
        names = sorted({op.grpc.service for op in self._integration.operations.values() if op.grpc})
        try:
            metadata = await self._metadata(dict(self._parts.headers), frozenset())
            descriptors = await reflect(self._channel, names, metadata, timeout=self._integration.timeout)
        except (grpc.RpcError, UpstreamError, LookupError) as error:
            detail = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
            log.info(
                "integration %s: reflection failed: %s",
                self._integration.id,
                redact(str(detail), self.secrets()),
            )
            return False
        services = Services(descriptors)
        self._know(services)
        self._operations = services.type_operations(self._integration.operations.values(), ()).operations
        self._reflected = True
        return True

    async def _reflect_later(self) -> None:
        wait = 1.0
        while True:
            await self.clock.sleep(wait)
            if await self._reflect():
                log.info(
                    "integration %s: services read by reflection; fields are now typed", self._integration.id
                )
                for callback in self._on_schema:
                    try:
                        callback()
                    except Exception:
                        # Never lost in the background task: the gateway keeps the schema it has.
                        log.exception(
                            "integration %s: the gateway's schema could not be rebuilt with the services "
                            "reflection read; the previous one stays",
                            self._integration.id,
                        )
                return
            wait = min(wait * 2, _REFLECTION_RETRY_MAX)

    def prepare(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        *,
        forwarded_headers: Mapping[str, str] | None = None,
        selection: ClientSelection | None = None,
    ) -> GrpcCall:
        """Validate ``params`` into the request message; InvalidParams if they do not fit it.

        ``selection`` is not used: a unary method answers its whole response message.
        """
        where = f"{self._integration.id}.{operation.id}"
        operation = self._operations.get(operation.id, operation)
        method = self._methods.get(operation.id)
        if method is None:
            raise UpstreamUnavailable(
                "the upstream's services are not known yet (reflection has not succeeded)",
                sent=False,
                integration=self._integration.id,
                operation=operation.id,
            )
        self._parts.check_params(where, operation, params)
        request = method.request_class()
        try:
            json_format.ParseDict(_to_proto_json(params, method.request), request)
        except json_format.ParseError as error:
            raise InvalidParams(f"{where}: {error}") from None
        headers = {name.lower(): value for name, value in self._parts.headers.items()}
        forwarded = self._parts.forward(where, headers, forwarded_headers)
        metadata = {name.lower(): value for name, value in headers.items()}
        return GrpcCall(operation, request, metadata, operation.idempotent, forwarded, params, self)

    async def _metadata(
        self, headers: dict[str, str], forwarded: frozenset[str]
    ) -> tuple[tuple[str, str], ...]:
        """This attempt's metadata: ``headers`` and the credentials (an api key's query pair included)."""
        query: list[tuple[str, str]] = []
        await self._parts.apply_credentials(self._auth, headers, query, forwarded)
        pairs = {name.lower(): value for name, value in headers.items()}
        pairs.update((name.lower(), value) for name, value in query)
        return tuple(pairs.items())

    async def send(self, call: GrpcCall) -> Any:
        """One attempt: the response as the proto3 JSON mapping gives it (see the module docstring)."""
        op = call.operation
        try:
            multicallable = self._calls.get(op.id)
            if multicallable is None:
                raise RuntimeError(f"GrpcUpstream {self._integration.id!r} is used before start()")
            ends = attempt_deadline()
            timeout = op.timeout if ends is None else max(0.0, ends - self.clock.monotonic())
            for attempt in (1, 2):
                metadata = await self._metadata(dict(call.metadata), call.forwarded)
                try:
                    response = await multicallable(call.request, timeout=timeout, metadata=metadata)
                    break
                except grpc.aio.AioRpcError as error:
                    # UNAUTHENTICATED to a token we issued: refresh it and repeat the attempt once.
                    if (
                        error.code() == grpc.StatusCode.UNAUTHENTICATED
                        and attempt == 1
                        and self._auth.invalidate(dict(metadata))
                    ):
                        continue
                    raise self._error(error) from None
            return _result(response, self._methods[op.id].response, op.select)
        except UpstreamError as error:
            error.integration = self._integration.id
            error.operation = op.id
            raise

    def _error(self, error: grpc.aio.AioRpcError) -> UpstreamError:
        code = error.code()
        name = code.name
        details = redact(error.details() or "", self.secrets())[:EXCERPT_CHARS]
        message = f"upstream answered {name}: {details}" if details else f"upstream answered {name}"
        if code == grpc.StatusCode.UNAVAILABLE:
            return UpstreamUnavailable(message, sent=True)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return UpstreamTimeout(message)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            if _TOO_LARGE in details:
                return UpstreamBadResponse(f"response over {self._integration.max_response_bytes} bytes")
            retry_after = _retry_delay(error.trailing_metadata())
            return RateLimited(message, status=429, grpc_status=name, body=details, retry_after=retry_after)
        return UpstreamGrpcError(message, grpc_status=name, counts_as_failure=code in _FAILURES)

    def secrets(self) -> frozenset[str]:
        return self._parts.secrets | self._auth.secrets()


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _retry_delay(trailers: Any) -> float | None:
    """The delay a RESOURCE_EXHAUSTED answer asks for: its RetryInfo, else grpc-retry-pushback-ms."""
    pushback: float | None = None
    for key, value in trailers or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.type_url == _RETRY_INFO:
                    info = error_details_pb2.RetryInfo.FromString(detail.value)
                    delay: float = info.retry_delay.ToTimedelta().total_seconds()
                    return delay
        elif key == "grpc-retry-pushback-ms" and isinstance(value, str) and value.isdigit():
            pushback = int(value) / 1000.0
    return pushback


def _to_proto_json(value: Mapping[str, Any], message: Descriptor) -> dict[str, Any]:
    """GraphQL arguments as json_format reads them: nulls left out, Empty fields from Booleans."""
    document: dict[str, Any] = {}
    fields = message.fields_by_camelcase_name
    for key, item in value.items():
        field = fields.get(key)
        if item is None or field is None:
            if item is not None:
                document[key] = item  # json_format names the unknown field
            continue
        nested = field.message_type
        if nested is not None and nested.full_name == EMPTY:
            if field.is_repeated:
                document[key] = [{} for flag in item if flag]
            elif item:
                document[key] = {}
        elif (
            nested is not None
            and not nested.GetOptions().map_entry
            and not nested.full_name.startswith("google.protobuf.")
        ):
            document[key] = (
                [_to_proto_json(entry, nested) for entry in item]
                if field.is_repeated
                else _to_proto_json(item, nested)
            )
        else:
            document[key] = item
    return document


def _holds_empty(message: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Does ``message`` have an ``Empty`` field, itself or in a message field (at any depth)?"""
    cached = _HOLDS_EMPTY.get(message.full_name)
    if cached is not None:
        return cached
    seen = seen | {message.full_name}
    found = any(
        field.message_type is not None
        and (
            field.message_type.full_name == EMPTY
            or (field.message_type.full_name not in seen and _holds_empty(field.message_type, seen))
        )
        for field in message.fields
    )
    if not seen - {message.full_name}:  # a result within a cycle may depend on the outer call
        _HOLDS_EMPTY[message.full_name] = found
    return found


_HOLDS_EMPTY: dict[str, bool] = {}


def _to_graphql(value: dict[str, Any], message: Descriptor) -> dict[str, Any]:
    """json_format's output with ``Empty`` fields as Booleans (true when present)."""
    if not _holds_empty(message):
        return value
    for field in message.fields:
        nested = field.message_type
        item = value.get(field.json_name)
        if nested is None or item is None or nested.GetOptions().map_entry:
            continue
        if nested.full_name == EMPTY:
            value[field.json_name] = [True for _ in item] if field.is_repeated else True
        elif not nested.full_name.startswith("google.protobuf."):
            if field.is_repeated:
                value[field.json_name] = [_to_graphql(entry, nested) for entry in item]
            else:
                _to_graphql(item, nested)
    return value


def _result(response: Message, descriptor: Descriptor, select: str | None) -> Any:
    if descriptor.full_name == EMPTY:
        return True
    data: Any = _to_graphql(
        json_format.MessageToDict(response, always_print_fields_with_no_presence=True), descriptor
    )
    for key in select.split(".") if select else ():
        data = data.get(key) if isinstance(data, dict) else None
    return data
