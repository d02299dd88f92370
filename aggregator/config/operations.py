"""One operation of an integration, REST or GraphQL upstream, with every default resolved.

REST: method, path and params, each param placed in the path, query, a header, a cookie or the body.
GraphQL upstream: a document whose variables are exactly the params, its kind taken from the document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from graphql import GraphQLSchema

from aggregator.config.documents import Document, DocumentProblem, Variable, parse_document
from aggregator.config.models import (
    IDEMPOTENT_METHODS,
    JSON_TYPE,
    SCALARS,
    FieldKind,
    HttpMethod,
    NamedType,
    Operation,
    Param,
    ParamLocation,
    TypeExpr,
)
from aggregator.config.tree import Node, Reader
from aggregator.config.typedefs import input_type, known_type
from aggregator.config.values import (
    Invalid,
    boolean,
    choice,
    cookie_name,
    describe,
    did_you_mean,
    duration,
    header_name,
    is_name,
    name,
    non_empty_string,
    string,
    type_expr,
)

__all__ = ["OperationScope", "read_graphql_operation", "read_rest_operation"]

T = TypeVar("T")

_COMMON_KEYS = ("description", "params", "returns", "timeout", "idempotent", "kind", "field")
_REST_KEYS = ("method", "path", *_COMMON_KEYS)
_GRAPHQL_KEYS = ("document", "operation_name", "select", *_COMMON_KEYS)
_NOT_REST = {
    key: f"'{key}' is for operations of graphql integrations (type: graphql); "
    "a rest operation has method, path, params"
    for key in ("document", "operation_name", "select")
}
_NOT_GRAPHQL = {
    key: f"'{key}' is for rest operations; "
    "a graphql operation sends its document: to the integration's base_url"
    for key in ("method", "path")
}
_METHODS: tuple[HttpMethod, ...] = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
_LOCATIONS: tuple[ParamLocation, ...] = ("path", "query", "header", "cookie", "body")
# What a header's or a cookie's name must be; other places take any non-empty name.
_WIRE_NAME_RULES: dict[str, Callable[[object], str]] = {"header": header_name, "cookie": cookie_name}
_NO_BODY_METHODS = frozenset({"GET", "HEAD"})
_QUERY_DEFAULT_METHODS = frozenset({"GET", "HEAD", "DELETE"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_BUILTIN_SCALARS = frozenset({"ID", "String", "Int", "Float", "Boolean"})


@dataclass(frozen=True)
class OperationScope:
    """What an operation inherits from its integration and the file."""

    integration: str
    types: Mapping[str, NamedType]
    timeout: float
    schema: GraphQLSchema | None = None


@dataclass
class _RawParam:
    """A param as written: its type and the nodes that say where and what it is."""

    name: str
    node: Node
    type: TypeExpr
    location_node: Node | None
    description: str
    wire_node: Node | None = None
    # A GraphQL operation's param typed with one of the upstream's own types (its document variable's).
    upstream: TypeExpr | None = None


def _method(value: object) -> HttpMethod:
    text = string(value).upper()
    for method in _METHODS:
        if method == text:
            return method
    raise Invalid(f"unknown HTTP method {value!r}; use one of {', '.join(_METHODS)}")


def _location(value: object) -> ParamLocation:
    for location in _LOCATIONS:
        if location == value:
            return location
    hint = did_you_mean(value, _LOCATIONS) if isinstance(value, str) else ""
    shown = repr(value) if isinstance(value, str) else describe(value)
    raise Invalid(f"in: must be one of {', '.join(_LOCATIONS)}; got {shown}{hint}")


def _kind(value: object) -> FieldKind:
    return "mutation" if choice("query", "mutation")(value) == "mutation" else "query"


def _path(value: object) -> str:
    text = string(value)
    if text and not text.startswith("/"):
        raise Invalid(f"must start with /, e.g. /users/{{id}}; got {text!r}")
    if "?" in text or "#" in text:
        raise Invalid("must not contain ? or #; send query values as params with in: query")
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise Invalid("must not contain spaces or control characters")
    if "{" in _PLACEHOLDER.sub("", text) or "}" in _PLACEHOLDER.sub("", text):
        raise Invalid(f"has an unmatched {{ or }} in {text!r}; placeholders look like {{id}}")
    for placeholder in _PLACEHOLDER.findall(text):
        if not placeholder or "/" in placeholder:
            raise Invalid(
                f"placeholder {{{placeholder}}} is not a param's name; write {{id}}, or {{repo-name}} "
                "with a param that has name: repo-name"
            )
    return text


def _field_name(value: object) -> str:
    text = name(value)
    if text.startswith("__"):
        raise Invalid(f"'{text}' starts with __, which GraphQL reserves for introspection")
    return text


def _select(value: object) -> str:
    text = non_empty_string(value)
    if not all(is_name(segment) for segment in text.split(".")):
        raise Invalid(
            f"must be a dotted path of field names into data, like product or product.reviews; got {text!r}"
        )
    return text


class _OperationReader:
    """The parts every operation shares: description, returns, timeout, field, kind and idempotency."""

    def __init__(self, reader: Reader, oid: str, scope: OperationScope, entries: Mapping[str, Node]) -> None:
        self.reader = reader
        self.oid = oid
        self.scope = scope
        self.entries = entries

    def get(self, key: str, parse: Callable[[object], T], default: T) -> T:
        node = self.entries.get(key)
        return default if node is None else self.reader.read(node, parse, default)

    def description(self) -> str:
        return self.get("description", string, "")

    def returns(self) -> TypeExpr:
        return self.get("returns", known_type(self.scope.types), JSON_TYPE)

    def timeout(self) -> float:
        return self.get("timeout", duration, self.scope.timeout)

    def field(self) -> str:
        return self.get("field", _field_name, f"{self.scope.integration}_{self.oid}")

    def kind(self, default: FieldKind) -> FieldKind:
        return self.get("kind", _kind, default)

    def idempotent(self, default: bool) -> bool:
        return self.get("idempotent", boolean, default)

    def raw_params(
        self,
        long_keys: Collection[str],
        misplaced: Mapping[str, str] | None = None,
        *,
        upstream_types: bool = False,
    ) -> list[_RawParam]:
        """The params as written; with ``upstream_types``, a type named neither in ``types:`` nor a
        scalar is taken as one of the upstream's own (checked against the document's variables)."""
        params: list[_RawParam] = []
        for pname, pnode in self.reader.mapping(self.entries.get("params")).items():
            if not is_name(pname) or pname.startswith("__"):
                self.reader.report(
                    pnode,
                    f"'{pname}' is not a valid param name: use letters, digits and _, "
                    "not starting with a digit",
                )
            type_node, location_node, description, wire_node = pnode, None, "", None
            if isinstance(pnode.value, dict):
                entries = self.reader.fields(pnode, long_keys, misplaced)
                if "type" not in entries:
                    self.reader.report(
                        pnode, 'a param in long form needs a type, e.g. {type: "ID!", in: query}'
                    )
                    continue
                type_node, location_node, wire_node = entries["type"], entries.get("in"), entries.get("name")
                if "description" in entries:
                    description = self.reader.read(entries["description"], string, "")
            upstream = _parsed_type(type_node.value) if upstream_types else None
            if upstream is not None and (upstream.named in SCALARS or upstream.named in self.scope.types):
                upstream = None
            if upstream is not None:
                # Until the upstream's schema is known, such a param is JSON of the same shape.
                ptype = _renamed(upstream, "JSON")
            else:
                ptype = self.reader.read(type_node, input_type(self.scope.types), JSON_TYPE)
            params.append(_RawParam(pname, type_node, ptype, location_node, description, wire_node, upstream))
        return params


def read_rest_operation(reader: Reader, oid: str, node: Node, scope: OperationScope) -> Operation:
    """A REST operation: method (default GET), path, params placed by the rules of the contract."""
    entries = reader.fields(node, _REST_KEYS, _NOT_REST)
    common = _OperationReader(reader, oid, scope, entries)
    method: HttpMethod = common.get("method", _method, "GET")
    path = common.get("path", _path, "")
    placeholders = set(_PLACEHOLDER.findall(path))
    raw_params = common.raw_params(("type", "in", "description", "name"))
    params = tuple(_place(reader, raw, method, path, placeholders) for raw in raw_params)
    _check_wire_names(reader, raw_params, params)
    for placeholder in sorted(placeholders - {param.wire for param in params if param.location == "path"}):
        example = (
            f'{{{placeholder}: "ID!"}}'
            if is_name(placeholder)
            else f'{{someName: {{type: "ID!", name: "{placeholder}"}}}}'
        )
        reader.report(
            entries["path"], f"path placeholder {{{placeholder}}} has no param; add params: {example}"
        )
    return Operation(
        id=oid,
        method=method,
        path=path,
        params=params,
        returns=common.returns(),
        returns_declared="returns" in entries,
        timeout=common.timeout(),
        idempotent=common.idempotent(method in IDEMPOTENT_METHODS),
        kind=common.kind("query" if method in ("GET", "HEAD") else "mutation"),
        field=common.field(),
        description=common.description(),
    )


def _place(reader: Reader, raw: _RawParam, method: HttpMethod, path: str, placeholders: set[str]) -> Param:
    """Where a REST param goes: its `in:`, else the path if it has {name}, else query or body by method.

    The name it is sent under is its `name:`, else its GraphQL name (``_`` as ``-`` for a header).
    """
    explicit = raw.wire_node is not None
    wire = raw.name
    if raw.wire_node is not None:
        wire = reader.read(raw.wire_node, non_empty_string, raw.name)
    in_path = wire in placeholders
    default: ParamLocation = "path" if in_path else "query" if method in _QUERY_DEFAULT_METHODS else "body"
    location = default
    if raw.location_node is not None:
        location = reader.read(raw.location_node, _location, default)
        where = raw.location_node
        if location == "path" and not in_path:
            reader.report(
                where,
                f"param '{raw.name}' is in: path but the path {path!r} has no {{{wire}}}; "
                "add it or use in: query",
            )
        elif in_path and location != "path":
            reader.report(where, f"the path has {{{wire}}}, so param '{raw.name}' must be in: path")
        elif location == "body" and method in _NO_BODY_METHODS:
            reader.report(where, f"a {method} request has no body; use in: query, or another method")
    if location == "header" and not explicit:
        wire = raw.name.replace("_", "-")
    named_as = _WIRE_NAME_RULES.get(location)
    if named_as is not None:
        try:
            named_as(wire)
        except Invalid as exc:
            reader.report(
                raw.wire_node or raw.location_node or raw.node,
                f"param '{raw.name}' cannot be a {location}: {exc}",
            )
    if location == "path" and in_path:
        if raw.type.is_list:
            reader.report(
                raw.node, f"path param '{raw.name}' must be a single value, not a list ({raw.type})"
            )
        elif not raw.type.non_null:
            reader.report(
                raw.node,
                f"path param '{raw.name}' must be non-null ({raw.type}!): "
                "the path cannot be built without it",
            )
    # No default: a body param the client leaves out is left out, one it gives as null is sent as null.
    return Param(raw.name, raw.type, location, raw.description, wire_name=wire)


def _check_wire_names(reader: Reader, raws: list[_RawParam], params: tuple[Param, ...]) -> None:
    """Two params sent under one name in one place would overwrite each other: refused."""
    taken: dict[tuple[str, str], str] = {}
    for raw, param in zip(raws, params, strict=True):
        key = param.wire.lower() if param.location == "header" else param.wire
        first = taken.setdefault((param.location, key), param.name)
        if first != param.name:
            reader.report(
                raw.wire_node or raw.node,
                f"params '{first}' and '{param.name}' are both sent as {param.location} {param.wire!r}; "
                "give one of them another name:",
            )


def read_graphql_operation(reader: Reader, oid: str, node: Node, scope: OperationScope) -> Operation:
    """A GraphQL upstream operation: document checked, variables matched to params, kind from the document."""
    entries = reader.fields(node, _GRAPHQL_KEYS, _NOT_GRAPHQL)
    common = _OperationReader(reader, oid, scope, entries)
    raw_params = common.raw_params(
        ("type", "description"),
        {
            key: f"'{key}' is for rest params; "
            "a graphql param is always sent as the document's variable of that name"
            for key in ("in", "name")
        },
        upstream_types=True,
    )
    operation_name: str | None = common.get("operation_name", name, None)
    document = _document(reader, node, entries.get("document"), operation_name, scope.schema)
    select: str | None = common.get("select", _select, None)
    kind: FieldKind = "query"
    if document is not None:
        kind = document.kind
        _match_variables(reader, entries["document"], document, raw_params)
        select = _check_select(reader, entries.get("select"), document, select)
        operation_name = document.operation_name
    variables = document.variables if document is not None else {}
    params = []
    for raw in raw_params:
        variable = variables.get(raw.name)
        # The upstream's default is the argument's: `$first: Int = 2` shows as `first: Int = 2`.
        default = (variable.has_default, variable.default) if variable is not None else (False, None)
        params.append(
            Param(
                raw.name,
                raw.type,
                "body",
                raw.description,
                has_default=default[0],
                default=default[1],
                upstream_type=raw.upstream,
            )
        )
    return Operation(
        id=oid,
        method="POST",
        params=tuple(params),
        returns=common.returns(),
        returns_declared="returns" in entries,
        timeout=common.timeout(),
        idempotent=common.idempotent(kind == "query"),
        kind=common.kind(kind),
        field=common.field(),
        description=common.description(),
        document=_document_text(entries.get("document")),
        select=select,
        operation_name=operation_name,
    )


def _document_text(node: Node | None) -> str:
    return node.value if node is not None and isinstance(node.value, str) else ""


def _document(
    reader: Reader,
    node: Node,
    doc_node: Node | None,
    operation_name: str | None,
    schema: GraphQLSchema | None,
) -> Document | None:
    if doc_node is None:
        reader.report(
            node,
            "a graphql operation needs a document:, "
            "e.g. document: query Product($id: ID!) { product(id: $id) { id } }",
        )
        return None
    text = reader.read(doc_node, non_empty_string, "")
    if not text:
        return None
    try:
        return parse_document(text, operation_name, schema)
    except DocumentProblem as problem:
        # A block scalar (`document: |`) starts on the line after its key.
        first = doc_node.start + (1 if doc_node.style in ("|", ">") else 0)
        for message, line in problem.issues:
            reader.report_at(doc_node.line if line is None else first + line - 1, doc_node.path, message)
        return None


def _match_variables(reader: Reader, doc_node: Node, document: Document, params: list[_RawParam]) -> None:
    by_name = {raw.name: raw for raw in params}
    for var, variable in document.variables.items():
        raw = by_name.get(var)
        if raw is None:
            reader.report(doc_node, f'variable ${var} has no param; add params: {{{var}: "{variable.type}"}}')
        elif raw.upstream is not None:
            if str(raw.upstream).replace("!", "") != str(variable.type).replace("!", ""):
                reader.report(
                    raw.node,
                    f"names no type: '{raw.upstream.named}' is neither a scalar, a name in types: nor the "
                    f'type of ${var} ({variable.type}); declare the param as "{variable.type}"',
                )
        elif (mismatch := _mismatch(var, raw.type, variable)) is not None:
            reader.report(raw.node, mismatch)
    for raw in params:
        if raw.name not in document.variables:
            reader.report(
                raw.node,
                f"param '{raw.name}' is not a variable of the document; use it as ${raw.name} or remove it",
            )


def _parsed_type(text: object) -> TypeExpr | None:
    try:
        return type_expr(text)
    except Invalid:
        return None


def _renamed(expr: TypeExpr, name: str) -> TypeExpr:
    if expr.of is not None:
        return TypeExpr(of=_renamed(expr.of, name), non_null=expr.non_null)
    return TypeExpr(name=name, non_null=expr.non_null)


def _mismatch(var: str, param: TypeExpr, variable: Variable) -> str | None:
    """Why a param cannot feed its variable, when that is certain without the upstream's schema."""
    wanted = variable.type
    if (
        wanted.named in _BUILTIN_SCALARS
        and param.named != "JSON"
        and str(param).replace("!", "") != str(wanted).replace("!", "")
    ):
        return f'param type {param} does not match ${var}: {wanted}; declare the param as "{wanted}"'
    if wanted.non_null and not variable.has_default and not param.non_null:
        return f'${var} is required ({wanted}) but the param is optional ({param}); declare it as "{param}!"'
    return None


def _check_select(
    reader: Reader, select_node: Node | None, document: Document, select: str | None
) -> str | None:
    """The checked `select:`; when left out, the only root field if there is exactly one, else all of data."""
    if select is None or select_node is None:
        keys = document.root_keys()
        return keys[0] if keys is not None and len(keys) == 1 else None
    try:
        document.check_select(select)
    except DocumentProblem as problem:
        reader.report(select_node, str(problem))
    return select
