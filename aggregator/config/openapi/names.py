"""How names of an OpenAPI document become GraphQL names.

- Operation ids and component names: every run of characters outside ``[_0-9A-Za-z]`` becomes one
  ``_`` (``issues/list-for-repo`` -> ``issues_list_for_repo``, ``full-repository`` ->
  ``full_repository``); a result starting with a digit gets a leading ``_``.
- Property, parameter and enum value names: a name that already is a GraphQL name stays as it is.
  Otherwise a leading ``+`` is spelled ``plus_`` and a leading ``-`` ``minus_`` (``+1`` -> ``plus_1``,
  ``-1`` -> ``minus_1``: signs carry meaning, as in GitHub's reaction counts), then the rule above
  applies (``created-at`` -> ``created_at``, ``@type`` -> ``_type``, ``2fa`` -> ``_2fa``). A name that
  would start with ``__`` (reserved for introspection) keeps a single leading ``_``.
- Within one scope (the fields of a type, the arguments of a field, the values of an enum) distinct
  wire names always get distinct GraphQL names: wire names that are GraphQL names already keep them;
  the others, in document order, get ``_2``, ``_3``, ... appended when their name is taken.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = [
    "NOT_ENUM_VALUES",
    "Scope",
    "assign",
    "enum_value_name",
    "member_name",
    "operation_id_for",
    "sanitize",
]

_OUTSIDE = re.compile(r"[^_0-9A-Za-z]+")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_SIGNS = {"+": "plus_", "-": "minus_"}
# Enum values GraphQL forbids besides non-names.
NOT_ENUM_VALUES = frozenset({"true", "false", "null"})


def sanitize(text: str) -> str:
    """Runs of characters outside ``[_0-9A-Za-z]`` become one ``_``; never empty, never a leading digit."""
    name = _OUTSIDE.sub("_", text) or "_"
    return "_" + name if name[0].isdigit() else name


def member_name(wire: str) -> str:
    """The GraphQL name of a property, parameter or enum value, before collisions are resolved."""
    if _NAME.fullmatch(wire) and not wire.startswith("__"):
        return wire
    spelled = _SIGNS[wire[0]] + wire[1:] if wire[:1] in _SIGNS else wire
    name = sanitize(spelled)
    while name.startswith("__"):
        name = name[1:]
    return name


def operation_id_for(method: str, path: str) -> str:
    """The id of an operation the document gives none: ``get /pets/{petId}`` -> ``get_pets_petId``."""
    return sanitize(f"{method.lower()}{path.replace('{', '').replace('}', '')}").rstrip("_") or method


class Scope:
    """GraphQL names handed out within one scope; a taken name gets ``_2``, ``_3``, ... appended."""

    __slots__ = ("_taken",)

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._taken = set(reserved)

    def claim(self, name: str) -> str:
        unique, n = name, 1
        while unique in self._taken:
            n += 1
            unique = f"{name}_{n}"
        self._taken.add(unique)
        return unique

    def __contains__(self, name: object) -> bool:
        return name in self._taken


def assign(wires: Iterable[str], scope: Scope, rule: Callable[[str], str] | None = None) -> dict[str, str]:
    """Wire name -> GraphQL name for every wire name of one scope, by ``rule`` (``member_name``)."""
    rule = rule or member_name
    wanted = {wire: rule(wire) for wire in wires}
    names = {wire: scope.claim(name) for wire, name in wanted.items() if name == wire}
    for wire, name in wanted.items():
        if wire not in names:
            names[wire] = scope.claim(name)
    return {wire: names[wire] for wire in wanted}


def enum_value_name(value: str) -> str:
    """An enum value's GraphQL name: the member rule, and ``true``/``false``/``null`` get a ``_``."""
    name = member_name(value) if value else "_EMPTY"
    return "_" + name if name in NOT_ENUM_VALUES else name
