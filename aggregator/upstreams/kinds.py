"""The registry of upstream kinds: how the module makes the upstream of an integration's ``type``.

A new kind is a module with an ``Upstream`` (contract.py) and one entry here, beside its entry in the
config's registry (config/kinds.py) that reads its keys and operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aggregator.config.models import Integration, IntegrationType
from aggregator.resilience.clock import Clock
from aggregator.upstreams.contract import Upstream
from aggregator.upstreams.graphql import GraphQLUpstream
from aggregator.upstreams.grpc import GrpcUpstream
from aggregator.upstreams.rest import RestUpstream

__all__ = ["KINDS", "make_upstream"]

UpstreamFactory = Callable[[Integration, Clock], Upstream]


def _rest(integration: Integration, clock: Clock) -> Upstream:
    return RestUpstream(integration, clock=clock)


def _graphql(integration: Integration, clock: Clock) -> Upstream:
    return GraphQLUpstream(integration, clock=clock)


def _grpc(integration: Integration, clock: Clock) -> Upstream:
    return GrpcUpstream(integration, clock=clock)


KINDS: Mapping[IntegrationType, UpstreamFactory] = {"rest": _rest, "graphql": _graphql, "grpc": _grpc}


def make_upstream(integration: Integration, *, clock: Clock) -> Upstream:
    """The upstream of ``integration``, by its ``type``."""
    factory = KINDS.get(integration.type)
    if factory is None:
        raise ValueError(f"integration {integration.id!r}: no upstream kind {integration.type!r}")
    return factory(integration, clock)
