"""The scalars config types may name besides GraphQL's own: JSON and DateTime."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

__all__ = ["JSON", "SCALAR_MAP", "DateTime", "from_epoch"]


def _serialize_datetime(value: Any) -> str:
    # Upstreams send timestamps as strings already; pass them through rather than reformat them.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise ValueError(f"DateTime cannot represent {type(value).__name__} value")


def _parse_datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"DateTime must be an ISO 8601 string, not {value!r}") from None
    return value


DateTime = NewType("DateTime", str)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    DateTime: strawberry.scalar(
        name="DateTime",
        description="An ISO 8601 date and time, passed to and from upstreams as a string.",
        serialize=_serialize_datetime,
        parse_value=_parse_datetime,
    )
}


def from_epoch(seconds: float | None) -> DateTime | None:
    return None if seconds is None else DateTime(datetime.fromtimestamp(seconds, tz=UTC).isoformat())
