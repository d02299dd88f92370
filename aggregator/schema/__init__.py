"""The GraphQL schema generated from the config: operations become fields, named types become types."""

from aggregator.schema.builder import RequestContext, build_schema

__all__ = ["RequestContext", "build_schema"]
