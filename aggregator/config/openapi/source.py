"""OpenAPI documents read from files or URLs, and ``$ref``s resolved across them.

A value of a document travels as an ``At``: the value, the document it stands in (relative ``$ref``s
resolve against that document's location) and its JSON pointer (what a problem names). Documents are
read once each; every resolved ``$ref`` is cached, so a schema referred to a thousand times is looked
up once and never copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import orjson
import yaml

__all__ = ["At", "Documents", "SpecProblem", "component_name", "escape"]

FETCH_TIMEOUT = 10.0
# Long enough for any real chain of refs to refs; a longer chain is a loop.
_MAX_REF_HOPS = 64
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SpecProblem(Exception):
    """Something wrong in an OpenAPI document: the document's location and the JSON pointer of the problem."""

    def __init__(self, message: str, location: str, pointer: str) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.pointer = pointer


def escape(key: str) -> str:
    """One JSON pointer segment (RFC 6901): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return key.replace("~", "~0").replace("/", "~1")


def _unescape(segment: str) -> str:
    return unquote(segment).replace("~1", "/").replace("~0", "~")


@dataclass(frozen=True, slots=True)
class Document:
    location: str  # a file path or an http(s) URL
    root: Any


@dataclass(frozen=True, slots=True)
class At:
    """A value inside a document and where it stands."""

    value: Any
    doc: Document
    pointer: str

    def child(self, key: str | int) -> At | None:
        """The value under ``key`` of a mapping (or index of a list), or None."""
        value = self.value
        if isinstance(value, dict):
            found = value.get(key)
            if found is None and isinstance(key, str) and key.isdigit():
                found = value.get(int(key))  # YAML reads `200:` as a number
            if found is None:
                return None
        elif isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
            found = value[key]
        else:
            return None
        return At(found, self.doc, f"{self.pointer}/{escape(str(key))}")

    def items(self) -> list[tuple[str, At]]:
        """A mapping's entries as (key, At); ``[]`` for anything else."""
        if not isinstance(self.value, dict):
            return []
        return [(str(k), At(v, self.doc, f"{self.pointer}/{escape(str(k))}")) for k, v in self.value.items()]

    def elements(self) -> list[At]:
        if not isinstance(self.value, list):
            return []
        return [At(v, self.doc, f"{self.pointer}/{i}") for i, v in enumerate(self.value)]

    def problem(self, message: str) -> SpecProblem:
        return SpecProblem(message, self.doc.location, self.pointer)


def component_name(at: At) -> str | None:
    """``Pet`` for a schema at ``/components/schemas/Pet`` (or Swagger 2's ``/definitions/Pet``)."""
    for prefix in ("/components/schemas/", "/definitions/"):
        if at.pointer.startswith(prefix):
            rest = at.pointer[len(prefix) :]
            if "/" not in rest:
                return _unescape(rest)
    return None


class Documents:
    """Every document one import reads: the main one and those its ``$ref``s name."""

    def __init__(self, *, timeout: float = FETCH_TIMEOUT) -> None:
        self._timeout = timeout
        self._documents: dict[str, Document] = {}
        self._resolved: dict[tuple[str, str], At] = {}

    def open(self, location: str) -> At:
        """The root of the document at ``location`` (a path or a URL); SpecProblem when unreadable."""
        document = self._documents.get(location)
        if document is None:
            document = Document(location, _parse(location, _read(location, self._timeout)))
            self._documents[location] = document
        return At(document.root, document, "")

    def deref(self, at: At) -> At:
        """``at`` itself, or where its ``$ref`` (and the ``$ref`` there, ...) leads."""
        hops = 0
        while isinstance(at.value, dict) and isinstance(ref := at.value.get("$ref"), str):
            key = (at.doc.location, ref)
            cached = self._resolved.get(key)
            if cached is None:
                cached = self._follow(at, ref)
                self._resolved[key] = cached
            at = cached
            hops += 1
            if hops > _MAX_REF_HOPS:
                raise at.problem(f"$ref {ref!r} leads into a loop of $refs")
        return at

    def _follow(self, at: At, ref: str) -> At:
        target, _, fragment = ref.partition("#")
        if target:
            location = _join(at.doc.location, target)
            try:
                root = self.open(location)
            except SpecProblem as problem:
                raise at.problem(f"$ref {ref!r}: {problem.message}") from None
        else:
            root = At(at.doc.root, at.doc, "")
        node: At | None = root
        if fragment and not fragment.startswith("/"):
            raise at.problem(f"$ref {ref!r}: the part after # must be a JSON pointer like #/components/x")
        for segment in fragment.split("/")[1:] if fragment else ():
            key = _unescape(segment)
            assert node is not None
            node = node.child(int(key) if isinstance(node.value, list) and key.isdigit() else key)
            if node is None:
                raise at.problem(f"$ref {ref!r} points to nothing: there is no {key!r} there")
        assert node is not None
        return node


def _is_url(location: str) -> bool:
    return urlsplit(location).scheme in ("http", "https")


def _join(base: str, target: str) -> str:
    if _is_url(base) or _is_url(target):
        return urljoin(base, target)
    return os.path.normpath(Path(base).parent / unquote(target))


def _read(location: str, timeout: float) -> bytes:
    if not _is_url(location):
        try:
            return Path(location).read_bytes()
        except OSError as exc:
            raise SpecProblem(
                f"cannot read the OpenAPI document: {exc.strerror or exc}", location, ""
            ) from None
    try:
        response = httpx.get(location, timeout=timeout, follow_redirects=True)
    except httpx.TimeoutException:
        raise SpecProblem(
            f"fetching the OpenAPI document timed out after {timeout:g}s", location, ""
        ) from None
    except httpx.HTTPError as exc:
        raise SpecProblem(f"cannot fetch the OpenAPI document: {exc}", location, "") from None
    if not response.is_success:
        raise SpecProblem(f"fetching the OpenAPI document answered HTTP {response.status_code}", location, "")
    return response.content


def _parse(location: str, content: bytes) -> Any:
    """JSON (by orjson: GitHub's 10 MB document in tens of milliseconds) or else YAML."""
    suffix = Path(urlsplit(location).path).suffix.lower()
    if suffix != ".yaml" and suffix != ".yml":
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            if suffix == ".json" or content.lstrip()[:1] in (b"{", b"["):
                raise SpecProblem(f"not valid JSON: {exc}", location, "") from None
    try:
        return yaml.load(content, Loader=_YamlLoader)  # a safe loader, C or Python
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecProblem(f"not valid YAML{where}: {problem}", location, "") from None
