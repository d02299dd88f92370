"""Every error aggregator raises, in one place.

The hierarchy::

    AggregatorError
    ├── ConfigError                 a bad integrations.yaml: a list of Problem(file, line, key, message)
    ├── RequestRefused              a GraphQL request refused before execution, with its HTTP status
    ├── CallError                   the caller asked for something that does not exist or is malformed
    │   ├── UnknownOperation        UNKNOWN_OPERATION
    │   ├── InvalidParams           INVALID_PARAMS
    │   └── BadUserInput            BAD_USER_INPUT        an argument names nothing that exists
    └── UpstreamError               an upstream call did not produce a usable result
        ├── CircuitOpen             CIRCUIT_OPEN          refused by an open breaker, nothing sent
        ├── BulkheadFull            BULKHEAD_FULL         refused: the integration's concurrency limit is full
        ├── UpstreamTimeout         UPSTREAM_TIMEOUT      an attempt or the call's deadline ran out
        ├── UpstreamUnavailable     UPSTREAM_UNAVAILABLE  could not connect, or the connection broke
        ├── UpstreamHTTPError       UPSTREAM_HTTP_ERROR   the upstream answered with an error status
        │   └── RateLimited         RATE_LIMITED          ... and that status was 429
        ├── UpstreamBadResponse     UPSTREAM_BAD_RESPONSE the answer could not be used (size, JSON, type)
        │   └── UpstreamBadValue      ... a value in it is not of the declared type (at its GraphQL path)
        ├── UpstreamAuthError       UPSTREAM_AUTH_ERROR   credentials for the upstream could not be obtained
        ├── UpstreamGraphQLError    UPSTREAM_GRAPHQL_ERROR a GraphQL upstream answered errors and no data
        └── UpstreamGrpcError       UPSTREAM_GRPC_ERROR   a gRPC upstream answered an error status

A gRPC upstream's UNAVAILABLE is UpstreamUnavailable, DEADLINE_EXCEEDED UpstreamTimeout and
RESOURCE_EXHAUSTED RateLimited (its ``extensions`` show ``grpcStatus`` rather than an HTTP status).

Each UpstreamError carries a stable ``code``, the ``integration`` and ``operation`` it belongs to and the
number of ``attempts`` made; the executor fills the last two in. The GraphQL layer maps these fields to
``extensions``; nothing else invents error strings. Messages never contain secrets: upstream bodies are
excerpted and redacted before they are stored here.

Requests refused before execution get a GraphQL error whose ``extensions.code`` is one of the
request codes below (the names clients such as Apollo's know, where they have one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AggregatorError",
    "BadUserInput",
    "BulkheadFull",
    "CallError",
    "CircuitOpen",
    "ConfigError",
    "InvalidParams",
    "Problem",
    "RateLimited",
    "RequestRefused",
    "UnknownOperation",
    "UpstreamAuthError",
    "UpstreamBadResponse",
    "UpstreamBadValue",
    "UpstreamError",
    "UpstreamGraphQLError",
    "UpstreamGrpcError",
    "UpstreamHTTPError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class AggregatorError(Exception):
    """The root of every error this package raises on purpose."""

    code: ClassVar[str] = "INTERNAL_ERROR"

    @property
    def extensions(self) -> dict[str, Any]:
        """The machine-readable part, as GraphQL shows it under ``extensions``.

        graphql-core copies an original error's ``extensions`` dict into the GraphQL error, so
        resolvers can raise these errors unchanged.
        """
        return {"code": self.code}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file: where it is, which key, and what to do about it.

    A problem inside a document the key names (an OpenAPI document) also gives that ``document`` and
    the JSON ``pointer`` of the problem in it.
    """

    file: str
    line: int
    key: str
    message: str
    document: str = ""
    pointer: str = ""

    def __str__(self) -> str:
        where = f"{self.key}: " if self.key else ""
        inside = f"{self.document}{'#' + self.pointer if self.pointer else ''}: " if self.document else ""
        return f"{self.file}:{self.line}: {where}{inside}{self.message}"


class ConfigError(AggregatorError):
    """A config file was refused; ``problems`` lists every problem found, not only the first."""

    code = "CONFIG_ERROR"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in config"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))


# Request codes: why a request was refused before any field ran.
BAD_REQUEST = "BAD_REQUEST"  # not a well-formed GraphQL-over-HTTP request
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"  # the document is not GraphQL (Apollo's name)
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"  # not valid against the schema (Apollo's name)
BAD_USER_INPUT = "BAD_USER_INPUT"  # variables that do not fit their types (Apollo's name)
QUERY_TOO_LARGE = "QUERY_TOO_LARGE"  # over server.max_aliases fields or server.max_query_bytes
QUERY_TOO_DEEP = "QUERY_TOO_DEEP"  # over server.max_depth levels
PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"  # unknown hash: send the query with it (Apollo's)
PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"  # no persisted queries here (Apollo's)
PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"  # sha256(query) is not the hash sent
PERSISTED_QUERY_REQUIRED = "PERSISTED_QUERY_REQUIRED"  # only the manifest's documents are served


class RequestRefused(AggregatorError):
    """A GraphQL request refused before execution: ``status`` is its HTTP status, ``code`` its
    ``extensions.code`` (BAD_REQUEST for a 400 unless told, else HTTP_<status>)."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.refusal_code = code or (BAD_REQUEST if status == 400 else f"HTTP_{status}")

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.refusal_code}


class CallError(AggregatorError):
    """The caller's mistake, found before any upstream was contacted."""


class UnknownOperation(CallError):
    code = "UNKNOWN_OPERATION"


class InvalidParams(CallError):
    code = "INVALID_PARAMS"


class BadUserInput(CallError):
    """An argument value the schema accepts but that names nothing (Apollo's code for it)."""

    code = BAD_USER_INPUT


class UpstreamError(AggregatorError):
    """An upstream call failed; see the subclasses for why."""

    code = "UPSTREAM_ERROR"

    def __init__(
        self,
        message: str,
        *,
        integration: str = "",
        operation: str = "",
        attempts: int = 0,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.detail = message
        self.integration = integration
        self.operation = operation
        self.attempts = attempts
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = ".".join(p for p in (self.integration, self.operation) if p)
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.detail}"

    @property
    def extensions(self) -> dict[str, Any]:
        ext: dict[str, Any] = {
            "code": self.code,
            "integration": self.integration,
            "operation": self.operation,
            "attempts": self.attempts,
        }
        if self.retry_after is not None:
            ext["retryAfter"] = round(self.retry_after, 3)
        return ext


class CircuitOpen(UpstreamError):
    code = "CIRCUIT_OPEN"


class BulkheadFull(UpstreamError):
    code = "BULKHEAD_FULL"


class UpstreamTimeout(UpstreamError):
    code = "UPSTREAM_TIMEOUT"


class UpstreamUnavailable(UpstreamError):
    """Connecting failed or the connection broke. ``sent`` says whether the request may have left."""

    code = "UPSTREAM_UNAVAILABLE"

    def __init__(self, message: str, *, sent: bool, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sent = sent


class UpstreamHTTPError(UpstreamError):
    """The upstream answered with a status the call cannot use; ``body`` is a bounded excerpt, for logs.

    ``upstream_body`` is what the client is shown of a 4xx answer's body (``extensions.upstreamBody``):
    parsed JSON or text, bounded and redacted; None when there is none to show.
    """

    code = "UPSTREAM_HTTP_ERROR"

    def __init__(
        self, message: str, *, status: int, body: str = "", upstream_body: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.status = status
        self.body = body
        self.upstream_body = upstream_body

    @property
    def extensions(self) -> dict[str, Any]:
        ext = {**super().extensions, "status": self.status}
        if self.upstream_body is not None:
            ext["upstreamBody"] = self.upstream_body
        return ext


class RateLimited(UpstreamHTTPError):
    """HTTP 429, or a gRPC upstream's RESOURCE_EXHAUSTED: then ``grpc_status`` is set, and ``status``
    stays 429 so that the retry rules treat both alike."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, grpc_status: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.grpc_status = grpc_status

    @property
    def extensions(self) -> dict[str, Any]:
        ext = super().extensions
        if self.grpc_status is not None:
            del ext["status"]
            ext["grpcStatus"] = self.grpc_status
        return ext


class UpstreamBadResponse(UpstreamError):
    code = "UPSTREAM_BAD_RESPONSE"


class UpstreamBadValue(UpstreamBadResponse):
    """A value of an answer is not of the declared type, found while GraphQL completed the answer: after
    the call, so no attempt count belongs to it; the GraphQL error stands at the value's path."""

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, "integration": self.integration, "operation": self.operation}


class UpstreamAuthError(UpstreamError):
    code = "UPSTREAM_AUTH_ERROR"


class UpstreamGraphQLError(UpstreamError):
    """A GraphQL upstream answered ``errors`` and no data; ``errors`` keeps their messages and paths."""

    code = "UPSTREAM_GRAPHQL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[dict[str, Any]] = (),
        counts_as_failure: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.errors = tuple(errors)
        # Set when an error's code is in the integration's circuit_breaker.graphql_error_codes.
        self.counts_as_failure = counts_as_failure

    @property
    def extensions(self) -> dict[str, Any]:
        return {**super().extensions, "upstreamErrors": list(self.errors)}


class UpstreamGrpcError(UpstreamError):
    """A gRPC upstream answered a status the call cannot use; ``grpc_status`` is its name (NOT_FOUND).
    INTERNAL, UNKNOWN and DATA_LOSS say the upstream is unhealthy: they count as breaker failures."""

    code = "UPSTREAM_GRPC_ERROR"

    def __init__(
        self, message: str, *, grpc_status: str, counts_as_failure: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.grpc_status = grpc_status
        self.counts_as_failure = counts_as_failure

    @property
    def extensions(self) -> dict[str, Any]:
        return {**super().extensions, "grpcStatus": self.grpc_status}
