"""Joined fields: a field of a type resolved by another operation (``resolve:``, optionally ``batch:``).

They are written in ``types:`` (beside the fields read from the upstream's JSON) and in ``extend:``
(fields added to a type the gateway did not declare itself: a gRPC message, a type derived from a
GraphQL upstream's schema). Every reference is checked here, at the line it is written on: the
operations, their params, ``$parent`` paths against the parent's declared fields, ``$args`` names
against the field's own arguments, and a batch's list argument and ``key``.

A joined field is nullable: a failed join nulls that field alone and leaves the parent's data.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any

from aggregator.config.models import (
    SCALARS,
    ConstantValue,
    FieldArgument,
    Integration,
    Join,
    JoinBatch,
    JoinValue,
    NamedType,
    ObjectType,
    Operation,
    Param,
    ParentValue,
    TypeExpr,
)
from aggregator.config.tree import Node, Reader
from aggregator.config.typedefs import JOIN_KEYS, input_type, known_type
from aggregator.config.values import did_you_mean, integer, is_name, non_empty_string, string

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_SIZE", "read_joins"]

DEFAULT_MAX_SIZE = 100
# A cycle (User.posts -> Post.author -> User.posts ...) may show each joined field this many times on
# one response path; a deeper request is refused before any call.
DEFAULT_MAX_DEPTH = 3
_RESOLVE_KEYS = ("operation", "args")
_BATCH_KEYS = ("operation", "arg", "key", "max_size")
_EXAMPLE = "resolve: {operation: users.getUser, args: {id: $parent.userId}}"


def read_joins(
    reader: Reader,
    declared: Mapping[str, Mapping[str, Node]],
    extend: Node | None,
    types: Mapping[str, NamedType],
    integrations: Mapping[str, Integration],
) -> dict[str, dict[str, Join]]:
    """The joins of ``types:`` (``declared``: their nodes by type and field) and of ``extend:``."""
    scope = _Scope(reader, types, integrations)
    joins: dict[str, dict[str, Join]] = {}
    for type_name, fields in declared.items():
        for field_name, node in fields.items():
            scope.add(joins, type_name, field_name, node)
    may_derive = any(i.type == "graphql" for i in integrations.values())
    for type_name, type_node in reader.mapping(extend).items():
        definition = types.get(type_name)
        if definition is None and not may_derive:
            reader.report(
                type_node,
                f"extends no known type: '{type_name}' is neither in types: nor a type of a gRPC "
                f"integration's protos{did_you_mean(type_name, list(types))}",
            )
            continue
        if definition is not None and not isinstance(definition, ObjectType):
            reader.report(
                type_node, f"'{type_name}' is not an object type; only object types gain joined fields"
            )
            continue
        for field_name, node in reader.mapping(type_node).items():
            if isinstance(definition, ObjectType) and field_name in definition.fields:
                reader.report(
                    node, f"'{type_name}' has a field '{field_name}' already; give the join another name"
                )
                continue
            if not isinstance(node.value, dict) or "resolve" not in node.value:
                reader.report(node, f"a field under extend: is a joined field: {{type: User, {_EXAMPLE}}}")
                continue
            scope.add(joins, type_name, field_name, node)
    return joins


class _Scope:
    def __init__(
        self, reader: Reader, types: Mapping[str, NamedType], integrations: Mapping[str, Integration]
    ) -> None:
        self.reader = reader
        self.types = types
        self.integrations = integrations

    def add(self, joins: dict[str, dict[str, Join]], type_name: str, field_name: str, node: Node) -> None:
        join = self.join(type_name, field_name, node)
        if join is not None:
            joins.setdefault(type_name, {})[field_name] = join

    def join(self, type_name: str, field_name: str, node: Node) -> Join | None:
        reader = self.reader
        if not is_name(field_name) or field_name.startswith("__"):
            reader.report(
                node, f"'{field_name}' is not a valid GraphQL field name: use letters, digits and _"
            )
            return None
        entries = reader.fields(node, JOIN_KEYS)
        if "type" not in entries:
            reader.report(node, f"a joined field needs a type: {{type: User, {_EXAMPLE}}}")
            return None
        field_type = reader.read(entries["type"], known_type(self.types), None)
        if field_type is None:
            return None
        if field_type.non_null:
            reader.report(
                entries["type"],
                f"a joined field is nullable (a failed join nulls it alone): write {str(field_type)[:-1]}",
            )
            return None
        params = self.params(entries.get("args"))
        resolve = reader.fields(entries["resolve"], _RESOLVE_KEYS)
        target = self.operation(resolve.get("operation"), entries["resolve"])
        if target is None:
            return None
        integration, op = target
        args = self.args(resolve.get("args"), op, integration.id, type_name, {p.name for p in params})
        self.required(
            entries["resolve"], integration.id, op, set(args) | set(reader.mapping(resolve.get("args")))
        )
        batch = self.batch(entries.get("batch"), args)
        max_depth = DEFAULT_MAX_DEPTH
        if "max_depth" in entries:
            max_depth = reader.read(entries["max_depth"], integer(1), DEFAULT_MAX_DEPTH)
        description = reader.read(entries["description"], string, "") if "description" in entries else ""
        return Join(
            type_name,
            field_name,
            field_type,
            integration.id,
            op.id,
            MappingProxyType(args),
            params,
            batch,
            max_depth,
            description,
            reader.source,
            node.line,
        )

    def params(self, node: Node | None) -> tuple[Param, ...]:
        params: list[Param] = []
        for name, arg_node in self.reader.mapping(node).items():
            if not is_name(name) or name.startswith("__"):
                self.reader.report(
                    arg_node, f"'{name}' is not a valid argument name: use letters, digits and _"
                )
                continue
            expr = self.reader.read(arg_node, input_type(self.types), None)
            if expr is not None:
                params.append(Param(name, expr, "query"))
        return tuple(params)

    def operation(self, node: Node | None, owner: Node) -> tuple[Integration, Operation] | None:
        reader = self.reader
        if node is None:
            reader.report(owner, "needs operation: <integration>.<operation>, e.g. users.getUser")
            return None
        text = reader.read(node, non_empty_string, "")
        if not text:
            return None
        integration_id, _, operation_id = text.partition(".")
        integration = self.integrations.get(integration_id)
        if integration is None or not operation_id:
            hint = did_you_mean(integration_id, list(self.integrations))
            reader.report(
                node,
                f"'{text}' names no operation: write <integration>.<operation>; "
                f"'{integration_id}' is not an integration{hint}"
                if integration is None
                else f"'{text}' names no operation: write <integration>.<operation>",
            )
            return None
        op = integration.operations.get(operation_id)
        if op is None:
            reader.report(
                node,
                f"integration '{integration_id}' has no operation '{operation_id}'"
                f"{did_you_mean(operation_id, list(integration.operations))}",
            )
            return None
        return integration, op

    def args(
        self, node: Node | None, op: Operation, integration_id: str, type_name: str, own: Collection[str]
    ) -> dict[str, JoinValue]:
        reader = self.reader
        params = {p.name: p for p in op.params}
        values: dict[str, JoinValue] = {}
        for name, value_node in reader.mapping(node).items():
            if name not in params:
                known = ", ".join(params) or "none"
                reader.report(
                    value_node,
                    f"{integration_id}.{op.id} has no param '{name}'{did_you_mean(name, list(params))}"
                    f" (its params: {known})",
                )
                continue
            value = self.value(value_node, type_name, own)
            if value is not None:
                values[name] = value
        return values

    def required(self, owner: Node, integration_id: str, op: Operation, given: Collection[str]) -> None:
        """Report the required params of ``op`` that no argument of the join gives."""
        missing = [p.name for p in op.params if p.required and not p.has_default and p.name not in given]
        if missing:
            self.reader.report(
                owner, f"{integration_id}.{op.id} requires {', '.join(missing)}: give them under args:"
            )

    def value(self, node: Node, type_name: str, own: Collection[str]) -> JoinValue | None:
        raw = node.value
        if not isinstance(raw, str) or not raw.startswith("$"):
            return ConstantValue(_plain(node))
        source, _, rest = raw.partition(".")
        if source == "$parent" and rest:
            path = tuple(rest.split("."))
            problem = _parent_problem(self.types, type_name, path)
            if problem:
                self.reader.report(node, problem)
                return None
            return ParentValue(path)
        if source == "$args" and rest:
            if rest not in own:
                known = ", ".join(own) or "none: declare them under the field's args:"
                self.reader.report(
                    node,
                    f"'{raw}' names no argument of the field{did_you_mean(rest, list(own))}"
                    f" (its args: {known})",
                )
                return None
            return FieldArgument(rest)
        self.reader.report(
            node,
            f"{raw!r} is neither $parent.<key path> nor $args.<name> (a literal string cannot start with $)",
        )
        return None

    def batch(self, node: Node | None, args: Mapping[str, JoinValue]) -> JoinBatch | None:
        if node is None:
            return None
        reader = self.reader
        entries = reader.fields(node, _BATCH_KEYS)
        missing = [key for key in ("operation", "arg", "key") if key not in entries]
        if missing:
            reader.report(
                node, f"batch: needs {', '.join(missing)}: {{operation: users.getUsers, arg: ids, key: id}}"
            )
            return None
        parents = [name for name, value in args.items() if isinstance(value, ParentValue)]
        if len(parents) != 1:
            reader.report(
                node,
                "a batch sends one key per parent: resolve: args needs exactly one $parent value"
                f" (found {len(parents)})",
            )
            return None
        target = self.operation(entries["operation"], node)
        if target is None:
            return None
        integration, op = target
        arg = reader.read(entries["arg"], non_empty_string, "")
        param = next((p for p in op.params if p.name == arg), None)
        if param is None:
            names = [p.name for p in op.params]
            reader.report(
                entries["arg"],
                f"{integration.id}.{op.id} has no param '{arg}'{did_you_mean(arg, names)}"
                f" (its params: {', '.join(names) or 'none'})",
            )
            return None
        if not param.type.is_list:
            reader.report(
                entries["arg"],
                f"{integration.id}.{op.id}'s param '{arg}' is {param.type}, not a list:"
                " the batch sends a list of keys",
            )
            return None
        self.required(node, integration.id, op, {arg, *args})
        key = reader.read(entries["key"], non_empty_string, "")
        item = self.types.get(op.returns.named)
        if isinstance(item, ObjectType) and key not in item.wire_names.values() and key not in item.fields:
            reader.report(
                entries["key"],
                f"'{key}' is no field of {op.returns.named}, the items {integration.id}.{op.id} returns"
                f"{did_you_mean(key, list(item.fields))}",
            )
            return None
        max_size = DEFAULT_MAX_SIZE
        if "max_size" in entries:
            max_size = reader.read(entries["max_size"], integer(1), DEFAULT_MAX_SIZE)
        return JoinBatch(
            integration.id, op.id, arg, item.wire_name(key) if isinstance(item, ObjectType) else key, max_size
        )


def _parent_problem(types: Mapping[str, NamedType], type_name: str, path: tuple[str, ...]) -> str:
    """Why ``$parent.<path>`` cannot be read from ``type_name``'s JSON, or ``""`` when it can (or the
    type is not known yet: one derived from a GraphQL upstream's schema is checked when built)."""
    current: NamedType | None = types.get(type_name)
    walked: list[str] = []
    for key in path:
        if not isinstance(current, ObjectType):
            return ""
        by_wire = {current.wire_name(name): expr for name, expr in current.fields.items()}
        expr: TypeExpr | None = by_wire.get(key)
        if expr is None:
            where = ".".join(["$parent", *walked])
            return (
                f"{where}.{key}: {current.name} has no field read from the key '{key}'"
                f"{did_you_mean(key, list(by_wire))} (paths are upstream JSON keys: {', '.join(by_wire)})"
            )
        walked.append(key)
        current = None if expr.named in SCALARS else types.get(expr.named)
    return ""


def _plain(node: Node) -> Any:
    value = node.value
    if isinstance(value, dict):
        return {key: _plain(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_plain(child) for child in value]
    return value
