"""A gRPC integration's own keys: ``base_url: grpc://host:port``, ``proto:``/``proto_paths:`` or
``reflection: true``, and operations ``{rpc: package.Service/Method}``.

With ``proto:`` the files are compiled here and every operation is typed at load time (params from
the request message, the return type from the response message, query or mutation from the
method's ``idempotency_level``). With ``reflection:`` the upstream types them at start-up; until then
an operation is a mutation (unless ``kind:`` says otherwise), takes no arguments and returns JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from aggregator.config.grpc_schema import Services
from aggregator.config.models import GrpcMethod, GrpcService, NamedType, Operation
from aggregator.config.operations import OperationScope, _OperationReader, _select
from aggregator.config.protos import ProtoError, compile_protos
from aggregator.config.tree import Node, Reader
from aggregator.config.values import Invalid, boolean, non_empty_string

__all__ = ["grpc_url", "read_grpc_operation", "read_grpc_service", "type_grpc_operations"]

_OPERATION_KEYS = ("rpc", "select", "description", "timeout", "idempotent", "kind", "field")
_NOT_GRPC = {
    key: f"'{key}' is for rest and graphql operations; a grpc operation's arguments and type come "
    "from its rpc's request and response messages"
    for key in ("method", "path", "params", "returns", "document", "operation_name")
}
_RPC = re.compile(r"(?P<service>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)/(?P<method>[A-Za-z_]\w*)")
_EXAMPLE_URL = "grpc://127.0.0.1:50051"


def grpc_url(value: object) -> str:
    """``grpc://host:port`` (plaintext) or ``grpcs://host:port`` (TLS), nothing after the port."""
    text = non_empty_string(value)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f"is not a valid URL ({exc}); write it like {_EXAMPLE_URL}") from None
    if parts.scheme not in ("grpc", "grpcs"):
        got = f"'{parts.scheme}://'" if parts.scheme else "no scheme"
        raise Invalid(f"must be a grpc:// or grpcs:// (TLS) URL (got {got}); write it like {_EXAMPLE_URL}")
    if not parts.hostname or port is None or port == 0:
        raise Invalid(f"needs a host and a port; write it like {_EXAMPLE_URL}")
    if parts.username is not None or parts.password is not None:
        raise Invalid("must not contain credentials (user:password@); put them in auth:")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise Invalid(f"must not have a path, query or fragment; write it like {_EXAMPLE_URL}")
    return text


def _rpc(value: object) -> GrpcMethod:
    text = non_empty_string(value)
    match = _RPC.fullmatch(text.lstrip("/"))
    if match is None:
        raise Invalid(
            f"must name a method as package.Service/Method, e.g. inventory.v1.Inventory/GetItem; got {text!r}"
        )
    return GrpcMethod(match["service"], match["method"])


def read_grpc_operation(reader: Reader, oid: str, node: Node, scope: OperationScope) -> Operation:
    """A gRPC operation as written; ``type_grpc_operations`` types it from its method."""
    entries = reader.fields(node, _OPERATION_KEYS, _NOT_GRPC)
    common = _OperationReader(reader, oid, scope, entries)
    grpc = common.get("rpc", _rpc, None)
    if "rpc" not in entries:
        reader.report(node, "a grpc operation needs rpc:, e.g. rpc: inventory.v1.Inventory/GetItem")
    kind = common.kind("mutation") if "kind" in entries else None
    idempotent = common.idempotent(False) if "idempotent" in entries else None
    if grpc is not None:
        grpc = replace(grpc, kind=kind, idempotent=idempotent)
    return Operation(
        id=oid,
        method="POST",
        timeout=common.timeout(),
        idempotent=bool(idempotent),
        kind=kind or "mutation",
        field=common.field(),
        description=common.description(),
        select=common.get("select", _select, None),
        grpc=grpc,
    )


def read_grpc_service(
    reader: Reader, node: Node, entries: Mapping[str, Node], base_dir: Path
) -> tuple[GrpcService | None, Services | None]:
    """The integration's ``proto:`` compiled (or its ``reflection: true``) and its services."""
    reflection_node = entries.get("reflection")
    reflection = reader.read(reflection_node, boolean, False) if reflection_node is not None else False
    proto_node = entries.get("proto")
    if reflection and proto_node is not None:
        reader.report(proto_node, "give either proto: or reflection: true, not both")
        return None, None
    if reflection:
        if "proto_paths" in entries:
            reader.report(
                entries["proto_paths"], "proto_paths: is for proto: files; remove it with reflection"
            )
        return GrpcService(reflection=True), None
    if proto_node is None:
        reader.report(
            node,
            "a grpc integration needs proto: (a .proto file or a list, relative to this file) "
            "or reflection: true",
        )
        return None, None
    files = [
        (item, reader.read(item, non_empty_string, ""))
        for item in (reader.items(proto_node) if isinstance(proto_node.value, list) else [proto_node])
    ]
    paths_node = entries.get("proto_paths")
    include: list[Path] = []
    for item in reader.items(paths_node) if paths_node is not None else []:
        relative = reader.read(item, non_empty_string, "")
        if relative and not (base_dir / relative).is_dir():
            reader.report(
                item, f"no directory {str(base_dir / relative)!r}; proto_paths lists import folders"
            )
        elif relative:
            include.append(base_dir / relative)
    ok = True
    for item, relative in files:
        if not relative:
            ok = False
        elif not (base_dir / relative).is_file():
            reader.report(item, f"cannot read the proto file {str(base_dir / relative)!r}: no such file")
            ok = False
    if not ok or not files:
        return None, None
    try:
        descriptors = compile_protos([base_dir / relative for _, relative in files], include)
    except ProtoError as error:
        for message in error.messages:
            reader.report(proto_node, message)
        return None, None
    return GrpcService(descriptors=descriptors), Services(descriptors)


def type_grpc_operations(
    reader: Reader,
    operations: dict[str, Operation],
    nodes: Mapping[str, Node],
    services: Services,
    types: dict[str, NamedType],
) -> dict[str, Operation]:
    """``operations`` typed from ``services``; the message types are added to ``types``. An rpc that
    names no unary method of the protos is reported at its ``rpc:`` key."""
    typed = services.type_operations(operations.values(), types)
    for oid, problem in typed.problems.items():
        op_node = nodes[oid]
        key = "select" if problem.startswith("select:") else "rpc"
        reader.report(reader.mapping(op_node).get(key, op_node), problem)
    types.update(typed.types)
    return {oid: typed.operations.get(oid, op) for oid, op in operations.items()}
