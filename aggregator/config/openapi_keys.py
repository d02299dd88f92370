"""An integration's ``openapi:``, ``include:`` and ``exclude:`` keys: the import they ask for, its problems
reported like any other config problem (a broken document with its file and JSON pointer).

The imported operations and types are the same frozen models hand-written ones load into.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from aggregator.config.models import EnumType, EnumValue, NamedType, ObjectType, Operation, UnionType
from aggregator.config.openapi import Imported, import_document
from aggregator.config.tree import Node, Reader
from aggregator.config.values import did_you_mean, is_name, non_empty_string, string

__all__ = ["OpenAPIImport", "read_openapi"]

_EXAMPLE = "openapi: specs/github.json, include: [repos/get]"


@dataclass
class OpenAPIImport:
    """The result of an integration's import: operations by operation id, and config types by name."""

    operations: dict[str, Operation] = field(default_factory=dict)
    types: dict[str, NamedType] = field(default_factory=dict)


def read_openapi(
    reader: Reader,
    entries: Mapping[str, Node],
    *,
    integration: str,
    base_dir: Path,
    timeout: float,
    taken: Collection[str],
) -> OpenAPIImport | None:
    """The import the integration's keys ask for, or None without ``openapi:``; problems reported."""
    node = entries.get("openapi")
    if node is None:
        for key in ("include", "exclude"):
            if key in entries:
                reader.report(entries[key], f"{key}: picks operations of an OpenAPI document; add {_EXAMPLE}")
        return None
    source = reader.read(node, non_empty_string, "")
    if not source:
        return None
    include = _include(reader, entries.get("include"))
    exclude = _exclude(reader, entries.get("exclude"))
    location = source if urlsplit(source).scheme in ("http", "https") else str(base_dir / source)
    imported = import_document(
        location, integration=integration, include=include, exclude=exclude, timeout=timeout, taken=taken
    )
    _report(reader, node, source, location, imported, entries)
    return OpenAPIImport(imported.operations, _types(imported, _reached(imported)))


def _include(reader: Reader, node: Node | None) -> dict[str, str | None] | None:
    """operationId -> field name (None, or null in the mapping: derived from the id); None imports
    every operation."""
    if node is None:
        return None
    if isinstance(node.value, dict):
        include: dict[str, str | None] = {}
        for oid, name_node in node.value.items():
            if name_node.value is None:
                include[oid] = None
                continue
            name = reader.read(name_node, string, "")
            if not is_name(name) or name.startswith("__"):
                reader.report(
                    name_node,
                    f"field name {name!r} for {oid!r} is not a valid GraphQL name part: "
                    "use letters, digits and _",
                )
                continue
            include[oid] = name
        return include
    return dict.fromkeys(_ids(reader, node))


def _exclude(reader: Reader, node: Node | None) -> list[str]:
    return [] if node is None else _ids(reader, node)


def _ids(reader: Reader, node: Node) -> list[str]:
    return [reader.read(item, non_empty_string, "") for item in reader.items(node) if item.value]


def _report(
    reader: Reader,
    node: Node,
    source: str,
    location: str,
    imported: Imported,
    entries: Mapping[str, Node],
) -> None:
    for problem in imported.problems:
        document = source if problem.location == location else problem.location
        reader.report_in_document(node, document, problem.pointer, problem.message)
    unknown = set(imported.unknown)
    for key in ("include", "exclude"):
        for oid, where in _id_nodes(entries.get(key)).items():
            if oid in unknown:
                hint = did_you_mean(oid, imported.known)
                reader.report(where, f"the OpenAPI document has no operation {oid!r}{hint}")
    include = entries.get("include")
    for oid, why in imported.unsupported.items():
        reader.report(
            include or node,
            f"operation {oid!r} cannot be imported: {why}; leave it out or write it under operations:",
        )


def _id_nodes(node: Node | None) -> dict[str, Node]:
    """The operation ids of an include or exclude list (or include mapping), each with its node."""
    if node is None:
        return {}
    if isinstance(node.value, dict):
        return node.value
    return {str(item.value): item for item in node.value} if isinstance(node.value, list) else {}


def _reached(imported: Imported) -> set[str]:
    """The type names the operations reach: a type mapped on the way and then given up (a body's
    union that made the body JSON) is left out."""
    pending = [
        expr.named
        for op in imported.operations.values()
        for expr in (op.returns, *(param.type for param in op.params))
    ]
    reached: set[str] = set()
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        if name in imported.objects:
            pending.extend(f.type.named for f in imported.objects[name].fields.values())
        elif name in imported.unions:
            pending.extend(imported.unions[name].members)
    return reached


def _types(imported: Imported, reached: set[str]) -> dict[str, NamedType]:
    types: dict[str, NamedType] = {}
    for name, obj in imported.objects.items():
        if name not in reached:
            continue
        types[name] = ObjectType(
            name,
            MappingProxyType({f: fi.type for f, fi in obj.fields.items()}),
            description=obj.description,
            field_descriptions=MappingProxyType(
                {f: fi.description for f, fi in obj.fields.items() if fi.description}
            ),
            wire_names=MappingProxyType({f: fi.wire for f, fi in obj.fields.items() if fi.wire != f}),
        )
    for name, enum in imported.enums.items():
        if name not in reached:
            continue
        values = tuple(EnumValue(gql, wire) for gql, wire in enum.values.items())
        types[name] = EnumType(name, values, description=enum.description)
    for name, union in imported.unions.items():
        if name not in reached:
            continue
        types[name] = UnionType(
            name,
            union.members,
            description=union.description,
            discriminator=union.discriminator,
            mapping=MappingProxyType(union.mapping),
            by_shape=True,
        )
    return types
