"""Loads integrations.yaml into a Config: every default applied, every problem of the file reported at once.

``load`` and ``loads`` never let a YAML, graphql-core or OS exception through: whatever is wrong with the
file ends up as a Problem (file, line, key path, message) in the one ConfigError raised.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar, get_args

from graphql import GraphQLSchema

from aggregator.config.auth import merge_headers, read_auth, read_forward_headers, read_headers
from aggregator.config.expose import read_expose, root_fields
from aggregator.config.grpc import read_grpc_service, type_grpc_operations
from aggregator.config.grpc_schema import Services
from aggregator.config.joins import read_joins
from aggregator.config.kinds import KINDS, OWN_KEYS
from aggregator.config.models import (
    SCALARS,
    Config,
    Expose,
    GrpcService,
    Integration,
    IntegrationType,
    NamedType,
    Operation,
    Secret,
    TlsFiles,
)
from aggregator.config.openapi_keys import read_openapi
from aggregator.config.operations import OperationScope
from aggregator.config.policies import Defaults, breaker_policy, read_defaults, read_server, retry_policy
from aggregator.config.tls import read_tls
from aggregator.config.tree import Node, Reader, child_path, read_yaml
from aggregator.config.typedefs import RESERVED_TYPE_NAMES, read_types
from aggregator.config.upstream_schema import SchemaProblem, schema_from_sdl_file
from aggregator.config.values import (
    boolean,
    byte_size,
    choice,
    duration,
    integer,
    is_name,
    non_empty_string,
    string,
)
from aggregator.errors import ConfigError, Problem

__all__ = ["load", "loads"]

T = TypeVar("T")

_TOP_KEYS = ("defaults", "types", "extend", "integrations", "server")
_INTEGRATION_KEYS = (
    "description",
    "type",
    "base_url",
    "auth",
    "headers",
    "timeout",
    "max_concurrency",
    "max_queue",
    "queue_timeout",
    "max_response_bytes",
    "retry",
    "circuit_breaker",
    "forward_headers",
    "follow_redirects",
    "schema",
    "proto",
    "proto_paths",
    "reflection",
    "tls",
    "expose",
    "openapi",
    "include",
    "exclude",
    "operations",
)
# Fields of the gateway's own Query type that an operation's field must not take.
RESERVED_FIELDS = frozenset({"integrationStats"})
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONCURRENCY = 100
# See bench/README.md: a five-field fan-out from 256 clients had up to ~1,200 calls waiting at once.
DEFAULT_MAX_QUEUE = 2000
DEFAULT_QUEUE_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_EXAMPLE = "integrations: {users: {base_url: http://127.0.0.1:9001/api, operations: {...}}}"


def load(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Load the config file at ``path``; raise ConfigError listing every problem in it.

    ``env`` replaces ``os.environ`` for ``${VAR}`` substitution; ``schema:``, ``proto:`` and ``tls:`` paths
    are relative to the file.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(source, 1, "", f"the file is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([Problem(source, 0, "", f"cannot read the config file: {reason}")]) from None
    # A symlinked config's paths are relative to the file it links to (the demo's root integrations.yaml).
    return loads(text, source, env=env, base_dir=Path(source).resolve().parent)


def loads(
    text: str,
    source: str = "<string>",
    *,
    env: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Load a config from ``text``; ``source`` names it in problems, ``base_dir`` anchors relative paths."""
    reader = Reader(source)
    root = read_yaml(text, reader, os.environ if env is None else env)
    config = _Loader(reader, Path(base_dir) if base_dir is not None else Path.cwd()).config(root)
    if reader.problems:
        raise ConfigError(sorted(reader.problems, key=lambda problem: problem.line))
    return config


def _get(
    reader: Reader, entries: Mapping[str, Node], key: str, parse: Callable[[object], T], fallback: T
) -> T:
    node = entries.get(key)
    return fallback if node is None else reader.read(node, parse, fallback)


class _Loader:
    def __init__(self, reader: Reader, base_dir: Path) -> None:
        self.reader = reader
        self.base_dir = base_dir
        # GraphQL field name -> the node that claimed it: every operation's field must be unique.
        self.claimed: dict[str, Node] = {}
        # `types:` and every type imported from OpenAPI documents so far.
        self.types: dict[str, NamedType] = {}

    def config(self, root: Node | None) -> Config:
        reader = self.reader
        if root is None or root.value is None:
            if not reader.problems:
                reader.report_at(1, "", f"the file is empty; it needs integrations:, e.g. {_EXAMPLE}")
            return Config(source=reader.source)
        top = reader.fields(root, _TOP_KEYS)
        # grpc integrations add the message and enum types of their protos, OpenAPI imports theirs.
        declared, joined = read_types(reader, top.get("types"))
        types: dict[str, NamedType] = dict(declared)
        self.types = types
        defaults = read_defaults(reader, top.get("defaults"))
        default_tls = read_tls(reader, defaults.tls, self.base_dir)
        integrations: dict[str, Integration] = {}
        entries = reader.mapping(top.get("integrations"))
        for iid, node in entries.items():
            integration = self.integration(iid, node, defaults, default_tls, types)
            if integration is not None:
                integrations[iid] = integration
        where = top.get("integrations")
        if isinstance(root.value, dict) and (where is None or not where.value):
            line = where.line if where is not None else 1
            reader.report_at(line, "integrations", f"no integrations; add at least one, e.g. {_EXAMPLE}")
        joins = read_joins(reader, joined, top.get("extend"), types, integrations)
        return Config(
            integrations=MappingProxyType(integrations),
            types=MappingProxyType(types),
            joins=MappingProxyType({name: MappingProxyType(fields) for name, fields in joins.items()}),
            server=read_server(reader, top.get("server"), self.base_dir),
            source=reader.source,
            secrets=frozenset(Secret(value) for value in reader.secrets),
        )

    def integration(
        self,
        iid: str,
        node: Node,
        defaults: Defaults,
        default_tls: TlsFiles | None,
        types: dict[str, NamedType],
    ) -> Integration | None:
        reader = self.reader
        if not is_name(iid) or iid.startswith("__"):
            reader.report(
                node,
                f"integration id '{iid}' is not a valid GraphQL name part (it starts field names like "
                f"{iid}_getUser): use letters, digits and _, not starting with a digit or __",
            )
        if not isinstance(node.value, dict):
            reader.report(
                node, "an integration is a mapping, e.g. {base_url: http://host/api, operations: ...}"
            )
            return None
        entries = reader.fields(node, _INTEGRATION_KEYS)
        kind = self._type(entries.get("type"))
        if kind is None:
            return None
        for key, owner in OWN_KEYS.items():
            if key in entries and key not in KINDS[kind].keys:
                reader.report(entries[key], f"{key}: is for {owner} integrations (type: {owner}); remove it")
        if "base_url" not in entries:
            example = "grpc://127.0.0.1:50051" if kind == "grpc" else "http://127.0.0.1:9001/api"
            reader.report_at(
                node.line,
                child_path(node.path, "base_url"),
                f"is required: the upstream's URL, e.g. {example}",
            )
        timeout = _get(reader, entries, "timeout", duration, defaults.timeout or DEFAULT_TIMEOUT)
        schema_path, schema = self._schema(entries.get("schema"), kind)
        grpc = self._grpc(node, entries, kind, types)
        expose = self._expose(entries.get("expose"), kind, schema, schema_path)
        imported = self._openapi(iid, entries, kind, timeout)
        forward_headers, forward_overrides_auth = read_forward_headers(reader, entries.get("forward_headers"))
        operations = self.operations(
            node,
            entries.get("operations"),
            OperationScope(iid, types, timeout, schema),
            kind,
            optional=expose is not None,
            imported=imported,
        )
        if grpc is not None and grpc[1] is not None:
            operations = type_grpc_operations(
                reader, operations, reader.mapping(entries.get("operations")), grpc[1], types
            )
        tls_node = entries.get("tls")
        return Integration(
            id=iid,
            base_url=_get(reader, entries, "base_url", KINDS[kind].base_url, ""),
            type=kind,
            description=_get(reader, entries, "description", string, ""),
            auth=read_auth(reader, entries.get("auth")),
            headers=MappingProxyType(
                merge_headers(defaults.headers, read_headers(reader, entries.get("headers")))
            ),
            timeout=timeout,
            max_concurrency=_get(
                reader,
                entries,
                "max_concurrency",
                integer(1),
                defaults.max_concurrency or DEFAULT_MAX_CONCURRENCY,
            ),
            max_queue=_get(
                reader,
                entries,
                "max_queue",
                integer(0),
                DEFAULT_MAX_QUEUE if defaults.max_queue is None else defaults.max_queue,
            ),
            queue_timeout=_get(
                reader, entries, "queue_timeout", duration, defaults.queue_timeout or DEFAULT_QUEUE_TIMEOUT
            ),
            max_response_bytes=_get(
                reader,
                entries,
                "max_response_bytes",
                byte_size,
                defaults.max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES,
            ),
            retry=retry_policy(reader, entries.get("retry"), defaults.retry),
            circuit_breaker=breaker_policy(reader, entries.get("circuit_breaker"), defaults.circuit_breaker),
            forward_headers=forward_headers,
            forward_overrides_auth=forward_overrides_auth,
            operations=MappingProxyType(operations),
            schema_path=schema_path,
            tls=read_tls(reader, tls_node, self.base_dir) if tls_node is not None else default_tls,
            grpc=grpc[0] if grpc is not None else None,
            expose=self._claim_exposed(iid, expose, entries.get("expose"), schema),
            follow_redirects=_get(
                reader,
                entries,
                "follow_redirects",
                boolean,
                True if defaults.follow_redirects is None else defaults.follow_redirects,
            ),
        )

    def _openapi(
        self, iid: str, entries: Mapping[str, Node], kind: IntegrationType, timeout: float
    ) -> dict[str, Operation] | None:
        """The operations imported by `openapi:` (their types joined to ``self.types``), or None."""
        if "openapi" not in KINDS[kind].keys:
            return None  # reported as a key of another kind
        taken = {*self.types, *SCALARS, *RESERVED_TYPE_NAMES}
        imported = read_openapi(
            self.reader, entries, integration=iid, base_dir=self.base_dir, timeout=timeout, taken=taken
        )
        if imported is None:
            return None
        self.types.update(imported.types)
        for operation in imported.operations.values():
            self._claim(operation.field, entries["openapi"])
        return imported.operations

    def _type(self, node: Node | None) -> IntegrationType | None:
        """The integration's type; ``None`` when it cannot be loaded (a bad type, reported)."""
        if node is None:
            return "rest"
        kind = self.reader.read(node, choice(*get_args(IntegrationType)), None)
        for known in KINDS:
            if kind == known:
                return known
        if kind is not None:
            supported = " or ".join(KINDS)
            self.reader.report(node, f"type {kind} is not supported yet; use {supported}")
        return None

    def _schema(self, node: Node | None, kind: IntegrationType) -> tuple[str | None, GraphQLSchema | None]:
        """The `schema:` SDL file of a graphql integration, relative to the config's folder, built."""
        if node is None or "schema" not in KINDS[kind].keys:
            return None, None
        relative = self.reader.read(node, non_empty_string, "")
        if not relative:
            return None, None
        path = self.base_dir / relative
        try:
            return str(path), schema_from_sdl_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            self.reader.report(node, f"cannot read the schema file {str(path)!r}: {reason}")
        except SchemaProblem as problem:
            # Each problem at its line of the SDL file (FILE:LINE), and once here, where it is named.
            self.reader.report(
                node,
                f"the schema file {relative} is not a schema a GraphQL server accepts: "
                f"{len(problem.issues)} problem(s), listed at their lines; fix them in that file",
            )
            for message, line in problem.issues:
                if line is None:
                    self.reader.report(node, message)
                else:
                    self.reader.problems.append(Problem(str(path), line, "", message))
        return str(path), None

    def _grpc(
        self, node: Node, entries: Mapping[str, Node], kind: IntegrationType, types: dict[str, NamedType]
    ) -> tuple[GrpcService | None, Services | None] | None:
        """A grpc integration's compiled protos (or reflection) and their services, else None."""
        if kind != "grpc":
            return None
        return read_grpc_service(self.reader, node, entries, self.base_dir)

    def _expose(
        self, node: Node | None, kind: IntegrationType, schema: GraphQLSchema | None, schema_path: str | None
    ) -> Expose | None:
        if node is not None and "expose" not in KINDS[kind].keys:
            self.reader.report(node, "expose: is for graphql integrations (type: graphql); remove it")
            return None
        return read_expose(self.reader, node, schema, Path(schema_path).name if schema_path else "")

    def _claim_exposed(
        self, iid: str, expose: Expose | None, node: Node | None, schema: GraphQLSchema | None
    ) -> Expose | None:
        """Take the gateway fields of the exposed root fields: a listed one that another field took is a
        problem; with ``all``, a document operation of the same name wins (the others are checked)."""
        if expose is None or node is None:
            return expose
        if not expose.all:
            items = (
                {item.value: item for item in reversed(node.value)} if isinstance(node.value, list) else {}
            )
            for name in expose.fields:
                self._claim(f"{iid}_{name}", items.get(name, node))
        elif schema is not None:
            for name in root_fields(schema):
                field = f"{iid}_{name}"
                owner = self.claimed.get(field)
                if owner is None or not owner.path.startswith(f"integrations.{iid}.operations."):
                    self._claim(field, node)
        return expose

    def operations(
        self,
        integration: Node,
        node: Node | None,
        scope: OperationScope,
        kind: IntegrationType,
        *,
        optional: bool = False,
        imported: Mapping[str, Operation] | None = None,
    ) -> dict[str, Operation]:
        """Hand-written operations, added to the imported ones; one with an imported id replaces it."""
        reader = self.reader
        entries = reader.mapping(node)
        operations: dict[str, Operation] = dict(imported or {})
        if not entries and (optional or imported is not None):
            return operations
        if not entries:
            line = node.line if node is not None else integration.line
            reader.report_at(
                line,
                child_path(integration.path, "operations"),
                "an integration needs operations:, a mapping of operation id -> operation",
            )
        for oid, op_node in entries.items():
            replaced = operations.get(oid) if imported is not None and oid in imported else None
            if not is_name(oid) and replaced is None:
                reader.report(
                    op_node,
                    f"operation id '{oid}' is not a valid GraphQL name part: use letters, digits and _, "
                    "not starting with a digit",
                )
            if not isinstance(op_node.value, dict):
                reader.report(
                    op_node, "an operation is a mapping, e.g. {method: GET, path: /users/{id}, params: ...}"
                )
                continue
            operation = KINDS[kind].read_operation(reader, oid, op_node, scope)
            field_node = reader.mapping(op_node).get("field")
            if replaced is not None:
                # The replacement keeps the imported field name unless it names its own.
                if field_node is None:
                    operation = replace(operation, field=replaced.field)
                if operation.field == replaced.field:
                    operations[oid] = operation
                    continue
                self.claimed.pop(replaced.field, None)
            self._claim(operation.field, field_node or op_node)
            operations[oid] = operation
        return operations

    def _claim(self, field: str, node: Node) -> None:
        """Take a GraphQL field name for one operation; a second taker is a problem.

        The name's syntax was checked where it came from: `field:`, or the integration and operation ids.
        """
        if field in RESERVED_FIELDS:
            self.reader.report(
                node, f"field name '{field}' is a field of the gateway itself; set field: to another name"
            )
        elif field in self.claimed:
            first = self.claimed[field]
            self.reader.report(
                node,
                f"GraphQL field '{field}' is already taken by {first.path} (line {first.line}); "
                "set field: to another name on one of them",
            )
        else:
            self.claimed[field] = node
