"""The scalars config types may name besides GraphQL's own: JSON, DateTime and BigInt.

BigInt holds the whole numbers from -2**63 to 2**64-1 (64-bit ids, counters, sizes), written as JSON
numbers. It reads integers, integral floats exact in a double (``12.0``) and strings of digits
(``"1234"``, as some APIs send their ids); booleans, fractions and anything larger are refused.
JavaScript clients parse numbers as doubles, exact up to 2**53: GitHub's ids are far below that.
The upstream JSON parser (orjson) reads integers beyond 64 bits as floats, so they could not arrive
exactly anyway.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NewType

import strawberry
from graphql import GraphQLError, IntValueNode, StringValueNode, ValueNode, print_ast
from graphql.pyutils import inspect
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

__all__ = ["JSON", "SCALAR_MAP", "BigInt", "DateTime", "from_epoch"]

_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**64 - 1
# Beyond this a double is no longer exact: an integral float past it may be a rounded value.
_EXACT_FLOAT = 2.0**53
_DIGITS = re.compile(r"-?[0-9]{1,20}")


def _serialize_datetime(value: Any) -> str:
    # Upstreams send timestamps as strings already; pass them through rather than reformat them.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise GraphQLError(f"DateTime cannot represent {type(value).__name__} value: {inspect(value)}")


def _parse_datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"DateTime must be an ISO 8601 string, not {value!r}") from None
    return value


def _big_int(value: Any) -> int | None:
    """The integer ``value`` stands for, or None when it is not a whole number BigInt can hold."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float):
        exact = value.is_integer() and abs(value) <= _EXACT_FLOAT
        number = int(value) if exact else None
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    return number if number is not None and _BIGINT_MIN <= number <= _BIGINT_MAX else None


def _serialize_big_int(value: Any) -> int:
    number = _big_int(value)
    if number is None:
        raise GraphQLError(f"BigInt cannot represent {inspect(value)}: it takes whole numbers of 64 bits")
    return number


def _parse_big_int(value: Any) -> int:
    number = _big_int(value) if not isinstance(value, float) else None
    if number is None:
        raise GraphQLError(
            f"BigInt cannot represent {inspect(value)}: give a whole number of 64 bits, "
            'as a number or a string of digits ("12345")'
        )
    return number


def _parse_big_int_literal(node: ValueNode, _variables: Any = None) -> int:
    if isinstance(node, IntValueNode | StringValueNode):
        return _parse_big_int(int(node.value) if isinstance(node, IntValueNode) else node.value)
    raise GraphQLError(f"BigInt cannot represent a non-integer value: {print_ast(node)}")


DateTime = NewType("DateTime", str)
BigInt = NewType("BigInt", int)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    DateTime: strawberry.scalar(
        name="DateTime",
        description="An ISO 8601 date and time, passed to and from upstreams as a string.",
        serialize=_serialize_datetime,
        parse_value=_parse_datetime,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A whole number from -2^63 to 2^64-1, written as a JSON number; "
        "accepted as a number or a string of digits.",
        serialize=_serialize_big_int,
        parse_value=_parse_big_int,
        parse_literal=_parse_big_int_literal,
    ),
}


def from_epoch(seconds: float | None) -> DateTime | None:
    return None if seconds is None else DateTime(datetime.fromtimestamp(seconds, tz=UTC).isoformat())
