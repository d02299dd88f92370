"""Build config models directly, as the loader would, without a YAML file."""

from __future__ import annotations

from typing import Any

from aggregator.config.models import (
    IDEMPOTENT_METHODS,
    Config,
    HttpMethod,
    Integration,
    Operation,
    Param,
    ParamLocation,
    TypeExpr,
)
from aggregator.module import IntegrationModule
from aggregator.schema import build_schema

__all__ = ["gateway_sdl", "integration", "operation", "param", "type_expr"]


def type_expr(text: str) -> TypeExpr:
    """``String``, ``Int!``, ``[String!]``... (enough of the grammar for tests)."""
    non_null = text.endswith("!")
    core = text.removesuffix("!")
    if core.startswith("["):
        return TypeExpr(of=type_expr(core[1:-1]), non_null=non_null)
    return TypeExpr(name=core, non_null=non_null)


def param(name: str, type_: str = "String", location: ParamLocation = "query") -> Param:
    return Param(name=name, type=type_expr(type_), location=location)


def operation(
    id: str = "op",
    *,
    method: HttpMethod = "GET",
    path: str = "",
    params: tuple[Param, ...] = (),
    returns: str = "JSON",
    timeout: float = 5.0,
    idempotent: bool | None = None,
) -> Operation:
    return Operation(
        id=id,
        method=method,
        path=path,
        params=params,
        returns=type_expr(returns),
        timeout=timeout,
        idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
    )


def integration(base_url: str, *operations: Operation, id: str = "users", **fields: Any) -> Integration:
    return Integration(id=id, base_url=base_url, operations={op.id: op for op in operations}, **fields)


def gateway_sdl(config: Config) -> str:
    """The SDL of the schema `serve` builds for ``config`` (with the types known without upstreams)."""
    module = IntegrationModule(config)
    return build_schema(module.typed_config(config), module).as_str()
