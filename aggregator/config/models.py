"""The loaded configuration: frozen value objects with every default already applied.

Nothing downstream of the loader sees raw dicts, duration strings or unresolved defaults: an
Operation knows its final timeout, idempotency, GraphQL kind and where each param goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

HttpMethod = Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
ParamLocation = Literal["path", "query", "header", "cookie", "body"]
# How a query value is spelled (OpenAPI's `style`): form `a=1&a=2` (or `a=1,2` without explode),
# spaceDelimited `a=1 2`, pipeDelimited `a=1|2`, deepObject `a[k]=v`; path, header and cookie values
# are simple (a list's items joined by commas).
ParamStyle = Literal["form", "simple", "spaceDelimited", "pipeDelimited", "deepObject"]
Jitter = Literal["full", "equal", "none"]
IntegrationType = Literal["rest", "graphql", "grpc"]
FieldKind = Literal["query", "mutation"]

IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
DEFAULT_RETRY_ON: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
SCALARS: frozenset[str] = frozenset({"ID", "String", "Int", "Float", "Boolean", "JSON", "DateTime", "BigInt"})


def _frozen_map() -> Mapping[Any, Any]:
    return MappingProxyType({})


class Secret(str):
    """A string that hides itself: repr and format show ``***``; ``reveal()`` gives the value.

    Used for every credential so that an accidental log line or f-string cannot leak it.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class TypeExpr:
    """A GraphQL type expression: ``User``, ``[User!]!``. ``of`` is set for lists, ``name`` otherwise."""

    name: str | None = None
    of: TypeExpr | None = None
    non_null: bool = False

    def __str__(self) -> str:
        inner = f"[{self.of}]" if self.of is not None else str(self.name)
        return inner + ("!" if self.non_null else "")

    @property
    def named(self) -> str:
        """The innermost named type: ``User`` for ``[User!]!``."""
        return self.of.named if self.of is not None else str(self.name)

    @property
    def is_list(self) -> bool:
        return self.of is not None


JSON_TYPE = TypeExpr(name="JSON")


@dataclass(frozen=True)
class RetryBudget:
    """gRPC-style retry throttling: tokens start at max; a failure takes 1, a success gives back
    ``token_ratio``; retries are allowed only while more than half the tokens remain."""

    max_tokens: float = 10.0
    token_ratio: float = 0.1


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    initial_wait: float = 0.2
    max_wait: float = 5.0
    multiplier: float = 2.0
    jitter: Jitter = "full"
    retry_on: frozenset[int] = DEFAULT_RETRY_ON
    deadline: float | None = 30.0
    budget: RetryBudget | None = field(default_factory=RetryBudget)


@dataclass(frozen=True)
class BreakerPolicy:
    threshold: int = 5
    failure_rate: float = 0.5
    # Ten seconds, as Hystrix: a total outage reaches failure_rate 0.5 within half of it, whatever the
    # call rate, and a few bad seconds of a busy minute are still noticed.
    window: float = 10.0
    reset_after: float = 30.0
    half_open_max_calls: int = 1
    # That many failed attempts in a row open it whatever the window holds; None: the rule is off.
    consecutive_failures: int | None = 5
    # Upstream GraphQL errors whose extensions.code is listed count as breaker failures ("*": any).
    graphql_error_codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NoAuth:
    type: Literal["none"] = "none"


@dataclass(frozen=True)
class BearerAuth:
    token: Secret
    type: Literal["bearer"] = "bearer"


@dataclass(frozen=True)
class ApiKeyAuth:
    key: Secret
    header: str = "X-API-Key"
    location: Literal["header", "query", "cookie"] = "header"
    name: str = "api_key"
    type: Literal["api_key"] = "api_key"


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: Secret
    type: Literal["basic"] = "basic"


@dataclass(frozen=True)
class OAuth2Auth:
    token_url: str
    client_id: str
    client_secret: Secret
    scopes: tuple[str, ...] = ()
    client_auth: Literal["basic", "body"] = "basic"
    type: Literal["oauth2"] = "oauth2"


Auth = NoAuth | BearerAuth | ApiKeyAuth | BasicAuth | OAuth2Auth


@dataclass(frozen=True)
class Param:
    """An operation's argument: ``name`` in GraphQL, ``wire_name`` where it is sent.

    ``wire_name`` is the query key, the header or cookie name, the path placeholder or the body key;
    the loader always sets it (from ``name:``, else the GraphQL name, ``_`` turned into ``-`` for a header).
    """

    name: str
    type: TypeExpr
    location: ParamLocation
    description: str = ""
    wire_name: str = ""
    # The argument's GraphQL default when ``has_default`` (a JSON value; None is null). An optional
    # param without one is absent from the call when the client leaves it out.
    default: Any = None
    has_default: bool = False
    # A GraphQL upstream operation's param typed with the upstream's own type (``IssueState``): its
    # ``type`` is JSON of that shape until the upstream's schema is known and derives the type.
    upstream_type: TypeExpr | None = None
    # How a query value is spelled (OpenAPI's style and explode; see ParamStyle).
    style: ParamStyle = "form"
    explode: bool = True

    @property
    def required(self) -> bool:
        return self.type.non_null

    @property
    def wire(self) -> str:
        return self.wire_name or self.name


@dataclass(frozen=True)
class GrpcMethod:
    """A gRPC operation's method, and what its config declares about it (None: left to the proto)."""

    service: str  # full name, e.g. inventory.v1.Inventory
    method: str  # e.g. GetItem
    kind: FieldKind | None = None
    idempotent: bool | None = None

    @property
    def path(self) -> str:
        """The method's HTTP/2 path, as gRPC names it: ``/inventory.v1.Inventory/GetItem``."""
        return f"/{self.service}/{self.method}"


@dataclass(frozen=True)
class TlsFiles:
    """A ``tls:`` block, paths resolved: a private authority to trust, and a client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class GrpcService:
    """How a gRPC integration knows its services: a compiled ``proto:`` or server reflection."""

    # A serialized FileDescriptorSet (imports and comments included); empty with reflection.
    descriptors: bytes = b""
    reflection: bool = False


@dataclass(frozen=True)
class Operation:
    id: str
    method: HttpMethod = "GET"
    path: str = ""
    params: tuple[Param, ...] = ()
    returns: TypeExpr = JSON_TYPE
    timeout: float = 10.0
    idempotent: bool = True
    kind: FieldKind = "query"
    field: str = ""
    description: str = ""
    # GraphQL upstreams only: the document sent and the dotted path selected out of `data`.
    document: str = ""
    select: str | None = None
    operation_name: str | None = None
    # False when `returns` was left out (JSON): a GraphQL upstream with a known schema may derive it.
    returns_declared: bool = False
    # gRPC upstreams only: the method called.
    grpc: GrpcMethod | None = None


@dataclass(frozen=True)
class Expose:
    """`expose:` of a graphql integration: upstream root fields served as gateway fields
    ``<integration>_<field>``, the client's selection sent as the document."""

    fields: tuple[str, ...] = ()
    all: bool = False

    def covers(self, root_field: str) -> bool:
        return self.all or root_field in self.fields


@dataclass(frozen=True)
class Integration:
    id: str
    base_url: str
    type: IntegrationType = "rest"
    description: str = ""
    auth: Auth = field(default_factory=NoAuth)
    headers: Mapping[str, str] = field(default_factory=_frozen_map)
    timeout: float = 10.0
    max_concurrency: int = 100
    # Calls that may wait for a bulkhead slot, and for how long (seconds), before BULKHEAD_FULL.
    max_queue: int = 2000
    queue_timeout: float = 10.0
    max_response_bytes: int = 10 * 1024 * 1024
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    circuit_breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    forward_headers: tuple[str, ...] = ()
    # Lower-cased forwarded header names that win over the integration's own auth when both are set.
    forward_overrides_auth: frozenset[str] = frozenset()
    operations: Mapping[str, Operation] = field(default_factory=_frozen_map)
    # GraphQL upstreams only: the upstream's SDL file from `schema:`, resolved against the config's folder.
    schema_path: str | None = None
    # GraphQL upstreams only: `expose:`, the upstream root fields served without a document.
    expose: Expose | None = None
    # Same-origin 3xx answers are followed (at most 5 hops) unless this is False.
    follow_redirects: bool = True
    # The `tls:` block (its own, else the defaults'); None: the default trust store, no client certificate.
    tls: TlsFiles | None = None
    # gRPC upstreams only.
    grpc: GrpcService | None = None


@dataclass(frozen=True)
class ObjectType:
    """An object type; as a param's type it is also the input type ``<Name>Input``."""

    name: str
    fields: Mapping[str, TypeExpr]
    description: str = ""
    field_descriptions: Mapping[str, str] = field(default_factory=_frozen_map)
    # GraphQL field name -> the key it has in the upstream's JSON (`from:`), for renamed fields only.
    wire_names: Mapping[str, str] = field(default_factory=_frozen_map)
    # Field name -> the reason given by @deprecated.
    field_deprecations: Mapping[str, str] = field(default_factory=_frozen_map)
    # Names of the InterfaceTypes it implements.
    interfaces: tuple[str, ...] = ()
    # Field name -> its arguments, for fields that take some (an exposed upstream's; it applies them).
    field_args: Mapping[str, tuple[Param, ...]] = field(default_factory=_frozen_map)
    # An exposed upstream's type: the upstream answered the client's own selection, so a field is read
    # by its response key (aliases included), not by its name.
    forwarded: bool = False

    def wire_name(self, field_name: str) -> str:
        """The JSON key of ``field_name``: its ``from:``, else the field name itself."""
        return self.wire_names.get(field_name, field_name)


@dataclass(frozen=True)
class InterfaceType:
    """An interface: its fields, and the object types that implement it (``ObjectType.interfaces``).

    The concrete type of a value is the one its ``__typename`` names, as a GraphQL upstream sends it.
    """

    name: str
    fields: Mapping[str, TypeExpr]
    description: str = ""
    field_descriptions: Mapping[str, str] = field(default_factory=_frozen_map)
    field_deprecations: Mapping[str, str] = field(default_factory=_frozen_map)
    # Interfaces this interface implements.
    interfaces: tuple[str, ...] = ()
    # Field name -> its arguments, for fields that take some (an exposed upstream's; it applies them).
    field_args: Mapping[str, tuple[Param, ...]] = field(default_factory=_frozen_map)
    # An exposed upstream's type: the upstream answered the client's own selection, so a field is read
    # by its response key (aliases included), not by its name.
    forwarded: bool = False
    # ``__typename`` -> object type name, where the gateway renamed an upstream's type.
    mapping: Mapping[str, str] = field(default_factory=_frozen_map)


@dataclass(frozen=True)
class UnionType:
    """A union of object types. A value's concrete type is named by its ``__typename`` or, with a
    ``discriminator``, by ``mapping[value[discriminator]]`` (an OpenAPI discriminator)."""

    name: str
    types: tuple[str, ...]
    description: str = ""
    discriminator: str | None = None
    # Discriminator value -> object type name; a value not listed names the type of that name.
    mapping: Mapping[str, str] = field(default_factory=_frozen_map)
    # An OpenAPI oneOf/anyOf: a value whose discriminator (if any) names no member is the member whose
    # properties best match its keys.
    by_shape: bool = False


@dataclass(frozen=True)
class EnumValue:
    """One value of an enum: its GraphQL ``name`` and the ``value`` the upstream sends and receives
    (equal for a GraphQL upstream; an OpenAPI value that is not a GraphQL name differs)."""

    name: str
    value: str | int | float
    description: str = ""
    deprecation_reason: str | None = None


@dataclass(frozen=True)
class EnumType:
    """An enum: results are mapped from wire values to names, arguments from names to wire values."""

    name: str
    values: tuple[EnumValue, ...]
    description: str = ""


@dataclass(frozen=True)
class ScalarType:
    """A named custom scalar whose values pass through unchanged, both ways."""

    name: str
    description: str = ""
    specified_by: str | None = None


@dataclass(frozen=True)
class InputType:
    """An input object type under its own name (a GraphQL upstream's), usable as a param's type."""

    name: str
    fields: Mapping[str, TypeExpr]
    description: str = ""
    field_descriptions: Mapping[str, str] = field(default_factory=_frozen_map)
    # Field name -> its default (a JSON value), for the fields that declare one.
    field_defaults: Mapping[str, Any] = field(default_factory=_frozen_map)


# Every kind of named type the gateway's schema can hold besides the built-in scalars.
NamedType = ObjectType | InterfaceType | UnionType | EnumType | ScalarType | InputType


@dataclass(frozen=True)
class ParentValue:
    """``$parent.<path>``: the value at this path of upstream JSON keys in the parent object."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class FieldArgument:
    """``$args.<name>``: the joined field's own GraphQL argument of that name."""

    name: str


@dataclass(frozen=True)
class ConstantValue:
    """A constant argument value, as written in the config (plain JSON)."""

    value: Any


JoinValue = ParentValue | FieldArgument | ConstantValue


@dataclass(frozen=True)
class JoinBatch:
    """``batch:``: the keys of every parent at one level in one call to ``operation``, whose list param
    ``arg`` receives them; returned items are matched to parents by their ``key``."""

    integration: str
    operation: str
    arg: str
    key: str
    max_size: int = 100


@dataclass(frozen=True)
class Join:
    """A field of ``type_name`` resolved by another operation (``resolve:``), per parent or batched."""

    type_name: str
    field: str
    type: TypeExpr
    integration: str
    operation: str
    args: Mapping[str, JoinValue]
    # The joined field's own GraphQL arguments.
    params: tuple[Param, ...] = ()
    batch: JoinBatch | None = None
    # How many times this field may stand on one response path (cycles: User.posts -> Post.author ...).
    max_depth: int = 3
    description: str = ""
    source: str = ""
    line: int = 0

    @property
    def parent_key(self) -> tuple[str, ParentValue] | None:
        """The one ``$parent`` argument a batch sends as the key (the loader refuses other batches)."""
        found = [(name, value) for name, value in self.args.items() if isinstance(value, ParentValue)]
        return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class PersistedDocuments:
    """`server.persisted_documents`: the manifest's documents by id, and whether only they are served."""

    file: str
    documents: Mapping[str, str]
    only: bool = False


@dataclass(frozen=True)
class ServerConfig:
    graphiql: bool = True
    introspection: bool = True
    max_depth: int = 15
    max_aliases: int = 200
    max_body_bytes: int = 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    # Automatic persisted queries: the registered documents' total size (0: not supported).
    apq_cache_bytes: int = 16 * 1024 * 1024
    persisted_documents: PersistedDocuments | None = None
    max_query_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Config:
    integrations: Mapping[str, Integration] = field(default_factory=_frozen_map)
    types: Mapping[str, NamedType] = field(default_factory=_frozen_map)
    server: ServerConfig = field(default_factory=ServerConfig)
    # Type name -> field name -> the join that resolves it (from types: and extend:).
    joins: Mapping[str, Mapping[str, Join]] = field(default_factory=_frozen_map)
    source: str = "<memory>"
    # Every value that came from the environment into a credential or header: what redaction hides.
    secrets: frozenset[str] = frozenset()
