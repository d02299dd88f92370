"""A GraphQL upstream's schema, from an SDL file or an introspection result, accepted as graphql-js 16
(and so every Node GraphQL server: graphql-yoga, Apollo Server) accepts it.

graphql-core 3.3 (installed here: 3.3.x) ports graphql-js 17, whose schema validation adds rules that
graphql-js 16 does not have. GitHub's public schema breaks one of them twelve times ("Interface field
Node.id is not deprecated, so implementation field Project.id must not be deprecated"), and every
server in use serves it. graphql-core's ``validate_schema`` has no rule set to choose from, so its
errors from those rules are left out by their messages (``_graphql_js_17_only``, graphql-core 3.3.2's
wording), and the schema is built with ``assume_valid`` once checked, so that document validation
does not check it again with all the rules.

An SDL file is checked first with graphql-core's SDL rules (``validate_sdl``), which graphql-js 16
has too: a field defined twice (as in GitHub's published ``schema.graphql``) is reported at each
definition's line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import graphql
from graphql import GraphQLError, GraphQLSchema
from graphql.validation.validate import validate_sdl

__all__ = ["SchemaProblem", "schema_from_introspection", "schema_from_sdl_file", "schema_from_sdl_text"]


def _graphql_js_17_only(message: str) -> bool:
    """Whether a graphql-core 3.3.2 schema error comes from a rule graphql-js 16 does not have."""
    return (
        # validate_type_implements_interface: an implementation's deprecation must match.
        (message.startswith("Interface field ") and " is not deprecated, so " in message)
        # validate_default_value: argument and input field defaults checked against their types.
        or " has invalid default value" in message
        # validate_root_types: one type as the root of several operations.
        or message.startswith("All root types must be different")
    )


@dataclass(frozen=True)
class SchemaProblem(Exception):
    """Why a schema cannot be used: messages, each with its 1-based line in the SDL when known."""

    issues: tuple[tuple[str, int | None], ...]

    def __str__(self) -> str:
        return "; ".join(message for message, _ in self.issues)


def _issues(errors: list[GraphQLError]) -> tuple[tuple[str, int | None], ...]:
    """One issue per error location (a field defined twice is reported at both definitions)."""
    found: list[tuple[str, int | None]] = []
    for error in errors:
        lines = sorted({location.line for location in error.locations or ()})
        if not lines:
            found.append((error.message, None))
        found.extend((error.message, line) for line in lines)
    return tuple(found)


def _checked(schema: GraphQLSchema) -> GraphQLSchema:
    """``schema`` once valid by graphql-js 16's rules, marked valid (the same types, no copy)."""
    errors = [error for error in graphql.validate_schema(schema) if not _graphql_js_17_only(error.message)]
    if errors:
        raise SchemaProblem(_issues(errors))
    kwargs: dict[str, Any] = {**schema.to_kwargs(), "assume_valid": True}
    return GraphQLSchema(**kwargs)


def schema_from_sdl_text(text: str) -> GraphQLSchema:
    """Build a schema from SDL; SchemaProblem when graphql-js 16 would refuse it."""
    try:
        document = graphql.parse(text)
    except GraphQLError as error:
        raise SchemaProblem(_issues([error])) from None
    if errors := validate_sdl(document):
        raise SchemaProblem(_issues(errors))
    try:
        return _checked(graphql.build_ast_schema(document, assume_valid_sdl=True))
    except (TypeError, ValueError) as error:
        raise SchemaProblem(((str(error), None),)) from None


@lru_cache(maxsize=8)
def _sdl_file(path: str, _mtime_ns: int, _size: int) -> GraphQLSchema:
    return schema_from_sdl_text(Path(path).read_text(encoding="utf-8"))


def schema_from_sdl_file(path: str | os.PathLike[str]) -> GraphQLSchema:
    """The schema of an SDL file, built once while the file is unchanged (the loader checks it, the
    upstream then uses it: GitHub's takes seconds to parse). OSError when it cannot be read."""
    stat = os.stat(path)
    return _sdl_file(os.fspath(path), stat.st_mtime_ns, stat.st_size)


def schema_from_introspection(data: Any) -> GraphQLSchema:
    """Build a schema from an introspection result's ``data``; SchemaProblem when it is unusable."""
    if not isinstance(data, dict) or not isinstance(data.get("__schema"), dict):
        raise SchemaProblem((("the answer to the introspection query has no data.__schema", None),))
    try:
        return _checked(graphql.build_client_schema(data))  # type: ignore[arg-type]
    except (TypeError, ValueError, GraphQLError) as error:
        raise SchemaProblem(((str(error), None),)) from None
