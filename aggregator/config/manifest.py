"""`server.persisted_documents`: the trusted documents' manifest, read and checked at load time.

Accepted, as the tools that make them write them:

- Apollo's ``generate-persisted-query-manifest``:
  ``{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "name", "type",
  "body"}]}``;
- Relay's persisted queries JSON and GraphQL Codegen's client-preset ``persisted-documents.json``:
  a flat ``{"<hash>": "<document>"}``.

Ids are taken as the file gives them (Relay's are md5 hashes, Apollo's and Codegen's sha256); an id
written ``sha256:<hex>``, as the GraphQL-over-HTTP persisted documents proposal prefixes them, is
kept without its prefix, and requests are looked up the same way. Every document must parse.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import orjson
from graphql import GraphQLError, parse

from aggregator.config.models import PersistedDocuments
from aggregator.config.tree import Node, Reader, child_path
from aggregator.config.values import boolean, describe, non_empty_string

__all__ = ["document_key", "read_persisted_documents"]

APOLLO_FORMAT = "apollo-persisted-query-manifest"
_KEYS = ("file", "only")
_SHAPES = (
    f'{{"format": "{APOLLO_FORMAT}", "version": 1, "operations": [{{"id": ..., "body": ...}}]}} '
    '(Apollo) or {"<hash>": "<document>", ...} (Relay, GraphQL Codegen)'
)


def document_key(document_id: str) -> str:
    """The key a document id is stored and looked up under: without a ``sha256:`` prefix."""
    return document_id.removeprefix("sha256:")


class _Refused(Exception):
    """The manifest cannot be used; ``line`` is where in the manifest, when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def read_persisted_documents(reader: Reader, node: Node | None, base_dir: Path) -> PersistedDocuments | None:
    """The `persisted_documents:` block: its manifest file (relative to the config's folder) loaded."""
    if node is None or node.value is None:
        return None
    if not isinstance(node.value, dict):
        reader.report(
            node,
            f"must be a mapping like {{file: persisted-documents.json, only: false}}, "
            f"got {describe(node.value)}",
        )
        return None
    entries = reader.fields(node, _KEYS)
    only = reader.read(entries["only"], boolean, False) if "only" in entries else False
    file_node = entries.get("file")
    if file_node is None:
        reader.report_at(
            node.line,
            child_path(node.path, "file"),
            "is required: the manifest of trusted documents, e.g. file: persisted-documents.json",
        )
        return None
    relative = reader.read(file_node, non_empty_string, "")
    if not relative:
        return None
    path = base_dir / relative
    try:
        documents = _load(path)
    except _Refused as refused:
        where = f" (line {refused.line} of {relative})" if refused.line else ""
        reader.report(file_node, f"{refused}{where}")
        return None
    return PersistedDocuments(file=str(path), documents=MappingProxyType(documents), only=only)


def _load(path: Path) -> dict[str, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _Refused(
            f"cannot read the manifest {str(path)!r}: {exc.strerror or exc}; write the path of the JSON "
            "file your persisted-documents tool wrote, relative to this config file"
        ) from None
    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Refused(
            f"the manifest {str(path)!r} is not JSON ({exc.msg}); write it again with the tool that made it",
            exc.lineno,
        ) from None
    documents = _documents(manifest, path)
    for key, body in documents.items():
        try:
            parse(body)
        except GraphQLError as error:
            raise _Refused(
                f"document {key!r} of the manifest {str(path)!r} is not GraphQL: {error.message}; "
                "generate the manifest again from the client's documents"
            ) from None
    return documents


def _documents(manifest: object, path: Path) -> dict[str, str]:
    """id -> document of a parsed manifest, in either shape."""
    if isinstance(manifest, dict) and "format" in manifest:
        if manifest.get("format") != APOLLO_FORMAT or manifest.get("version") != 1:
            raise _Refused(
                f"the manifest {str(path)!r} has format {manifest.get('format')!r} version "
                f"{manifest.get('version')!r}; known: {APOLLO_FORMAT!r} version 1, or {_SHAPES}"
            )
        operations = manifest.get("operations")
        if not isinstance(operations, list):
            raise _Refused(f"the manifest {str(path)!r} has no list of operations; expected {_SHAPES}")
        documents = {}
        for index, operation in enumerate(operations):
            if not (
                isinstance(operation, dict)
                and isinstance(operation.get("id"), str)
                and isinstance(operation.get("body"), str)
            ):
                raise _Refused(
                    f"operation {index} of the manifest {str(path)!r} needs a string 'id' and 'body', "
                    f"got {describe(operation)}"
                )
            documents[document_key(operation["id"])] = operation["body"]
        return documents
    if isinstance(manifest, dict) and all(isinstance(v, str) for v in manifest.values()):
        return {document_key(key): body for key, body in manifest.items()}
    raise _Refused(f"the manifest {str(path)!r} is not in a known shape; expected {_SHAPES}")
