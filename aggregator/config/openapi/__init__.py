"""OpenAPI import: the operations and types of an OpenAPI document (3.0, 3.1 or Swagger 2.0, JSON or
YAML, a file or a URL) as ordinary REST operations and config types of one integration.

``import_document`` reads the document, picks the operations by ``include``/``exclude`` and maps
them, and with them only the schemas they reach.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from aggregator.config.models import Operation
from aggregator.config.openapi.names import Scope, sanitize
from aggregator.config.openapi.operations import Found, find_operations, import_operation
from aggregator.config.openapi.schemas import EnumIR, FieldIR, ObjectIR, SchemaMapper, UnionIR
from aggregator.config.openapi.source import FETCH_TIMEOUT, Documents, SpecProblem

__all__ = [
    "EnumIR",
    "FieldIR",
    "Imported",
    "ObjectIR",
    "SpecProblem",
    "UnionIR",
    "import_document",
]


@dataclass
class Imported:
    """What one document gave: operations by id, the types they use, and what could not be imported."""

    operations: dict[str, Operation] = field(default_factory=dict)
    objects: dict[str, ObjectIR] = field(default_factory=dict)
    enums: dict[str, EnumIR] = field(default_factory=dict)
    unions: dict[str, UnionIR] = field(default_factory=dict)
    problems: list[SpecProblem] = field(default_factory=list)
    # Ids named in include/exclude that the document does not have, with the ids it has.
    unknown: list[str] = field(default_factory=list)
    known: tuple[str, ...] = ()
    # Operation ids named in include that cannot be sent, with why.
    unsupported: dict[str, str] = field(default_factory=dict)


def import_document(
    location: str,
    *,
    integration: str,
    include: Mapping[str, str | None] | None = None,
    exclude: Collection[str] = (),
    timeout: float = 10.0,
    taken: Collection[str] = (),
    fetch_timeout: float = FETCH_TIMEOUT,
) -> Imported:
    """Import the document at ``location`` for ``integration``.

    ``include`` maps the operation ids to import to their field name (None: derived from the id);
    None imports every operation. ``taken`` holds type names the import must not reuse.
    Problems of the document are collected in ``problems``, one per broken operation.
    """
    imported = Imported()
    documents = Documents(timeout=fetch_timeout)
    try:
        root = documents.open(location)
        found = find_operations(root, documents)
    except SpecProblem as problem:
        imported.problems.append(problem)
        return imported
    by_id: dict[str, Found] = {}
    for op in found:
        if op.id in by_id:
            imported.problems.append(op.at.problem(f"operationId {op.id!r} is used twice"))
        by_id.setdefault(op.id, op)
    imported.known = tuple(by_id)
    wanted = list(by_id) if include is None else list(include)
    imported.unknown = [oid for oid in (*wanted, *exclude) if oid not in by_id]
    mapper = SchemaMapper(documents, integration, taken)
    fields = Scope()
    for oid in wanted:
        found_op = by_id.get(oid)
        if found_op is None or oid in exclude:
            continue
        op = found_op
        if op.unsupported is not None:
            if include is not None:
                imported.unsupported[oid] = op.unsupported
            continue
        name = (include or {}).get(oid)
        field_name = fields.claim(f"{integration}_{sanitize(name or oid)}")
        try:
            imported.operations[oid] = import_operation(op, mapper, field=field_name, timeout=timeout)
        except SpecProblem as problem:
            imported.problems.append(problem)
    imported.objects, imported.enums, imported.unions = mapper.objects, mapper.enums, mapper.unions
    return imported
