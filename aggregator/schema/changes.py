"""What changed between two builds of the gateway's schema, in words for the log."""

from __future__ import annotations

from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema, GraphQLUnionType

__all__ = ["schema_changes"]


def schema_changes(old: GraphQLSchema, new: GraphQLSchema) -> list[str]:
    """Types added or removed, and fields added, removed or retyped (``Query.gh_repo: JSON -> Repository``).

    A diff of names rather than graphql-core's ``find_breaking_changes``: what an operator wants to
    read is what the rebuild did, additions included, one line each.
    """
    changes: list[str] = []
    old_types = {name: t for name, t in old.type_map.items() if not name.startswith("__")}
    new_types = {name: t for name, t in new.type_map.items() if not name.startswith("__")}
    changes += [f"type {name} added" for name in new_types.keys() - old_types.keys()]
    changes += [f"type {name} removed" for name in old_types.keys() - new_types.keys()]
    for name in sorted(old_types.keys() & new_types.keys()):
        before, after = old_types[name], new_types[name]
        if type(before) is not type(after):
            changes.append(f"type {name} is now {_kind(after)}, was {_kind(before)}")
        elif isinstance(before, GraphQLObjectType | GraphQLInterfaceType):
            assert isinstance(after, GraphQLObjectType | GraphQLInterfaceType)
            for field in sorted(before.fields.keys() | after.fields.keys()):
                was, now = before.fields.get(field), after.fields.get(field)
                if was is None:
                    changes.append(f"{name}.{field} added")
                elif now is None:
                    changes.append(f"{name}.{field} removed")
                elif str(was.type) != str(now.type):
                    changes.append(f"{name}.{field}: {was.type} -> {now.type}")
        elif isinstance(before, GraphQLUnionType):
            assert isinstance(after, GraphQLUnionType)
            if {t.name for t in before.types} != {t.name for t in after.types}:
                changes.append(f"union {name} now has {', '.join(t.name for t in after.types)}")
    return sorted(changes)


def _kind(named: object) -> str:
    return type(named).__name__.removeprefix("GraphQL").removesuffix("Type").lower() or "type"
