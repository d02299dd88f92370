"""YAML to located nodes, and the reader that turns them into values while collecting Problems.

PyYAML's ``safe_load`` forgets where values came from and silently keeps the last of two duplicate keys,
so the file is composed into nodes and walked here: every value keeps its key path and line, duplicate
keys and syntax errors become Problems, and ``${VAR}`` references are substituted in every string.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

import yaml

from aggregator.config.values import Invalid, describe, did_you_mean, substitute_env
from aggregator.errors import Problem

__all__ = ["Node", "Reader", "child_path", "read_yaml"]

T = TypeVar("T")

# Aliases may expand a small file into an enormous tree ("billion laughs"); past this many nodes the
# file is refused instead of eating memory.
MAX_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(eq=False)
class Node:
    """One YAML value: a scalar, a ``dict[str, Node]`` or a ``list[Node]``, with where it stands.

    ``line`` is where problems about the value are reported (its key's line for mapping values),
    ``start`` the line the value itself starts on, ``style`` PyYAML's scalar style ('|' for a literal
    block), ``env`` the values substituted from the environment into it; ``broken`` marks a value
    already reported as unreadable, so that it is not reported twice.
    """

    value: object
    path: str
    line: int
    start: int
    style: str | None = None
    env: tuple[str, ...] = ()
    broken: bool = False


def child_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


class Reader:
    """Collects every problem of one file; reads nodes into values with fallbacks so that reading goes on."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        # Credential values, and every value from the environment used in auth or headers: what
        # redaction must hide.
        self.secrets: set[str] = set()

    def report_at(self, line: int, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, line, path, message))

    def report_in_document(self, node: Node, document: str, pointer: str, message: str) -> None:
        """A problem inside the document that ``node`` names (an OpenAPI file), at a JSON pointer."""
        self.problems.append(Problem(self.source, node.line, node.path, message, document, pointer))

    def report(self, node: Node, message: str) -> None:
        """A problem with ``node``; values that came from the environment are masked in the message."""
        for value in node.env:
            if value:
                message = message.replace(value, "***")
        self.report_at(node.line, node.path, message)

    def read(self, node: Node, parse: Callable[[object], T], fallback: T) -> T:
        """``parse(node.value)``, or report why not and return ``fallback``.

        A value substituted from the environment is always a string; when that string is refused, it is
        read again as YAML would read it unquoted, so ``max_concurrency: ${N}`` works.
        """
        if node.broken:
            return fallback
        try:
            return parse(node.value)
        except Invalid as exc:
            if node.env and isinstance(node.value, str):
                retyped = _retype(node.value)
                if retyped is not node.value:
                    try:
                        return parse(retyped)
                    except Invalid:
                        pass
            self.report(node, str(exc))
            return fallback

    def mapping(self, node: Node | None) -> dict[str, Node]:
        """The node's entries; ``{}`` (and a problem) when it is not a mapping. Null counts as empty."""
        if node is None or node.value is None or node.broken:
            return {}
        if isinstance(node.value, dict):
            return node.value
        self.report(node, f"must be a mapping (key: value), got {describe(node.value)}")
        return {}

    def fields(
        self,
        node: Node | None,
        allowed: Collection[str],
        misplaced: Mapping[str, str] | None = None,
    ) -> dict[str, Node]:
        """The node's entries with the keys in ``allowed``; every other key is reported.

        ``misplaced`` maps keys that are valid elsewhere to the message explaining where they belong.
        """
        entries = self.mapping(node)
        for key, child in entries.items():
            if key in allowed:
                continue
            if misplaced and key in misplaced:
                self.report_at(child.line, child.path, misplaced[key])
            else:
                hint = did_you_mean(key, allowed) or f"; allowed keys: {', '.join(allowed)}"
                self.report_at(child.line, child.path, f"unknown key '{key}'{hint}")
        return {key: child for key, child in entries.items() if key in allowed}

    def items(self, node: Node) -> list[Node]:
        """The node's items; ``[]`` (and a problem) when it is not a list."""
        if isinstance(node.value, list):
            return node.value
        if node.broken:
            return []
        self.report(node, f"must be a list ([a, b] or '- item' lines), got {describe(node.value)}")
        return []


def _retype(text: str) -> object:
    """``text`` as YAML reads an unquoted scalar: ``7`` an int, ``true`` a bool; else ``text`` itself."""
    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if tag == "tag:yaml.org,2002:str":
        return text
    try:
        return yaml.constructor.SafeConstructor().construct_object(yaml.ScalarNode(tag, text))
    except (yaml.YAMLError, ValueError):
        return text


class _TooLarge(Exception):
    pass


def read_yaml(text: str, reader: Reader, env: Mapping[str, str]) -> Node | None:
    """Compose ``text`` into located nodes; ``None`` (with a problem) when it cannot be read at all."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = exc.problem or exc.context or "unreadable YAML"
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            begun = exc.context_mark.line + 1
            if what.startswith("but "):  # "but found another document": the context is the first half
                what = f"{exc.context} (from line {begun}), {what}"
            else:
                what += f" ({exc.context} that starts on line {begun})"
        reader.report_at(
            line, "", f"YAML syntax error: {what}; check the indentation, colons and quotes here"
        )
        return None
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", 0)
        line = text.count("\n", 0, position) + 1
        reader.report_at(line, "", f"the file cannot be read as YAML: {exc}")
        return None
    if root is None:
        return None
    try:
        return _Builder(reader, env).build(root, "", root.start_mark.line + 1)
    except _TooLarge:
        reader.report_at(1, "", f"the file expands to more than {MAX_NODES} values (aliases?); simplify it")
        return None


class _Builder:
    def __init__(self, reader: Reader, env: Mapping[str, str]) -> None:
        self.reader = reader
        self.env = env
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0
        self.open: set[int] = set()  # ids of the nodes being built: a repeat is a recursive alias

    def build(self, node: yaml.Node, path: str, line: int) -> Node:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        start = node.start_mark.line + 1
        if id(node) in self.open:
            self.reader.report_at(
                line, path, "a YAML alias refers to a value containing itself; remove the loop"
            )
            return Node(None, path, line, start, broken=True)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return Node(self._mapping(node, path), path, line, start)
            if isinstance(node, yaml.SequenceNode):
                items = [
                    self.build(item, child_path(path, i), item.start_mark.line + 1)
                    for i, item in enumerate(node.value)
                ]
                return Node(items, path, line, start)
            return self._scalar(node, path, line)
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Node]:
        entries: dict[str, Node] = {}
        merged: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                for key, child in self._merge_sources(value_node, path, key_line).items():
                    merged.setdefault(key, child)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.reader.report_at(key_line, path, "keys must be plain names, not lists or mappings")
                continue
            key = key_node.value
            if key in entries:
                self.reader.report_at(
                    key_line,
                    child_path(path, key),
                    f"duplicate key '{key}' (first at line {entries[key].line}); YAML would silently keep "
                    "only the last one, so remove or rename one of them",
                )
                continue
            entries[key] = self.build(value_node, child_path(path, key), key_line)
        # Explicit keys win over keys merged in with `<<: *anchor`.
        return {**merged, **entries}

    def _merge_sources(self, node: yaml.Node, path: str, line: int) -> dict[str, Node]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Node] = {}
        if not all(isinstance(source, yaml.MappingNode) for source in sources):
            self.reader.report_at(line, path, "'<<' merges mappings only: write <<: *anchor or <<: [*a, *b]")
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                continue
            built = self.build(source, path, line).value
            if isinstance(built, dict):
                for key, child in built.items():
                    merged.setdefault(key, child)
        return merged

    def _scalar(self, node: yaml.Node, path: str, line: int) -> Node:
        start = node.start_mark.line + 1
        style = getattr(node, "style", None)
        try:
            value = self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.reader.report_at(line, path, f"cannot read this value: {problem}")
            return Node(None, path, line, start, style, broken=True)
        if not isinstance(value, str) or "${" not in value:
            return Node(value, path, line, start, style)
        try:
            text, used = substitute_env(value, self.env)
        except Invalid as exc:
            self.reader.report_at(line, path, str(exc))
            return Node("", path, line, start, style, broken=True)
        return Node(text, path, line, start, style, used)
