"""The `types:` section and the type checks of `returns` and params against it.

Named types become GraphQL object types, or enums and unions when written ``{enum: [...]}`` and
``{union: [...]}``, so their names must be valid, must not shadow a scalar or a type the gateway
defines itself, and every field must name a known type. Cycles (``User.friends: [User]``) are fine:
GraphQL output types may refer to each other; only a loop of non-null fields, which no finite
upstream answer could fill, is refused. A union or an interface cannot be a param's type.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType

from aggregator.config.models import (
    SCALARS,
    EnumType,
    EnumValue,
    InterfaceType,
    NamedType,
    ObjectType,
    TypeExpr,
    UnionType,
)
from aggregator.config.openapi.names import NOT_ENUM_VALUES, Scope, assign, enum_value_name
from aggregator.config.tree import Node, Reader
from aggregator.config.values import (
    Invalid,
    describe,
    did_you_mean,
    is_name,
    non_empty_string,
    string,
    type_expr,
)

__all__ = ["JOIN_KEYS", "RESERVED_TYPE_NAMES", "input_type", "known_type", "read_types"]

# Types the gateway's own schema defines; a user type of the same name would clash with them.
RESERVED_TYPE_NAMES: frozenset[str] = frozenset(
    {"Query", "Mutation", "Subscription", "IntegrationStats", "OperationStats", "Latency", "CircuitState"}
)
_FIELD_KEYS = ("type", "description", "from")
_ENUM_KEYS = ("enum", "description")
_UNION_KEYS = ("union", "discriminator", "mapping", "description")
_NO_VALUE: str | int | float = ""
# A joined field's keys (config/joins.py reads them): such a field is not read from the parent's JSON.
JOIN_KEYS = ("type", "description", "args", "resolve", "batch", "max_depth")


def known_type(known: Collection[str]) -> Callable[[object], TypeExpr]:
    """A parser for a field's, a return's or a param's type: a scalar or a name from ``types:``, in
    any list shape (a name used as a param type becomes the input type ``<Name>Input``)."""

    def parse(value: object) -> TypeExpr:
        expr = type_expr(value)
        if expr.named not in SCALARS and expr.named not in known:
            raise Invalid(
                f"names no type: '{expr.named}' is neither a scalar ({', '.join(sorted(SCALARS))}) "
                f"nor a name in types:{did_you_mean(expr.named, [*SCALARS, *known])}"
            )
        return expr

    return parse


def input_type(types: Mapping[str, NamedType]) -> Callable[[object], TypeExpr]:
    """``known_type`` for a param's type: a union or an interface has no input form in GraphQL."""
    known = known_type(types)

    def parse(value: object) -> TypeExpr:
        expr = known(value)
        if isinstance(types.get(expr.named), UnionType | InterfaceType):
            raise Invalid(
                f"'{expr.named}' is a union or an interface, which GraphQL cannot take as an argument; "
                "use one of its object types, or JSON"
            )
        return expr

    return parse


def read_types(
    reader: Reader, node: Node | None
) -> tuple[dict[str, ObjectType | EnumType | UnionType], dict[str, dict[str, Node]]]:
    """Every named type of ``types:`` (names are collected first so that fields may refer forward),
    and the nodes of its joined fields (those with ``resolve:``), by type and field, read later."""
    entries = reader.mapping(node)
    for type_name, type_node in entries.items():
        _check_type_name(reader, type_name, type_node)
    known = frozenset(entries)
    types: dict[str, ObjectType | EnumType | UnionType] = {}
    objects: dict[str, ObjectType] = {}
    joined: dict[str, dict[str, Node]] = {}
    unions = {name: n for name, n in entries.items() if _is_kind(n, "union")}
    for type_name, type_node in entries.items():
        if _is_kind(type_node, "enum"):
            types[type_name] = _read_enum(reader, type_name, type_node)
            continue
        if type_name in unions:
            continue
        joined[type_name] = {
            name: field_node
            for name, field_node in reader.mapping(type_node).items()
            if isinstance(field_node.value, dict) and "resolve" in field_node.value
        }
        fields, descriptions, wire_names = _read_fields(
            reader, type_node, known, frozenset(joined[type_name])
        )
        types[type_name] = objects[type_name] = ObjectType(
            type_name,
            MappingProxyType(fields),
            field_descriptions=MappingProxyType(descriptions),
            wire_names=MappingProxyType(wire_names),
        )
    for type_name, type_node in unions.items():
        types[type_name] = _read_union(reader, type_name, type_node, objects)
    _check_required_cycles(reader, entries, objects)
    return types, {name: fields for name, fields in joined.items() if fields}


def _is_kind(node: Node, key: str) -> bool:
    """``{enum: [...]}`` or ``{union: [...]}``: a list is never a field's type, so neither can be an
    object type's field."""
    return isinstance(node.value, dict) and key in node.value and isinstance(node.value[key].value, list)


def _read_union(reader: Reader, type_name: str, node: Node, objects: Collection[str]) -> UnionType:
    """``{union: [Paper, Ebook], discriminator: kind, mapping: {paper: Paper}}``: without a
    discriminator a value is the member its ``__typename`` names, else the one its keys match best."""
    entries = reader.fields(node, _UNION_KEYS)
    members: list[str] = []
    for item in reader.items(entries["union"]):
        member = reader.read(item, _member_of(type_name, objects), "")
        if member in members:
            reader.report(item, f"{member} is listed twice in union {type_name}")
        elif member:
            members.append(member)
    if not reader.items(entries["union"]):
        reader.report(
            entries["union"], "a union needs at least one object type, e.g. {union: [Paper, Ebook]}"
        )
    discriminator = (
        reader.read(entries["discriminator"], non_empty_string, "") if "discriminator" in entries else ""
    )
    mapping: dict[str, str] = {}
    if "mapping" in entries:
        if not discriminator:
            reader.report(entries["mapping"], "mapping: needs discriminator:, the key whose values it maps")
        for value, target in reader.mapping(entries["mapping"]).items():
            mapping[value] = reader.read(target, _member_of(type_name, members), "")
    return UnionType(
        type_name,
        tuple(members),
        reader.read(entries["description"], string, "") if "description" in entries else "",
        discriminator=discriminator or None,
        mapping=MappingProxyType(mapping),
        by_shape=not discriminator,
    )


def _member_of(union: str, allowed: Collection[str]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        name = string(value)
        if name not in allowed:
            raise Invalid(
                f"{name!r} is not an object type of {union}"
                f"{did_you_mean(name, allowed) or '; its members are object types declared in types:'}"
            )
        return name

    return parse


def _read_enum(reader: Reader, type_name: str, node: Node) -> EnumType:
    """``{enum: [open, closed], description: ...}``: each item a wire value, named by the member rule
    (``sci-fi`` -> ``sci_fi``), or ``{NAME: wire value}`` to choose the GraphQL name."""
    entries = reader.fields(node, _ENUM_KEYS)
    description = reader.read(entries["description"], string, "") if "description" in entries else ""
    chosen: dict[str | int | float, str | None] = {}
    at: dict[str | int | float, Node] = {}
    for item in reader.items(entries["enum"]):
        named = reader.mapping(item) if isinstance(item.value, dict) else None
        if named is not None and len(named) != 1:
            reader.report(item, "an enum value is a wire value (open) or one {NAME: wire value} (OPEN: open)")
            continue
        name, value_node = next(iter(named.items())) if named else (None, item)
        value = reader.read(value_node, _wire_value, _NO_VALUE)
        if name is not None and (not is_name(name) or name.startswith("__") or name in NOT_ENUM_VALUES):
            reader.report(
                item,
                f"{name!r} cannot name an enum value: use letters, digits and _, not true, false or null",
            )
        if value in chosen:
            reader.report(item, f"the value {value!r} is listed twice in enum {type_name}")
        chosen.setdefault(value, name)
        at.setdefault(value, item)
    if not chosen and not entries["enum"].broken:
        reader.report(entries["enum"], "an enum needs at least one value, e.g. {enum: [open, closed]}")
    scope = Scope(name for name in chosen.values() if name is not None)
    free = assign([str(v) for v, name in chosen.items() if name is None], scope, enum_value_name)
    values = tuple(
        EnumValue(name if name is not None else free[str(value)], value) for value, name in chosen.items()
    )
    return EnumType(type_name, values, description)


def _wire_value(value: object) -> str | int | float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    raise Invalid(f"an enum value is a string or a number, got {describe(value)}")


def _check_required_cycles(reader: Reader, entries: dict[str, Node], types: dict[str, ObjectType]) -> None:
    """Refuse a loop of non-null object fields (``User.self: User!``): no finite answer can fill it.

    Nullable fields and lists end such a loop (null or an empty list is a valid answer), so ordinary
    cycles like ``User.friends: [User]`` pass.
    """
    required = {
        name: [f for f, t in object_type.fields.items() if t.non_null and not t.is_list and t.named in types]
        for name, object_type in types.items()
    }
    done: set[str] = set()

    def visit(type_name: str, trail: list[str]) -> None:
        for field_name in required[type_name]:
            target = types[type_name].fields[field_name].named
            step = f"{type_name}.{field_name}"
            if target in trail:
                loop = " -> ".join([*trail[trail.index(target) :], target])
                field_node = reader.mapping(entries[type_name]).get(field_name, entries[type_name])
                reader.report(
                    field_node,
                    f"{step} closes a loop of non-null fields ({loop}) that no finite answer can fill; "
                    "make one field of the loop nullable (drop its !)",
                )
            elif target not in done:
                visit(target, [*trail, target])
        done.add(type_name)

    for type_name in types:
        if type_name not in done:
            visit(type_name, [type_name])


def _check_type_name(reader: Reader, type_name: str, node: Node) -> None:
    if not is_name(type_name) or type_name.startswith("__"):
        reader.report(
            node,
            f"'{type_name}' is not a valid GraphQL type name: use letters, digits and _, "
            "not starting with a digit or __",
        )
    elif type_name in SCALARS:
        reader.report(node, f"'{type_name}' is a built-in scalar; give your type another name")
    elif type_name in RESERVED_TYPE_NAMES:
        reader.report(
            node, f"'{type_name}' is a type of the gateway's own schema; give your type another name"
        )


def _read_fields(
    reader: Reader, node: Node, known: Collection[str], joined: Collection[str]
) -> tuple[dict[str, TypeExpr], dict[str, str], dict[str, str]]:
    """The type's fields read from its JSON (``joined`` ones left out), their descriptions, and the
    wire name of every field renamed with ``from:``."""
    entries = {name: child for name, child in reader.mapping(node).items() if name not in joined}
    if not entries and not joined and isinstance(node.value, dict | None):
        reader.report(node, "a type needs at least one field, e.g. {id: ID!, name: String}")
    fields: dict[str, TypeExpr] = {}
    descriptions: dict[str, str] = {}
    wire_names: dict[str, str] = {}
    # Wire name -> the field that reads it: two fields of one type may not share one key, since an
    # input type would send both under it.
    readers: dict[str, str] = {}
    for field_name, field_node in entries.items():
        if not is_name(field_name) or field_name.startswith("__"):
            reader.report(
                field_node,
                f"'{field_name}' is not a valid GraphQL field name: use letters, digits and _, "
                "not starting with a digit or __",
            )
        type_node = field_node
        if isinstance(field_node.value, dict):
            long_form = reader.fields(field_node, _FIELD_KEYS)
            if "description" in long_form:
                descriptions[field_name] = reader.read(long_form["description"], string, "")
            if "from" in long_form:
                wire = reader.read(long_form["from"], non_empty_string, "")
                if wire and wire != field_name:
                    wire_names[field_name] = wire
            if "type" not in long_form:
                reader.report(
                    field_node,
                    "a field in long form needs a type: {type: String, description: ..., from: wireName}",
                )
                continue
            type_node = long_form["type"]
        fields[field_name] = reader.read(type_node, known_type(known), TypeExpr(name="JSON"))
        wire = wire_names.get(field_name, field_name)
        if wire in readers:
            reader.report(
                field_node,
                f"fields '{readers[wire]}' and '{field_name}' both read the upstream key {wire!r}; "
                "give one of them another from:",
            )
        readers.setdefault(wire, field_name)
    return fields, descriptions, wire_names
