"""The registry of integration kinds as the loader reads them: each kind's own keys and operations.

The module's side of the same registry (how a kind's upstream is made) is upstreams/kinds.py; the
loader cannot import it, since data flows from config to upstreams.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aggregator.config.grpc import grpc_url, read_grpc_operation
from aggregator.config.models import IntegrationType, Operation
from aggregator.config.operations import OperationScope, read_graphql_operation, read_rest_operation
from aggregator.config.tree import Node, Reader
from aggregator.config.values import http_url

__all__ = ["KINDS", "OWN_KEYS", "Kind"]

OperationReader = Callable[[Reader, str, Node, OperationScope], Operation]


@dataclass(frozen=True)
class Kind:
    """How the loader reads one kind of integration."""

    read_operation: OperationReader
    # Integration keys only this kind has (every kind has the common ones).
    keys: tuple[str, ...] = ()
    base_url: Callable[[object], str] = http_url


KINDS: Mapping[IntegrationType, Kind] = {
    "rest": Kind(read_rest_operation, keys=("openapi", "include", "exclude")),
    "graphql": Kind(read_graphql_operation, keys=("schema", "expose")),
    "grpc": Kind(read_grpc_operation, keys=("proto", "proto_paths", "reflection"), base_url=grpc_url),
}
# Every kind's own keys, and the kind they belong to.
OWN_KEYS: Mapping[str, IntegrationType] = {key: name for name, kind in KINDS.items() for key in kind.keys}
