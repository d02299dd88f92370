"""The config's named types as Strawberry types: objects, interfaces, unions, enums, scalars and inputs.

Strawberry builds its types from Python classes, made here:

- Every object and interface class exists, empty, before any is filled, so that types can refer to
  each other in cycles; an object's class inherits from the classes of its interfaces (Strawberry's
  way of implementing one). Interfaces are decorated before the types that implement them.
- Every type keeps its GraphQL name exactly: it is passed as ``name=``, since Strawberry camel-cases
  the Python names it derives (``gh_Label`` would become ``ghLabel``).
- A field's Python attribute is ``f_<field name>``: a field an object shares with its interface is
  the same attribute, so the object's own definition overrides the inherited one, and no Python
  keyword or dataclass internal can clash with it.
- An enum is a Python ``Enum`` whose members carry the GraphQL name and the wire value; Strawberry
  gives graphql-core the wire values as the enum's internal values, so a result's wire value is shown
  by its name. An argument arrives as a member of that Python enum: ``to_wire`` turns it back into the
  wire value before it reaches an upstream.
- A custom scalar passes values through unchanged both ways.
- An object type used as a param's type is also the input type ``<Name>Input``; an ``InputType`` is an
  input type under its own name.
"""

from __future__ import annotations

import copy
import enum
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, NewType, Union

import strawberry
from strawberry.types.scalar import ScalarDefinition

from aggregator.config.models import (
    Config,
    EnumType,
    InputType,
    InterfaceType,
    Join,
    NamedType,
    ObjectType,
    Param,
    ScalarType,
    TypeExpr,
    UnionType,
)
from aggregator.schema.scalars import JSON, BigInt, DateTime

__all__ = ["BuiltTypes", "arguments_stub", "build_types", "mutable_defaults", "python_type", "to_wire"]

_BUILTIN: Mapping[str, Any] = {
    "ID": strawberry.ID,
    "String": str,
    "Int": int,
    "Float": float,
    "Boolean": bool,
    "JSON": JSON,
    "DateTime": DateTime,
    "BigInt": BigInt,
}


@dataclass
class BuiltTypes:
    """The Python annotations Strawberry reads for each config type, and what binding them needs."""

    # Config type name -> the annotation of an output position.
    outputs: dict[str, Any] = field(default_factory=dict)
    # Config type name -> the annotation of an input position (objects: their ``<Name>Input`` class).
    inputs: dict[str, Any] = field(default_factory=dict)
    # Config type name -> GraphQL name of its input type, for every input class made.
    input_names: dict[str, str] = field(default_factory=dict)
    scalar_map: dict[object, ScalarDefinition] = field(default_factory=dict)
    # Every object and interface class: passed to the schema so that unreferenced ones are in it too.
    classes: list[type] = field(default_factory=list)
    # Input type names whose values may hold enum members (they reach an enum): see ``to_wire``.
    enum_reaching: frozenset[str] = frozenset()


def python_type(expr: TypeExpr, named: Mapping[str, Any]) -> Any:
    if expr.of is not None:
        inner: Any = list[python_type(expr.of, named)]  # type: ignore[misc]
    else:
        inner = _BUILTIN.get(str(expr.name)) or named[str(expr.name)]
    return inner if expr.non_null else inner | None


def to_wire(value: Any) -> Any:
    """``value`` with every enum member replaced by its wire value (inside input objects and lists)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_wire(item) for item in value]
    return value


def _add_joins(cls: type, joins: Mapping[str, Join], built: BuiltTypes) -> None:
    """The joined fields of an object type: Strawberry fields with their own arguments."""
    for field_name, join in joins.items():
        returns = python_type(TypeExpr(name=join.type.name, of=join.type.of), built.outputs)
        stub = arguments_stub(join.params, built.inputs, returns)
        setattr(
            cls,
            _attr(field_name),
            strawberry.field(resolver=stub, name=field_name, description=join.description or None),
        )


def _attr(field_name: str) -> str:
    return f"f_{field_name}"


def arguments_stub(params: Sequence[Param], inputs: Mapping[str, Any], returns: Any) -> Callable[..., Any]:
    """A function whose signature tells Strawberry a field's arguments and type.

    It is never called: the real resolver is set on the graphql-core field after the build. Its
    parameters have neutral names (``arg0``...): the GraphQL name is given through ``strawberry.argument``.
    """

    def stub(**_: Any) -> None:  # pragma: no cover - replaced before any execution
        raise AssertionError("resolver stub called")

    parameters = []
    for index, param in enumerate(params):
        argument = strawberry.argument(name=param.name, description=param.description or None)
        annotation = Annotated[python_type(param.type, inputs), argument]  # type: ignore[valid-type]
        default: Any = inspect.Parameter.empty
        if param.has_default:  # a non-null argument may have one too (`first: Int! = 10`)
            # A list or object default is set after the build (see ``mutable_defaults``): an
            # ``inspect.Parameter`` must be hashable, and Strawberry hashes it.
            default = strawberry.UNSET if isinstance(param.default, list | dict) else param.default
        elif not param.required:
            # No default shown, and the argument absent when the client leaves it out.
            default = strawberry.UNSET
        parameters.append(
            inspect.Parameter(
                f"arg{index}", inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
            )
        )
    stub.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    stub.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}
    return stub


def mutable_defaults(config: Config) -> Iterator[tuple[str, str, Param]]:
    """(type name, field name, param) of every argument whose default is a list or an object: the
    builder sets them on graphql-core's schema (``arguments_stub`` cannot); ``Query``/``Mutation``
    for operation fields."""
    for integration in config.integrations.values():
        for op in integration.operations.values():
            root = "Mutation" if op.kind == "mutation" else "Query"
            yield from (
                (root, op.field, p) for p in op.params if p.has_default and isinstance(p.default, list | dict)
            )
    for name, definition in config.types.items():
        if isinstance(definition, ObjectType | InterfaceType):
            for field_name, params in definition.field_args.items():
                yield from (
                    (name, field_name, p)
                    for p in params
                    if p.has_default and isinstance(p.default, list | dict)
                )


def _fill(
    cls: type,
    fields: Mapping[str, TypeExpr],
    named: Mapping[str, Any],
    *,
    descriptions: Mapping[str, str],
    deprecations: Mapping[str, str],
    is_input: bool,
    defaults: Mapping[str, Any] | None = None,
    arguments: Mapping[str, tuple[Param, ...]] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> None:
    annotations: dict[str, Any] = {}
    for field_name, expr in fields.items():
        attr = _attr(field_name)
        if arguments and field_name in arguments:
            # A field with arguments is a resolver field: its stub's signature gives them and the type.
            stub = arguments_stub(arguments[field_name], inputs or {}, python_type(expr, named))
            resolved = strawberry.field(
                resolver=stub,
                name=field_name,
                description=descriptions.get(field_name) or None,
                deprecation_reason=deprecations.get(field_name),
            )
            setattr(cls, attr, resolved)
            continue
        annotations[attr] = python_type(expr, named)
        default = None
        if is_input:
            default = defaults[field_name] if defaults and field_name in defaults else strawberry.UNSET
        options: dict[str, Any] = {"default": default}
        if isinstance(default, list | dict):  # dataclasses refuse mutable defaults
            options = {"default_factory": functools.partial(copy.deepcopy, default)}
        made = strawberry.field(
            name=field_name,
            description=descriptions.get(field_name) or None,
            deprecation_reason=deprecations.get(field_name),
            **options,
        )
        setattr(cls, attr, made)
    cls.__annotations__ = annotations


def _enum(definition: EnumType) -> Any:
    members = [
        (
            f"v{index}",
            strawberry.enum_value(
                value.value,
                name=value.name,
                description=value.description or None,
                deprecation_reason=value.deprecation_reason,
            ),
        )
        for index, value in enumerate(definition.values)
    ]
    python_enum = enum.Enum(f"Enum_{definition.name}", members)  # type: ignore[misc]
    return strawberry.enum(python_enum, name=definition.name, description=definition.description or None)


def _scalar(definition: ScalarType, built: BuiltTypes) -> Any:
    key = NewType(f"Scalar_{definition.name}", object)  # type: ignore[misc]
    built.scalar_map[key] = strawberry.scalar(
        name=definition.name,
        description=definition.description or None,
        specified_by_url=definition.specified_by,
    )
    return key


def _input_closure(config: Config) -> list[str]:
    """Object and input types reachable from params: they need input classes (in that order)."""
    used: list[str] = []
    pending = [
        p.type.named for i in config.integrations.values() for o in i.operations.values() for p in o.params
    ]
    # The arguments of fields (an exposed upstream's) take input types too.
    pending += [
        p.type.named
        for t in config.types.values()
        if isinstance(t, ObjectType | InterfaceType)
        for params in t.field_args.values()
        for p in params
    ]
    while pending:
        name = pending.pop()
        definition = config.types.get(name)
        if isinstance(definition, ObjectType | InputType) and name not in used:
            used.append(name)
            pending.extend(expr.named for expr in _input_fields(definition, config.types).values())
    return used


def _input_fields(definition: ObjectType | InputType, types: Mapping[str, NamedType]) -> dict[str, TypeExpr]:
    """The fields of an input type: those of an object type whose type has an input form (an
    interface or a union has none)."""
    return {
        name: expr
        for name, expr in definition.fields.items()
        if not isinstance(types.get(expr.named), InterfaceType | UnionType)
    }


def _enum_reaching(types: Mapping[str, NamedType], inputs: Iterable[str]) -> frozenset[str]:
    """The enums and those of ``inputs`` whose values can hold an enum member, at any depth."""
    reaching = {name for name, t in types.items() if isinstance(t, EnumType)}
    grown = True
    while grown:
        grown = False
        for name in inputs:
            definition = types[name]
            assert isinstance(definition, ObjectType | InputType)
            if name not in reaching and any(e.named in reaching for e in definition.fields.values()):
                reaching.add(name)
                grown = True
    return frozenset(reaching)


def _ordered(types: Mapping[str, NamedType]) -> list[str]:
    """Interfaces before what implements them, then the object types: the order of decoration."""
    done: list[str] = []

    def visit(name: str, trail: frozenset[str]) -> None:
        definition = types[name]
        if name in done or name in trail:
            return
        assert isinstance(definition, ObjectType | InterfaceType)
        for interface in definition.interfaces:
            visit(interface, trail | {name})
        done.append(name)

    for name, definition in types.items():
        if isinstance(definition, InterfaceType):
            visit(name, frozenset())
    for name, definition in types.items():
        if isinstance(definition, ObjectType):
            visit(name, frozenset())
    return done


def _bases(interfaces: Iterable[str], classes: Mapping[str, type]) -> tuple[type, ...]:
    # Only the most derived: Python refuses bases listed before their own subclasses, and an
    # interface an interface implements is inherited through it anyway.
    found = [classes[name] for name in interfaces]
    return tuple(
        cls for cls in found if not any(other is not cls and issubclass(other, cls) for other in found)
    )


def build_types(config: Config) -> BuiltTypes:
    types = config.types
    built = BuiltTypes()
    for name, definition in types.items():
        if isinstance(definition, EnumType):
            built.outputs[name] = built.inputs[name] = _enum(definition)
        elif isinstance(definition, ScalarType):
            built.outputs[name] = built.inputs[name] = _scalar(definition, built)
    classes: dict[str, type] = {}
    for name in _ordered(types):
        definition = types[name]
        assert isinstance(definition, ObjectType | InterfaceType)
        cls = type(name, _bases(definition.interfaces, classes), {"__module__": __name__})
        classes[name] = built.outputs[name] = cls
    for name, definition in types.items():
        if isinstance(definition, UnionType):
            members: Any = Union[tuple(classes[member] for member in definition.types)]  # noqa: UP007
            union = strawberry.union(name, description=definition.description or None)
            built.outputs[name] = Annotated[members, union]
    input_classes: dict[str, type] = {}
    for name in _input_closure(config):
        graphql_name = name if isinstance(types[name], InputType) else f"{name}Input"
        input_classes[name] = built.inputs[name] = type(graphql_name, (), {"__module__": __name__})
        built.input_names[name] = graphql_name
    for name, cls in classes.items():
        definition = types[name]
        assert isinstance(definition, ObjectType | InterfaceType)
        _fill(
            cls,
            definition.fields,
            built.outputs,
            descriptions=definition.field_descriptions,
            deprecations=definition.field_deprecations,
            is_input=False,
            arguments=definition.field_args,
            inputs=built.inputs,
        )
        if isinstance(definition, ObjectType):
            _add_joins(cls, config.joins.get(name, {}), built)
        decorate = strawberry.interface if isinstance(definition, InterfaceType) else strawberry.type
        decorate(cls, name=name, description=definition.description or None)
        built.classes.append(cls)
    for name, cls in input_classes.items():
        definition = types[name]
        assert isinstance(definition, ObjectType | InputType)
        _fill(
            cls,
            _input_fields(definition, types),
            built.inputs,
            descriptions=definition.field_descriptions,
            deprecations={},
            is_input=True,
            defaults=definition.field_defaults if isinstance(definition, InputType) else None,
        )
        strawberry.input(cls, name=built.input_names[name], description=definition.description or None)
    built.enum_reaching = _enum_reaching(types, input_classes)
    return built
