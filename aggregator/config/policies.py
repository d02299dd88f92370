"""The `defaults:`, `retry:`, `circuit_breaker:` and `server:` blocks (its manifest: manifest.py).

Retry and breaker blocks are read into dicts of checked values first, so that an integration's block
can be merged key by key over the defaults' block before the policy is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator.config.auth import read_headers
from aggregator.config.manifest import read_persisted_documents
from aggregator.config.models import BreakerPolicy, RetryBudget, RetryPolicy, ServerConfig
from aggregator.config.tree import Node, Reader
from aggregator.config.values import (
    Invalid,
    boolean,
    byte_size,
    choice,
    describe,
    duration,
    integer,
    number,
    optional_duration,
    string,
)

__all__ = ["Defaults", "breaker_policy", "read_block", "read_defaults", "read_server", "retry_policy"]

Parsers = Mapping[str, Callable[[object], Any]]
_REFUSED = object()

# A retry block that leaves max_attempts out still asks for retries; "no retry block" means one attempt.
RETRY_BLOCK_ATTEMPTS = 3


def _status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"must be an HTTP status code, got {describe(value)}")
    if value not in (408, 429) and not 500 <= value <= 599:
        raise Invalid(
            f"{value} cannot be retried: retry_on may list only 408, 429 and 5xx statuses "
            "(other errors would fail the same way again)"
        )
    return value


def _consecutive_failures(value: object) -> int | None:
    if value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(
            f"must be a whole number of at least 1, or false to turn the rule off, got {describe(value)}"
        )
    return value


_BUDGET_PARSERS: Parsers = {"max_tokens": number(above=0), "token_ratio": number(above=0)}

_RETRY_PARSERS: Parsers = {
    "max_attempts": integer(1),
    "initial_wait": duration,
    "max_wait": duration,
    "multiplier": number(at_least=1),
    "jitter": choice("full", "equal", "none"),
    "retry_on": lambda value: value,  # a list, checked item by item in retry_block
    "deadline": optional_duration,
    "budget": lambda value: value,  # false, or a block checked in retry_block
}

_BREAKER_PARSERS: Parsers = {
    "threshold": integer(1),
    "failure_rate": number(above=0, at_most=1),
    "window": duration,
    "reset_after": duration,
    "half_open_max_calls": integer(1),
    "consecutive_failures": _consecutive_failures,
    "graphql_error_codes": lambda value: value,  # a list of strings, checked in breaker_policy
}


def _cache_bytes(value: object) -> int:
    if value == 0 and not isinstance(value, bool):
        return 0
    try:
        return byte_size(value)
    except Invalid:
        raise Invalid(
            f"is not a size ({describe(value)}); "
            'write 0 (no automatic persisted queries) or a size like "16MiB"'
        ) from None


_SERVER_PARSERS: Parsers = {
    "graphiql": boolean,
    "introspection": boolean,
    "max_depth": integer(1),
    "max_aliases": integer(1),
    "max_body_bytes": byte_size,
    "max_query_bytes": byte_size,
    "cors_origins": lambda value: value,  # a list, checked item by item in read_server
    "apq_cache_bytes": _cache_bytes,
    "persisted_documents": lambda value: value,  # a block, read in read_server
}


def read_block(reader: Reader, node: Node | None, parsers: Parsers) -> dict[str, Any]:
    """The checked values of the keys present in a block; refused ones are reported and left out."""
    values: dict[str, Any] = {}
    for key, child in reader.fields(node, list(parsers)).items():
        value = reader.read(child, parsers[key], _REFUSED)
        if value is not _REFUSED:
            values[key] = value
    return values


def _retry_block(reader: Reader, node: Node) -> dict[str, Any]:
    values = read_block(reader, node, _RETRY_PARSERS)
    entries = node.value if isinstance(node.value, dict) else {}
    if "retry_on" in values:
        statuses = [reader.read(item, _status, 500) for item in reader.items(entries["retry_on"])]
        values["retry_on"] = frozenset(statuses)
    if "budget" in values:
        values["budget"] = _budget(reader, entries["budget"])
    return values


def _budget(reader: Reader, node: Node) -> RetryBudget | None:
    if node.value is False or node.value is None:
        return None
    if isinstance(node.value, dict):
        return RetryBudget(**read_block(reader, node, _BUDGET_PARSERS))
    reader.report(
        node, f"must be false (no budget) or {{max_tokens: 10, token_ratio: 0.1}}, got {describe(node.value)}"
    )
    return None


def _check_waits(reader: Reader, node: Node, values: Mapping[str, Any]) -> None:
    initial = values.get("initial_wait", RetryPolicy.initial_wait)
    longest = values.get("max_wait", RetryPolicy.max_wait)
    if initial > longest:
        reader.report(
            node,
            f"initial_wait ({initial:g}s) is longer than max_wait ({longest:g}s); "
            "raise max_wait or lower initial_wait",
        )


def retry_policy(reader: Reader, node: Node | None, inherited: Mapping[str, Any] | None) -> RetryPolicy:
    """The integration's retry policy: its own block merged key by key over the defaults' block."""
    if node is None and inherited is None:
        return RetryPolicy()
    own = _retry_block(reader, node) if node is not None else {}
    merged = {"max_attempts": RETRY_BLOCK_ATTEMPTS, **(inherited or {}), **own}
    if node is not None:
        _check_waits(reader, node, merged)
    return RetryPolicy(**merged)


def breaker_policy(reader: Reader, node: Node | None, inherited: Mapping[str, Any] | None) -> BreakerPolicy:
    """The integration's breaker policy: its own block merged key by key over the defaults' block."""
    own = _breaker_block(reader, node) if node is not None else {}
    return BreakerPolicy(**{**(inherited or {}), **own})


def _breaker_block(reader: Reader, node: Node) -> dict[str, Any]:
    values = read_block(reader, node, _BREAKER_PARSERS)
    if "graphql_error_codes" in values:
        entries = node.value if isinstance(node.value, dict) else {}
        items = reader.items(entries["graphql_error_codes"])
        values["graphql_error_codes"] = frozenset(reader.read(item, string, "") for item in items) - {""}
    return values


@dataclass
class Defaults:
    """The checked `defaults:` block; ``None`` where a key was left out."""

    timeout: float | None = None
    retry: dict[str, Any] | None = None
    circuit_breaker: dict[str, Any] | None = None
    max_concurrency: int | None = None
    max_queue: int | None = None
    queue_timeout: float | None = None
    max_response_bytes: int | None = None
    follow_redirects: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Read by the loader, which knows the folder its paths are relative to.
    tls: Node | None = None


_DEFAULTS_KEYS = (
    "timeout",
    "retry",
    "circuit_breaker",
    "max_concurrency",
    "max_queue",
    "queue_timeout",
    "headers",
    "max_response_bytes",
    "follow_redirects",
    "tls",
)


def read_defaults(reader: Reader, node: Node | None) -> Defaults:
    """The `defaults:` block, checked once, whatever number of integrations inherit it."""
    entries = reader.fields(node, _DEFAULTS_KEYS)
    defaults = Defaults(headers=read_headers(reader, entries.get("headers")), tls=entries.get("tls"))
    if "timeout" in entries:
        defaults.timeout = reader.read(entries["timeout"], duration, None)
    if "max_concurrency" in entries:
        defaults.max_concurrency = reader.read(entries["max_concurrency"], integer(1), None)
    if "max_queue" in entries:
        defaults.max_queue = reader.read(entries["max_queue"], integer(0), None)
    if "queue_timeout" in entries:
        defaults.queue_timeout = reader.read(entries["queue_timeout"], duration, None)
    if "max_response_bytes" in entries:
        defaults.max_response_bytes = reader.read(entries["max_response_bytes"], byte_size, None)
    if "follow_redirects" in entries:
        defaults.follow_redirects = reader.read(entries["follow_redirects"], boolean, None)
    if "retry" in entries:
        defaults.retry = _retry_block(reader, entries["retry"])
        _check_waits(reader, entries["retry"], defaults.retry)
    if "circuit_breaker" in entries:
        defaults.circuit_breaker = _breaker_block(reader, entries["circuit_breaker"])
    return defaults


def _origin(value: object) -> str:
    text = string(value)
    if text == "*":
        return text
    scheme, sep, rest = text.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest or "?" in rest:
        raise Invalid(
            f"{text!r} is not an origin: write '*' or scheme://host[:port], e.g. https://app.example.com"
        )
    return text


def read_server(reader: Reader, node: Node | None, base_dir: Path) -> ServerConfig:
    """The `server:` section of the GraphQL endpoint; file paths in it are relative to ``base_dir``."""
    values = read_block(reader, node, _SERVER_PARSERS)
    if "cors_origins" in values:
        origins_node = reader.mapping(node)["cors_origins"]
        values["cors_origins"] = tuple(reader.read(item, _origin, "*") for item in reader.items(origins_node))
    if "persisted_documents" in values:
        block = reader.mapping(node)["persisted_documents"]
        documents = values["persisted_documents"] = read_persisted_documents(reader, block, base_dir)
        limit = values.get("max_query_bytes", ServerConfig.max_query_bytes)
        for key, body in documents.documents.items() if documents else ():
            # What `check` accepts is served: a trusted document goes through the same size limit.
            if (size := len(body.encode())) > limit:
                reader.report(
                    block,
                    f"document {key!r} of the manifest is {size:,} bytes, over server.max_query_bytes "
                    f"({limit:,}); raise max_query_bytes to at least {size}",
                )
    return ServerConfig(**values)
