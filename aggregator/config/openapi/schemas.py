"""OpenAPI schemas to GraphQL types.

Only the schemas the imported operations reach are mapped, each once (by where it stands in its
document), so a recursive schema refers to its own type and ``include`` keeps the work small.

The mapping (README "OpenAPI import" repeats it for users):

- ``type: object`` with ``properties`` (or ``allOf`` parts that have them, merged) -> an object type
  named after its component, or after where it stands when inline: ``<Type>_<field>`` for a property,
  ``<operationId>_response`` and ``<operationId>_body`` for an operation's answer and request body,
  ``<operationId>_<arg>`` for a parameter, ``<Name>_<n>`` for the n-th option of a ``oneOf``.
- An object with only ``additionalProperties`` (or nothing at all), a ``oneOf``/``anyOf`` that mixes
  objects with other kinds, and a schema of several types -> ``JSON``.
- ``oneOf``/``anyOf`` of objects -> a union of their object types, resolved by the ``discriminator``
  when the document gives one, else (or when its value names no member) by the answer's keys.
- ``enum`` of strings -> an enum type (values renamed by the member rule of names.py, mapped back).
- ``integer`` -> ``Int``, or ``BigInt`` for ``format: int64`` and bounds beyond 32 bits; ``number``
  -> ``Float``; ``string`` -> ``String``, ``DateTime`` for ``format: date-time``; ``boolean`` ->
  ``Boolean``.
- Output fields are all nullable: real APIs omit and null fields their documents call required, and
  a nullable field loses only itself when that happens. Arguments keep ``required``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from aggregator.config.models import TypeExpr
from aggregator.config.openapi.names import Scope, assign, enum_value_name, sanitize
from aggregator.config.openapi.source import At, Documents, component_name

__all__ = ["JSON", "EnumIR", "FieldIR", "ObjectIR", "SchemaMapper", "UnionIR"]

JSON = TypeExpr(name="JSON")
_INT32 = 2**31
_SCALAR_OF = {"number": "Float", "boolean": "Boolean", "string": "String"}


@dataclass
class FieldIR:
    type: TypeExpr
    wire: str
    description: str = ""


@dataclass
class ObjectIR:
    name: str
    description: str = ""
    fields: dict[str, FieldIR] = field(default_factory=dict)


@dataclass
class EnumIR:
    name: str
    description: str = ""
    values: dict[str, str] = field(default_factory=dict)  # GraphQL name -> wire value


@dataclass
class UnionIR:
    name: str
    description: str = ""
    members: tuple[str, ...] = ()
    discriminator: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)  # wire value -> member type name


@dataclass
class _Merged:
    """An object schema with its ``allOf`` parts merged: properties in order, and a description."""

    properties: dict[str, At]
    description: str


class SchemaMapper:
    """Maps the schemas of one integration's document; ``types`` names every type made so far."""

    def __init__(self, documents: Documents, integration: str, taken: Collection[str]) -> None:
        self.documents = documents
        self.integration = integration
        self._taken = taken  # type names outside this import (types:, other integrations, reserved)
        self._names = Scope(taken)
        self.objects: dict[str, ObjectIR] = {}
        self.enums: dict[str, EnumIR] = {}
        self.unions: dict[str, UnionIR] = {}
        self._done: dict[tuple[str, str], TypeExpr] = {}

    def type_name(self, hint: str) -> str:
        """A fresh type name: the sanitized hint, ``<integration>_<hint>`` when that is taken."""
        name = sanitize(hint)
        if name in self._names:
            name = f"{self.integration}_{name}"
        return self._names.claim(name)

    def output(self, at: At, hint: str) -> TypeExpr:
        """The (nullable) GraphQL type of the schema at ``at``; ``hint`` names it if it is inline."""
        at = self.documents.deref(at)
        hint = component_name(at) or hint
        key = (at.doc.location, at.pointer)
        done = self._done.get(key)
        if done is not None:
            return done
        # A schema being mapped that reaches itself other than through an object type (an array of
        # itself): JSON breaks the loop. Object types register their name before their fields.
        self._done[key] = JSON
        expr = self._map(at, hint)
        self._done[key] = expr
        return expr

    def _map(self, at: At, hint: str) -> TypeExpr:
        schema = at.value
        if not isinstance(schema, dict):
            return JSON
        if "allOf" in schema:
            return self._all_of(at, hint)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return self._one_of(at, key, hint)
        types = _types(schema)
        if len(types) > 1:
            return JSON
        kind = types[0] if types else None
        if "enum" in schema and kind in (None, "string"):
            values = [v for v in schema["enum"] or () if v is not None]
            if values and all(isinstance(v, str) for v in values):
                return self._enum(at, hint, values)
        if kind == "array" or (kind is None and "items" in schema):
            items = at.child("items")
            inner = self.output(items, hint) if items is not None else JSON
            return TypeExpr(of=inner)
        if kind == "object" or (kind is None and "properties" in schema):
            merged = self._merge(at)
            return self._object(at, hint, merged) if merged.properties else JSON
        if kind == "integer":
            return TypeExpr(name="BigInt" if _is_big(schema) else "Int")
        if kind == "string" and schema.get("format") == "date-time":
            return TypeExpr(name="DateTime")
        if kind in _SCALAR_OF:
            return TypeExpr(name=_SCALAR_OF[kind])
        return JSON

    def _all_of(self, at: At, hint: str) -> TypeExpr:
        parts = [self.documents.deref(part) for part in _list(at, "allOf")]
        own = {k for k in at.value if k not in ("allOf", "description", "title", "nullable", "example")}
        if len(parts) == 1 and not own:
            return self.output(parts[0], hint)
        merged = self._merge(at)
        if merged.properties:
            return self._object(at, hint, merged)
        # allOf of non-objects (a format added to a string, say): the first part says what it is.
        return self.output(parts[0], hint) if parts else JSON

    def _one_of(self, at: At, key: str, hint: str) -> TypeExpr:
        options = [
            option
            for option in (self.documents.deref(o) for o in _list(at, key))
            if not (isinstance(option.value, dict) and _types(option.value) == ["null"])
        ]
        if len(options) == 1:
            return self.output(options[0], hint)
        if not options or not all(self._is_object(option) for option in options):
            return JSON
        name = self.type_name(hint)
        # Registered first: a member's field may refer back to the union.
        self._done[(at.doc.location, at.pointer)] = TypeExpr(name=name)
        members = []
        for index, option in enumerate(options, 1):
            member = self.output(option, f"{name}_{index}")
            if member.is_list or member.named not in self.objects:
                return JSON  # an option reached again while being mapped: no object type to offer
            if member.named not in members:
                members.append(member.named)
        union = UnionIR(name, _description(at.value), tuple(members))
        discriminator = at.child("discriminator")
        if discriminator is not None and isinstance(discriminator.value, dict):
            union.discriminator = str(discriminator.value.get("propertyName") or "") or None
            for value, target in (discriminator.value.get("mapping") or {}).items():
                mapped = self.output(self.documents.deref(_ref_at(at, str(target))), name)
                if mapped.named in union.members:
                    union.mapping[str(value)] = mapped.named
            if union.discriminator is not None:
                # Without a mapping, a member's component name is its discriminator value (OpenAPI 3).
                for option in options:
                    component = component_name(option)
                    if component is not None and component not in union.mapping:
                        union.mapping[component] = self.output(option, name).named
        self.unions[name] = union
        return TypeExpr(name=name)

    def _is_object(self, at: At) -> bool:
        schema = at.value
        if not isinstance(schema, dict):
            return False
        if "allOf" in schema:
            return bool(self._merge(at).properties)
        types = _types(schema)
        return (types == ["object"] or (not types and "properties" in schema)) and bool(
            schema.get("properties")
        )

    def _enum(self, at: At, hint: str, values: list[str]) -> TypeExpr:
        name = self.type_name(hint)
        scope = Scope()
        names = assign(dict.fromkeys(values), scope, enum_value_name)
        self.enums[name] = EnumIR(name, _description(at.value), {gql: wire for wire, gql in names.items()})
        return TypeExpr(name=name)

    def _object(self, at: At, hint: str, merged: _Merged) -> TypeExpr:
        name = self.type_name(hint)
        expr = TypeExpr(name=name)
        obj = ObjectIR(name, merged.description)
        self.objects[name] = obj
        self._done[(at.doc.location, at.pointer)] = expr
        names = assign(merged.properties, Scope())
        for wire, prop in merged.properties.items():
            gql = names[wire]
            obj.fields[gql] = FieldIR(
                self.output(prop, f"{name}_{gql}"), wire, _description(self.documents.deref(prop).value)
            )
        return expr

    def _merge(self, at: At) -> _Merged:
        """The properties of ``at`` and, recursively, of its ``allOf`` parts."""
        merged = _Merged({}, _description(at.value))
        self._merge_into(merged, at, set())
        return merged

    def _merge_into(self, merged: _Merged, at: At, seen: set[tuple[str, str]]) -> None:
        at = self.documents.deref(at)
        key = (at.doc.location, at.pointer)
        if key in seen or not isinstance(at.value, dict):
            return
        seen.add(key)
        for part in _list(at, "allOf"):
            self._merge_into(merged, part, seen)
        properties = at.child("properties")
        if properties is not None:
            for wire, prop in properties.items():
                merged.properties.setdefault(wire, prop)
        if not merged.description:
            merged.description = _description(at.value)

    def input(self, at: At, hint: str, *, required: bool) -> TypeExpr:
        """The type of an argument: the output type where GraphQL allows it as input, else JSON."""
        expr = self.output(at, hint)
        if not self._input_safe(expr, set()):
            expr = JSON
        return TypeExpr(name=expr.name, of=expr.of, non_null=required and not _nullable(at, self.documents))

    def _input_safe(self, expr: TypeExpr, seen: set[str]) -> bool:
        """Input types cannot hold unions (nor, through a field, an object type holding one)."""
        named = expr.named
        if named in self.unions:
            return False
        obj = self.objects.get(named)
        if obj is None or named in seen:
            return True
        seen.add(named)
        return all(self._input_safe(f.type, seen) for f in obj.fields.values())


def _ref_at(at: At, ref: str) -> At:
    """A discriminator mapping names a schema by ``$ref`` or by bare component name."""
    target = ref if "#" in ref or "/" in ref or "." in ref else f"#/components/schemas/{ref}"
    return At({"$ref": target}, at.doc, at.pointer)


def _types(schema: dict[str, Any]) -> list[str]:
    """The schema's ``type`` as a list without ``null`` (3.1 writes ``type: [string, "null"]``)."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    return [k for k in kinds if k != "null"] or (["null"] if kinds else [])


def _nullable(at: At, documents: Documents) -> bool:
    schema = documents.deref(at).value
    if not isinstance(schema, dict):
        return True
    if schema.get("nullable") is True:
        return True
    kind = schema.get("type")
    return isinstance(kind, list) and "null" in kind


def _is_big(schema: dict[str, Any]) -> bool:
    if schema.get("format") == "int64":
        return True
    for bound in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
        value = schema.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool) and not -_INT32 <= value < _INT32:
            return True
    return False


def _list(at: At, key: str) -> list[At]:
    found = at.child(key)
    return found.elements() if found is not None else []


def _description(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    text = schema.get("description") or schema.get("title") or ""
    return text if isinstance(text, str) else ""
