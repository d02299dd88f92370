"""The operations of an OpenAPI document as REST operations of the gateway.

Each operation keeps the document's method and path; its parameters keep their wire names (the
GraphQL argument is named by names.py's member rule) and their ``style``/``explode``; a JSON request
body is one argument, ``input``, typed ``<Name>Input`` when its schema is an object (else ``JSON``);
the first 2xx answer with a body is the return type (``String`` for a text body), ``Boolean``
(true on success) when no 2xx answer has one.

Decisions where OpenAPI allows more than the gateway sends: operations whose request body is not
JSON (multipart, form or binary uploads) are left out — naming one of those in ``include`` is a
problem. ``trace`` operations are not imported. An operation without
``operationId`` gets one from its method and path (names.py, ``operation_id_for``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aggregator.config.models import (
    IDEMPOTENT_METHODS,
    HttpMethod,
    Operation,
    Param,
    ParamLocation,
    ParamStyle,
    TypeExpr,
)
from aggregator.config.openapi.names import Scope, assign, operation_id_for, sanitize
from aggregator.config.openapi.schemas import JSON, SchemaMapper
from aggregator.config.openapi.source import At, Documents

__all__ = ["Found", "find_operations", "import_operation"]

_METHODS: tuple[HttpMethod, ...] = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LOCATIONS: dict[str, ParamLocation] = {
    "path": "path",
    "query": "query",
    "header": "header",
    "cookie": "cookie",
}
_BODY_ARG = "input"
_BOOLEAN = TypeExpr(name="Boolean")
_STRING = TypeExpr(name="String")


@dataclass(frozen=True)
class Found:
    """One operation of the document before it is mapped: its id, method, path and where it stands."""

    id: str
    method: HttpMethod
    path: str
    at: At
    path_item: At
    # Why the gateway cannot send it, when it cannot (a non-JSON request body).
    unsupported: str | None = None


def find_operations(root: At, documents: Documents) -> list[Found]:
    """Every operation under ``paths``, in document order; SpecProblem when ``paths`` is unusable."""
    paths = root.child("paths")
    if paths is None:
        if "swagger" in root.value or "openapi" in root.value:
            return []
        raise root.problem("not an OpenAPI document: it has neither openapi: nor swagger: nor paths:")
    if not isinstance(paths.value, dict):
        raise paths.problem("paths must be a mapping of path -> path item")
    found: list[Found] = []
    for path, item in paths.items():
        item = documents.deref(item)
        if not isinstance(item.value, dict):
            raise item.problem("a path item must be a mapping of method -> operation")
        for method in _METHODS:
            op = item.child(method.lower())
            if op is None:
                continue
            if not isinstance(op.value, dict):
                raise op.problem("an operation must be a mapping")
            oid = op.value.get("operationId")
            if oid is not None and not (isinstance(oid, str) and oid):
                raise op.problem("operationId must be a non-empty string")
            found.append(
                Found(
                    oid or operation_id_for(method, path),
                    method,
                    path,
                    op,
                    item,
                    _unsupported(op, documents),
                )
            )
    return found


def import_operation(found: Found, mapper: SchemaMapper, *, field: str, timeout: float) -> Operation:
    """The gateway operation for ``found``; SpecProblem where the document is broken."""
    documents = mapper.documents
    raw = _parameters(found, documents)
    body = _request_body(found.at, documents)
    names = _argument_names(raw)
    hint = sanitize(found.id)
    params = [_param(wire, name, at, mapper, hint) for (wire, at), name in zip(raw, names, strict=True)]
    if body is not None:
        body_at, required = body
        name = _BODY_ARG if _BODY_ARG not in names else f"{_BODY_ARG}_body"
        btype = mapper.input(body_at, f"{hint}_body", required=required)
        if btype.is_list:  # only an object body can be one input type; anything else travels as JSON
            btype = TypeExpr(name="JSON", non_null=btype.non_null)
        params.append(Param(name, btype, "body", "The request body."))
    in_path = {wire for wire, at in raw if at.value["in"] == "path"}
    for placeholder in _PLACEHOLDER.findall(found.path):
        if placeholder not in in_path:
            raise found.at.problem(
                f"the path has {{{placeholder}}} but the operation has no path parameter of that name"
            )
    return Operation(
        id=found.id,
        method=found.method,
        path=found.path,
        params=tuple(params),
        returns=_returns(found, mapper, f"{hint}_response"),
        returns_declared=True,
        timeout=timeout,
        idempotent=found.method in IDEMPOTENT_METHODS,
        kind="query" if found.method in ("GET", "HEAD") else "mutation",
        field=field,
        description=_text(found.at.value.get("summary")) or _text(found.at.value.get("description")),
    )


def _argument_names(raw: list[tuple[str, At]]) -> list[str]:
    """The GraphQL names of the parameters, by the member rule; a wire name used again in another
    place (a query ``session`` and a cookie ``session``) has the place appended (``session_cookie``)."""
    scope = Scope()
    names = assign(dict.fromkeys(wire for wire, _ in raw), scope)
    seen: set[str] = set()
    found = []
    for wire, at in raw:
        found.append(scope.claim(f"{names[wire]}_{at.value['in']}") if wire in seen else names[wire])
        seen.add(wire)
    return found


def _param(wire: str, name: str, at: At, mapper: SchemaMapper, hint: str) -> Param:
    spec = at.value
    location = spec["in"]
    required = location == "path" or spec.get("required") is True
    type_hint = _component_name(at, "/components/parameters/") or f"{hint}_{name}"
    schema = at.child("schema")
    if schema is not None:
        ptype = mapper.input(schema, type_hint, required=required)
    elif "content" in spec:
        ptype = TypeExpr(name="JSON", non_null=required)
    else:  # Swagger 2: the schema's keys stand on the parameter itself
        ptype = mapper.input(at, type_hint, required=required)
    if location == "path" and (ptype.is_list or ptype.named == "JSON"):
        ptype = TypeExpr(name="String", non_null=True)
    style, explode = _style(spec, location)
    return Param(
        name,
        ptype,
        _LOCATIONS[location],
        _text(spec.get("description")),
        wire_name=wire,
        style=style,
        explode=explode,
    )


# Swagger 2's collectionFormat as OpenAPI 3's style and explode; csv is its default.
_COLLECTION_FORMATS: dict[str, tuple[ParamStyle, bool]] = {
    "csv": ("form", False),
    "multi": ("form", True),
    "ssv": ("spaceDelimited", False),
    "pipes": ("pipeDelimited", False),
}
_STYLES: tuple[ParamStyle, ...] = ("form", "simple", "spaceDelimited", "pipeDelimited", "deepObject")


def _style(spec: dict[str, Any], location: str) -> tuple[ParamStyle, bool]:
    """How a value is spelled: OpenAPI 3's ``style``/``explode`` with their defaults, or Swagger 2's
    ``collectionFormat``. Only query values have a choice; path, header and cookie values are ``simple``."""
    if location != "query":
        return "simple", False
    if "schema" not in spec and "content" not in spec:
        return _COLLECTION_FORMATS.get(str(spec.get("collectionFormat", "csv")), ("form", False))
    style: ParamStyle = next((s for s in _STYLES if s == spec.get("style")), "form")
    explode = spec.get("explode")
    return style, explode if isinstance(explode, bool) else style == "form"


def _parameters(found: Found, documents: Documents) -> list[tuple[str, At]]:
    """The operation's parameters merged over its path item's, keyed by (name, in)."""
    merged: dict[tuple[str, str], At] = {}
    for owner in (found.path_item, found.at):
        listed = owner.child("parameters")
        if listed is None:
            continue
        if not isinstance(listed.value, list):
            raise listed.problem("parameters must be a list")
        for item in listed.elements():
            param = documents.deref(item)
            spec = param.value
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or "in" not in spec:
                raise param.problem("a parameter needs name: and in:")
            if spec["in"] in ("body", "formData"):
                continue  # Swagger 2's body is the request body; formData makes the operation unsupported
            if spec["in"] not in _LOCATIONS:
                raise param.problem(f"in: must be path, query, header or cookie; got {spec['in']!r}")
            merged[(spec["name"], spec["in"])] = param
    return [(name, at) for (name, _), at in merged.items()]


def _request_body(op: At, documents: Documents) -> tuple[At, bool] | None:
    """The JSON schema of the request body and whether the body is required."""
    body = op.child("requestBody")
    if body is not None:
        body = documents.deref(body)
        schema = _json_schema(body.child("content"))
        if schema is None:
            return None
        return schema, body.value.get("required") is True
    for item in (op.child("parameters") or op).elements():
        param = documents.deref(item)
        if isinstance(param.value, dict) and param.value.get("in") == "body" and param.child("schema"):
            schema = param.child("schema")
            assert schema is not None
            return schema, param.value.get("required") is True
    return None


def _unsupported(op: At, documents: Documents) -> str | None:
    body = op.child("requestBody")
    if body is not None:
        content = documents.deref(body).child("content")
        if content is not None and content.value and _json_schema(content) is None:
            kinds = ", ".join(str(k) for k in content.value)
            return f"its request body is {kinds}, and only JSON bodies are sent"
    for item in (op.child("parameters") or op).elements():
        param = documents.deref(item).value
        if isinstance(param, dict) and param.get("in") == "formData":
            return "its request body is form data, and only JSON bodies are sent"
    return None


def _json_schema(content: At | None) -> At | None:
    """The schema of the JSON media type of a ``content`` map (``*/*`` counts as JSON)."""
    if content is None:
        return None
    for media, entry in content.items():
        kind = media.partition(";")[0].strip().lower()
        if kind == "application/json" or kind.endswith("+json") or kind == "*/*":
            return entry.child("schema") or At({}, entry.doc, entry.pointer)
    return None


def _returns(found: Found, mapper: SchemaMapper, hint: str) -> TypeExpr:
    responses = found.at.child("responses")
    if responses is None:
        return JSON
    success = sorted(
        (code, at) for code, at in responses.items() if code.startswith("2") or code.upper() == "2XX"
    )
    for _code, response in success:
        response = mapper.documents.deref(response)
        content = response.child("content")
        if content is not None and content.value:
            schema = _json_schema(content)
            if schema is not None:
                return mapper.output(schema, hint)
            return _STRING
        if isinstance(response.value, dict) and "schema" in response.value:  # Swagger 2
            schema = response.child("schema")
            assert schema is not None
            return mapper.output(schema, hint)
    return _BOOLEAN if success or found.method == "HEAD" else JSON


def _component_name(at: At, prefix: str) -> str | None:
    return (
        at.pointer[len(prefix) :]
        if at.pointer.startswith(prefix) and "/" not in at.pointer[len(prefix) :]
        else None
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
