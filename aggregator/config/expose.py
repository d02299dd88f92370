"""`expose:` of a graphql integration: upstream root fields served as gateway fields, no document written.

    expose: all                       # every Query and Mutation field of the upstream
    expose: [repository, viewer]      # only these

Each exposed root field becomes the gateway field ``<integration>_<field>``. The names are checked here
when the upstream's schema comes from a file; with introspection they are checked at start-up.
"""

from __future__ import annotations

from graphql import GraphQLSchema

from aggregator.config.models import Expose
from aggregator.config.tree import Node, Reader
from aggregator.config.values import did_you_mean, is_name

__all__ = ["read_expose", "root_fields"]

_EXAMPLE = "expose: all, or a list of the upstream's root fields, e.g. expose: [repository, viewer]"


def root_fields(schema: GraphQLSchema) -> dict[str, str]:
    """The upstream's root field names and their kind (``query`` or ``mutation``); a name on both
    roots is the query's."""
    fields = dict.fromkeys(schema.mutation_type.fields if schema.mutation_type else (), "mutation")
    fields.update(dict.fromkeys(schema.query_type.fields if schema.query_type else (), "query"))
    return fields


def read_expose(
    reader: Reader, node: Node | None, schema: GraphQLSchema | None, schema_file: str
) -> Expose | None:
    """The integration's ``expose:``; ``schema``, when a file gave it, checks the names."""
    if node is None:
        return None
    if node.value == "all":
        return Expose(all=True)
    if not isinstance(node.value, list) or not node.value:
        reader.report(node, f"must be all or a non-empty list of root field names; {_EXAMPLE}")
        return None
    known = root_fields(schema) if schema is not None else None
    names: list[str] = []
    for item in reader.items(node):
        value = item.value
        if not isinstance(value, str) or not is_name(value):
            reader.report(item, f"{value!r} is not a GraphQL field name; {_EXAMPLE}")
        elif value in names:
            reader.report(item, f"'{value}' is listed twice; list each root field once")
        elif known is not None and value not in known:
            hint = did_you_mean(value, known)
            reader.report(
                item,
                f"'{value}' is not a Query or Mutation field of the upstream's schema ({schema_file}){hint}; "
                "list root fields of that schema, or use expose: all",
            )
        else:
            names.append(value)
    return Expose(fields=tuple(names))
