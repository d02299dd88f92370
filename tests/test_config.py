"""The configuration contract: what integrations.yaml means once loaded, and how a bad file is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aggregator.config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    BreakerPolicy,
    Config,
    NoAuth,
    OAuth2Auth,
    Operation,
    RetryBudget,
    RetryPolicy,
    Secret,
    ServerConfig,
    TypeExpr,
    load,
    loads,
)
from aggregator.errors import ConfigError, Problem

GOOD = Path(__file__).parent / "configs" / "good"
TOKEN = "users-token-5f1c9a"


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return loads(textwrap.dedent(text), "test.yaml", env=env or {})


def problems_of(text: str, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env)
    return list(caught.value.problems)


def one_integration(body: str, env: dict[str, str] | None = None, defaults: str = "") -> Config:
    """A config with one integration `api` whose keys are ``body`` (indented under it)."""
    return parse(
        f"{defaults}\nintegrations:\n  api:\n    base_url: http://127.0.0.1:9001\n"
        + textwrap.indent(textwrap.dedent(body), "    "),
        env,
    )


def one_operation(body: str, env: dict[str, str] | None = None) -> Operation:
    config = one_integration("operations:\n  op:\n" + textwrap.indent(textwrap.dedent(body), "    "), env)
    return config.integrations["api"].operations["op"]


# --- the good path ------------------------------------------------------------------------------------


def test_the_contract_example_loads_with_every_value_resolved() -> None:
    """The full example of the contract loads, with durations, defaults and placements resolved."""
    config = load(GOOD / "contract_example.yaml", env={"USERS_TOKEN": TOKEN})
    users = config.integrations["users"]
    assert users.base_url == "http://127.0.0.1:9001/api"
    assert users.description == "User directory"
    assert users.auth == BearerAuth(token=Secret(TOKEN))
    assert dict(users.headers) == {"X-Client": "aggregator"}
    assert (users.timeout, users.max_concurrency) == (5.0, 100)
    assert users.retry == RetryPolicy(
        max_attempts=3,
        initial_wait=1.0,
        max_wait=10.0,
        multiplier=2.0,
        jitter="full",
        retry_on=frozenset({408, 429, 500, 502, 503, 504}),
        deadline=30.0,
    )
    assert users.circuit_breaker == BreakerPolicy(5, 0.5, 60.0, 30.0, 1)
    get_user, create_user = users.operations["getUser"], users.operations["createUser"]
    assert (get_user.method, get_user.path, get_user.timeout) == ("GET", "/users/{id}", 2.0)
    assert [(p.name, str(p.type), p.location) for p in get_user.params] == [
        ("id", "ID!", "path"),
        ("expand", "Boolean", "query"),
    ]
    assert (get_user.kind, get_user.idempotent, get_user.field) == ("query", True, "users_getUser")
    assert (create_user.kind, create_user.idempotent, create_user.timeout) == ("mutation", False, 5.0)
    assert [(p.name, str(p.type), p.location) for p in create_user.params] == [("input", "JSON!", "body")]
    assert str(create_user.returns) == "User"
    assert create_user.returns_declared
    assert {name: str(t) for name, t in config.types["User"].fields.items()} == {
        "id": "ID!",
        "name": "String",
        "email": "String",
        "address": "Address",
        "tags": "[String!]",
    }
    assert config.server == ServerConfig()
    assert config.secrets == {TOKEN}


def test_integration_inherits_every_default_it_does_not_set() -> None:
    """Timeout, retry, breaker, concurrency, headers and response size come from `defaults:`."""
    defaults = """
    defaults:
      timeout: 3s
      retry: {max_attempts: 4, jitter: none}
      circuit_breaker: {threshold: 7}
      max_concurrency: 12
      max_queue: 0
      queue_timeout: 250ms
      headers: {X-Client: gateway}
      max_response_bytes: 2MiB
    """
    api = one_integration("operations: {op: {path: /x}}", defaults=textwrap.dedent(defaults)).integrations[
        "api"
    ]
    assert (api.timeout, api.max_concurrency, api.max_response_bytes) == (3.0, 12, 2 * 1024 * 1024)
    assert (api.max_queue, api.queue_timeout) == (0, 0.25)
    assert (api.retry.max_attempts, api.retry.jitter) == (4, "none")
    assert api.circuit_breaker == BreakerPolicy(threshold=7)
    assert dict(api.headers) == {"X-Client": "gateway"}


def test_bulkhead_and_breaker_defaults_without_any_block() -> None:
    """No setting at all: 100 slots, a line of 2000 waiting up to 10s, run rule 5, window 10s."""
    api = one_integration("operations: {op: {path: /x}}").integrations["api"]
    assert (api.max_concurrency, api.max_queue, api.queue_timeout) == (100, 2000, 10.0)
    assert (api.circuit_breaker.consecutive_failures, api.circuit_breaker.window) == (5, 10.0)


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("1", 1), ("false", None)])
def test_consecutive_failures_takes_a_count_or_false(value: str, expected: int | None) -> None:
    """circuit_breaker.consecutive_failures: a run length, or false to turn the run rule off."""
    body = f"circuit_breaker: {{consecutive_failures: {value}}}\noperations: {{op: {{path: /x}}}}"
    assert one_integration(body).integrations["api"].circuit_breaker.consecutive_failures == expected


def test_integration_block_is_merged_key_by_key_over_the_defaults_block() -> None:
    """An integration's retry/circuit_breaker keys win; the keys it leaves out still come from defaults."""
    defaults = (
        "defaults: {retry: {max_attempts: 4, max_wait: 9s}, circuit_breaker: {threshold: 7, window: 5s}}"
    )
    api = one_integration(
        "retry: {max_wait: 2s}\ncircuit_breaker: {window: 1m}\noperations: {op: {path: /x}}",
        defaults=defaults,
    ).integrations["api"]
    assert (api.retry.max_attempts, api.retry.max_wait) == (4, 2.0)
    assert (api.circuit_breaker.threshold, api.circuit_breaker.window) == (7, 60.0)


def test_own_headers_replace_default_headers_of_the_same_name_ignoring_case() -> None:
    """`x-client` on the integration replaces `X-Client` from defaults; other default headers stay."""
    defaults = "defaults:\n  headers: {X-Client: gateway, X-Other: kept}"
    api = one_integration("headers: {x-client: mine}\noperations: {op: {path: /x}}", defaults=defaults)
    assert dict(api.integrations["api"].headers) == {"X-Other": "kept", "x-client": "mine"}


def test_no_retry_block_anywhere_means_a_single_attempt() -> None:
    """Without a retry block in the integration or the defaults, calls are not retried."""
    api = one_integration("operations: {op: {path: /x}}").integrations["api"]
    assert api.retry == RetryPolicy(max_attempts=1)


def test_retry_block_without_max_attempts_retries_three_times() -> None:
    """A retry block asks for retries even when it leaves max_attempts out."""
    api = one_integration("retry: {initial_wait: 100ms}\noperations: {op: {path: /x}}").integrations["api"]
    assert (api.retry.max_attempts, api.retry.initial_wait) == (3, 0.1)


def test_retry_budget_can_be_tuned_or_turned_off() -> None:
    """`budget:` takes max_tokens/token_ratio, or false for no retry budget."""
    tuned = one_integration("retry: {budget: {max_tokens: 20}}\noperations: {op: {path: /x}}")
    off = one_integration("retry: {budget: false}\noperations: {op: {path: /x}}")
    assert tuned.integrations["api"].retry.budget == RetryBudget(max_tokens=20.0)
    assert off.integrations["api"].retry.budget is None


@pytest.mark.parametrize(
    ("defaults", "integration", "operation", "expected"),
    [
        ("", "", "", 10.0),
        ("defaults: {timeout: 7s}", "", "", 7.0),
        ("defaults: {timeout: 7s}", "timeout: 3s", "", 3.0),
        ("defaults: {timeout: 7s}", "timeout: 3s", "timeout: 250ms", 0.25),
    ],
    ids=["built-in", "defaults", "integration", "operation"],
)
def test_attempt_timeout_is_the_most_specific_one_set(
    defaults: str, integration: str, operation: str, expected: float
) -> None:
    """operation.timeout > integration.timeout > defaults.timeout > 10s."""
    body = f"{integration}\noperations:\n  op:\n    path: /x\n    {operation}\n"
    config = one_integration(body, defaults=defaults)
    assert config.integrations["api"].operations["op"].timeout == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("2s", 2.0), ("1m", 60.0), ("1h", 3600.0), ("1.5s", 1.5), ("3", 3.0), ("0.5", 0.5)],
)
def test_durations_are_read_in_their_unit(text: str, seconds: float) -> None:
    """Durations take ms, s, m, h or a bare number of seconds."""
    assert (
        one_integration(f"timeout: {text}\noperations: {{op: {{path: /x}}}}").integrations["api"].timeout
        == seconds
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [("2048", 2048), ("512KiB", 512 * 1024), ("1MiB", 1024**2), ("10MB", 10 * 1000**2), ("3 KB", 3000)],
)
def test_byte_sizes_accept_numbers_and_units(text: str, size: int) -> None:
    """Byte sizes are integers or sizes with B/KB/MB/GB/KiB/MiB/GiB."""
    assert parse(f"server: {{max_body_bytes: {text}}}\n" + _MINIMAL).server.max_body_bytes == size


_MINIMAL = "integrations: {api: {base_url: 'http://h', operations: {op: {path: /x}}}}\n"


@pytest.mark.parametrize(
    ("method", "path", "param", "expected"),
    [
        ("GET", "/users/{id}", "id", "path"),
        ("GET", "/users", "id", "query"),
        ("HEAD", "/users", "id", "query"),
        ("DELETE", "/users", "id", "query"),
        ("POST", "/users", "id", "body"),
        ("PUT", "/users", "id", "body"),
        ("PATCH", "/users", "id", "body"),
        ("POST", "/users/{id}", "id", "path"),
    ],
)
def test_param_without_in_is_placed_by_path_then_method(
    method: str, path: str, param: str, expected: str
) -> None:
    """Without `in`: path if {name} is in the path, else query for GET/HEAD/DELETE and body for the rest."""
    operation = one_operation(f"method: {method}\npath: {path}\nparams: {{{param}: ID!}}")
    assert operation.params[0].location == expected


def test_param_long_form_sets_location_and_description() -> None:
    """`{type, in, description}` is the long form of a param."""
    operation = one_operation('params: {rid: {type: String, in: header, description: "request id"}}')
    param = operation.params[0]
    assert (param.name, str(param.type), param.location, param.description) == (
        "rid",
        "String",
        "header",
        "request id",
    )
    assert not param.required


@pytest.mark.parametrize(
    ("method", "explicit", "expected"),
    [
        ("GET", "", True),
        ("HEAD", "", True),
        ("OPTIONS", "", True),
        ("PUT", "", True),
        ("DELETE", "", True),
        ("POST", "", False),
        ("PATCH", "", False),
        ("POST", "idempotent: true", True),
        ("GET", "idempotent: false", False),
    ],
)
def test_idempotency_follows_the_method_unless_stated(method: str, explicit: str, expected: bool) -> None:
    """GET/HEAD/OPTIONS/PUT/DELETE are idempotent, POST/PATCH not; `idempotent:` overrides."""
    assert one_operation(f"method: {method}\npath: /x\n{explicit}").idempotent is expected


@pytest.mark.parametrize(
    ("method", "explicit", "expected"),
    [
        ("GET", "", "query"),
        ("HEAD", "", "query"),
        ("POST", "", "mutation"),
        ("DELETE", "", "mutation"),
        ("POST", "kind: query", "query"),
        ("GET", "kind: mutation", "mutation"),
    ],
)
def test_kind_follows_the_method_unless_stated(method: str, explicit: str, expected: str) -> None:
    """GET/HEAD become Query fields, other methods Mutation fields; `kind:` overrides."""
    assert one_operation(f"method: {method}\npath: /x\n{explicit}").kind == expected


def test_method_defaults_to_get_and_is_upper_cased() -> None:
    """No method means GET; `post` means POST."""
    assert one_operation("path: /x").method == "GET"
    assert one_operation("method: post\npath: /x").method == "POST"


def test_field_name_defaults_to_integration_and_operation_ids() -> None:
    """The GraphQL field is `<integration>_<operation>` unless `field:` renames it."""
    assert one_operation("path: /x").field == "api_op"
    assert one_operation("path: /x\nfield: userById").field == "userById"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("String", TypeExpr(name="String")),
        ("ID!", TypeExpr(name="ID", non_null=True)),
        ("[User!]", TypeExpr(of=TypeExpr(name="User", non_null=True))),
        ("[[Int]!]!", TypeExpr(of=TypeExpr(of=TypeExpr(name="Int"), non_null=True), non_null=True)),
        ("[ User ! ]", TypeExpr(of=TypeExpr(name="User", non_null=True))),
    ],
)
def test_returns_type_expressions_are_parsed(expression: str, expected: TypeExpr) -> None:
    """`returns` takes scalars, names from types: and list/non-null expressions of them."""
    config = parse(
        f"types: {{User: {{id: ID}}}}\n{_MINIMAL}".replace("path: /x", f"path: /x, returns: '{expression}'")
    )
    assert config.integrations["api"].operations["op"].returns == expected


def test_returns_defaults_to_json_and_says_it_was_not_declared() -> None:
    """Without `returns` an operation returns JSON, and the model records that it was left out."""
    operation = one_operation("path: /x")
    assert (str(operation.returns), operation.returns_declared) == ("JSON", False)


def test_types_may_refer_to_each_other_in_cycles() -> None:
    """`User.friends: [User]` and mutual references are valid GraphQL object types."""
    config = parse(
        "types:\n  User: {friends: '[User!]', team: Team}\n  Team: {members: '[User]', lead: User}\n"
        + _MINIMAL
    )
    assert str(config.types["User"].fields["friends"]) == "[User!]"
    assert str(config.types["Team"].fields["lead"]) == "User"


def test_type_fields_have_a_long_form_with_a_description() -> None:
    """A type field may be `{type: ..., description: ...}`."""
    config = parse("types:\n  User: {id: {type: 'ID!', description: the key}}\n" + _MINIMAL)
    assert str(config.types["User"].fields["id"]) == "ID!"
    assert config.types["User"].field_descriptions["id"] == "the key"


def test_server_section_is_read() -> None:
    """`server:` sets GraphiQL, introspection, limits and CORS origins."""
    server = parse(
        "server: {graphiql: false, introspection: false, max_depth: 5, max_aliases: 20, "
        "max_body_bytes: 512KiB, cors_origins: ['https://app.example.com', '*']}\n" + _MINIMAL
    ).server
    assert server == ServerConfig(False, False, 5, 20, 512 * 1024, ("https://app.example.com", "*"))


def test_max_response_bytes_and_forward_headers_are_read() -> None:
    """An integration takes a response size limit and the headers forwarded from the GraphQL request."""
    api = one_integration(
        "max_response_bytes: 1MiB\n"
        "forward_headers: [Authorization, X-Request-Id]\n"
        "operations: {op: {path: /x}}"
    ).integrations["api"]
    assert (api.max_response_bytes, api.forward_headers) == (1024**2, ("Authorization", "X-Request-Id"))


# --- environment substitution and secrets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${HOST}", {"HOST": "h1"}, "h1"),
        ("${HOST:-fallback}", {}, "fallback"),
        ("${HOST:-fallback}", {"HOST": ""}, "fallback"),
        ("${HOST:-fallback}", {"HOST": "h1"}, "h1"),
        ("${HOST}-${PORT:-80}", {"HOST": "h1"}, "h1-80"),
        ("${EMPTY}", {"EMPTY": ""}, ""),
    ],
)
def test_env_references_are_substituted_in_string_values(
    text: str, env: dict[str, str], expected: str
) -> None:
    """${VAR} reads the environment; ${VAR:-default} falls back when VAR is unset or empty."""
    api = one_integration(f'description: "{text}"\noperations: {{op: {{path: /x}}}}', env).integrations["api"]
    assert api.description == expected


def test_env_value_is_read_as_yaml_where_a_number_is_expected() -> None:
    """`max_concurrency: ${N}` takes the number that N holds."""
    api = one_integration("max_concurrency: ${N}\noperations: {op: {path: /x}}", {"N": "7"}).integrations[
        "api"
    ]
    assert api.max_concurrency == 7


def test_credentials_and_env_header_values_are_recorded_as_secrets() -> None:
    """Config.secrets holds env values used in auth and headers; literal header values are not secrets."""
    api = one_integration(
        """
        auth: {type: basic, username: "${USER}", password: "${PASS}"}
        headers: {X-Tenant: "t-${TENANT}", X-Client: aggregator}
        operations: {op: {path: /x}}
        """,
        {"USER": "svc-user", "PASS": "pa55word", "TENANT": "acme-42"},
    )
    assert api.secrets == {"svc-user", "pa55word", "acme-42"}
    headers = api.integrations["api"].headers
    assert isinstance(headers["X-Tenant"], Secret)
    assert headers["X-Tenant"].reveal() == "t-acme-42"
    assert not isinstance(headers["X-Client"], Secret)


def test_secrets_never_show_in_the_repr_of_the_config() -> None:
    """repr(config) shows *** for credentials, env header values and the recorded secrets."""
    config = one_integration(
        'auth: {type: bearer, token: "${TOKEN}"}\nheaders: {X-Key: "${KEY}"}\noperations: {op: {path: /x}}',
        {"TOKEN": TOKEN, "KEY": "header-key-77"},
    )
    assert TOKEN not in repr(config)
    assert "header-key-77" not in repr(config)
    assert "***" in repr(config)


def test_problems_never_show_a_value_from_the_environment() -> None:
    """A refused value that came from the environment is masked in the problem's message."""
    with pytest.raises(ConfigError) as caught:
        one_integration('timeout: "${T}"\noperations: {op: {path: /x}}', {"T": "bogus-secretish"})
    (problem,) = caught.value.problems
    assert problem.key == "integrations.api.timeout"
    assert "bogus-secretish" not in str(problem)
    assert "***" in problem.message


_OAUTH2 = "{type: oauth2, token_url: 'https://auth/token', client_id: me, client_secret: s"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("{type: none}", NoAuth()),
        ("none", NoAuth()),
        ("{type: bearer, token: t0k}", BearerAuth(token=Secret("t0k"))),
        ("{type: api_key, key: k3y}", ApiKeyAuth(key=Secret("k3y"))),
        ("{type: api_key, key: k3y, header: X-Key}", ApiKeyAuth(key=Secret("k3y"), header="X-Key")),
        ("{type: api_key, key: k3y, in: query}", ApiKeyAuth(key=Secret("k3y"), location="query")),
        (
            "{type: api_key, key: k3y, in: cookie, name: sid}",
            ApiKeyAuth(key=Secret("k3y"), location="cookie", name="sid"),
        ),
        (
            "{type: api_key, key: k3y, in: query, name: token}",
            ApiKeyAuth(Secret("k3y"), location="query", name="token"),
        ),
        ("{type: basic, username: me, password: pw}", BasicAuth(username="me", password=Secret("pw"))),
        (
            _OAUTH2 + ", scopes: [a, b]}",
            OAuth2Auth("https://auth/token", "me", Secret("s"), ("a", "b")),
        ),
        (
            _OAUTH2 + ", client_auth: body}",
            OAuth2Auth("https://auth/token", "me", Secret("s"), client_auth="body"),
        ),
    ],
)
def test_each_auth_type_is_read(auth: str, expected: object) -> None:
    """All five auth types load with their defaults (api_key header X-API-Key, query name api_key...)."""
    config = one_integration(f"auth: {auth}\noperations: {{op: {{path: /x}}}}")
    assert config.integrations["api"].auth == expected


def test_yaml_anchors_and_merge_keys_share_blocks() -> None:
    """`<<: *anchor` merges a shared block; the integration's own keys win."""
    config = parse(
        """
        integrations:
          a: &base
            base_url: http://h
            timeout: 4s
            operations: {op: {path: /x}}
          b:
            <<: *base
            timeout: 2s
            operations: {other: {path: /y}}
        """
    )
    assert (config.integrations["a"].timeout, config.integrations["b"].timeout) == (4.0, 2.0)
    assert config.integrations["b"].base_url == "http://h"


# --- GraphQL upstreams ----------------------------------------------------------------------------------

_CATALOG = """
integrations:
  catalog:
    type: graphql
    base_url: http://127.0.0.1:9002/graphql
    {schema}
    operations:
      product:
        document: |
          query Product($id: ID!) {{ product(id: $id) {{ id title }} }}
        params: {{id: "ID!"}}
      addReview:
        document: |
          mutation AddReview($productId: ID!, $stars: Int!) {{
            addReview(productId: $productId, stars: $stars) {{ id }}
          }}
        params: {{productId: "ID!", stars: "Int!"}}
        select: addReview.id
      search:
        document: "query A {{ a }} query B {{ b {{ c }} d }}"
        operation_name: B
"""


def test_graphql_operation_takes_kind_and_idempotency_from_its_document() -> None:
    """Queries are Query fields and idempotent; mutations are Mutation fields and not idempotent."""
    operations = parse(_CATALOG.format(schema="")).integrations["catalog"].operations
    product, review = operations["product"], operations["addReview"]
    assert (product.kind, product.idempotent, product.method) == ("query", True, "POST")
    assert (review.kind, review.idempotent) == ("mutation", False)
    assert [(p.name, str(p.type), p.location) for p in review.params] == [
        ("productId", "ID!", "body"),
        ("stars", "Int!", "body"),
    ]
    assert product.document.startswith("query Product")
    assert product.operation_name == "Product"


@pytest.mark.parametrize(
    ("operation", "select"),
    [("product", "product"), ("addReview", "addReview.id"), ("search", None)],
    ids=["only-root-field", "explicit", "several-root-fields"],
)
def test_graphql_select_defaults_to_the_only_root_field(operation: str, select: str | None) -> None:
    """`select` is kept when given; else the only root field, else None (the whole data)."""
    operations = parse(_CATALOG.format(schema="")).integrations["catalog"].operations
    assert operations[operation].select == select


def test_graphql_operation_name_picks_one_of_several_operations() -> None:
    """`operation_name:` chooses the operation of a document that has several."""
    search = parse(_CATALOG.format(schema="")).integrations["catalog"].operations["search"]
    assert (search.operation_name, search.kind) == ("B", "query")


def test_graphql_schema_file_is_resolved_and_documents_are_validated_against_it(tmp_path: Path) -> None:
    """`schema:` is relative to the config file; a document that does not fit the schema is refused."""
    (tmp_path / "catalog.graphql").write_text(
        "type Query { product(id: ID!): Product a: Int b: B }\n"
        "type B { c: Int }\n"
        "type Product { id: ID! title: String }\n"
        "type Mutation { addReview(productId: ID!, stars: Int!): Review }\n"
        "type Review { id: ID! }\n"
    )
    config_file = tmp_path / "integrations.yaml"
    config_file.write_text(_CATALOG.format(schema="schema: catalog.graphql"))
    with pytest.raises(ConfigError) as caught:
        load(config_file)
    (problem,) = caught.value.problems
    assert problem.key == "integrations.catalog.operations.search.document"
    assert "Cannot query field 'd'" in problem.message
    config_file.write_text(_CATALOG.format(schema="schema: catalog.graphql").replace("} d }", "} }"))
    assert load(config_file).integrations["catalog"].schema_path == str(tmp_path / "catalog.graphql")


# --- refusals: every problem with its file, line and key -------------------------------------------------


def test_missing_file_is_one_problem_at_line_zero(tmp_path: Path) -> None:
    """A file that cannot be read is a ConfigError, not an OSError."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "nope.yaml")
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == (str(tmp_path / "nope.yaml"), 0)
    assert "cannot read" in problem.message


def test_every_problem_is_reported_in_line_order() -> None:
    """One ConfigError lists all the problems of the file, not only the first, sorted by line."""
    problems = problems_of(
        """
        integrations:
          api:
            base_url: ftp://h
            timeout: soon
            operations: {op: {path: /x, method: FETCH}}
        server: {max_depth: 0}
        """
    )
    assert [(p.line, p.key) for p in problems] == [
        (4, "integrations.api.base_url"),
        (5, "integrations.api.timeout"),
        (6, "integrations.api.operations.op.method"),
        (7, "server.max_depth"),
    ]


def test_problem_renders_as_file_line_key_message() -> None:
    """A problem prints as `FILE:LINE: key.path: message`, the form `aggregator check` shows."""
    (problem,) = problems_of(
        "integrations:\n  api: {base_url: http://h, timeout: 0s, operations: {op: {path: /x}}}"
    )
    assert str(problem).startswith(
        "test.yaml:2: integrations.api.timeout: must be a duration greater than zero"
    )


def api(*lines: str, operations: str = "operations: {op: {path: /x}}") -> str:
    """A config whose integration `api` starts on line 2; ``lines`` are its keys from line 4 on."""
    return "integrations:\n  api:\n    base_url: http://h\n" + "".join(
        f"    {line}\n" for line in (*lines, operations)
    )


def operation(*lines: str, graphql: bool = False) -> str:
    """A config whose operation `api.op` has ``lines`` as its keys, from line 6 on (7 for graphql)."""
    kind = ["type: graphql"] if graphql else []
    body = "".join(f"        {line}\n" for line in lines)
    return api(*kind, operations="operations:\n      op:\n" + body.rstrip("\n"))


OP = "integrations.api.operations.op"

# Each case: a config, the line and key path of the problem, and a piece of its message.
REFUSALS = [
    pytest.param("integrations:\n  api: base_url: http://h\n", 2, "", "YAML syntax error", id="syntax"),
    pytest.param(
        "integrations: {api: {base_url: http://h}\n", 2, "", "flow mapping that starts on line 1", id="brace"
    ),
    pytest.param("", 1, "", "the file is empty", id="empty-file"),
    pytest.param("integrations: {}\n", 1, "integrations", "no integrations", id="no-integrations"),
    pytest.param("integration: {}\n", 1, "integration", "did you mean 'integrations'?", id="top-level-typo"),
    pytest.param("integrations: [api]\n", 1, "integrations", "must be a mapping", id="list-for-mapping"),
    pytest.param(
        api() + "  api: {base_url: http://h}\n",
        5,
        "integrations.api",
        "duplicate key 'api' (first at line 2)",
        id="dup-id",
    ),
    pytest.param(
        api("retries: {max_attempts: 2}"),
        4,
        "integrations.api.retries",
        "did you mean 'retry'?",
        id="unknown-key",
    ),
    pytest.param(
        api("timeout: 5 seconds"), 4, "integrations.api.timeout", "is not a duration", id="bad-duration"
    ),
    pytest.param(
        api("timeout: -1"), 4, "integrations.api.timeout", "greater than zero", id="negative-duration"
    ),
    pytest.param(
        api().replace("http://h", "'http:///nohost'"),
        3,
        "integrations.api.base_url",
        "has no host",
        id="url-without-host",
    ),
    pytest.param(
        api().replace("http://h", "'file:///etc/passwd'"),
        3,
        "integrations.api.base_url",
        "http:// or https://",
        id="scheme",
    ),
    pytest.param(
        api().replace("    base_url: http://h\n", ""),
        2,
        "integrations.api.base_url",
        "is required",
        id="no-url",
    ),
    pytest.param(
        api().replace("http://h", "'http://${HOST}'"),
        3,
        "integrations.api.base_url",
        "HOST is not set",
        id="missing-env",
    ),
    pytest.param(
        api().replace("http://h", "'http://${HOST'"),
        3,
        "integrations.api.base_url",
        "no closing '}'",
        id="unclosed-env",
    ),
    pytest.param(
        api("type: grpc"), 3, "integrations.api.base_url", "must be a grpc:// or grpcs://", id="grpc-http-url"
    ),
    pytest.param(
        api("auth: {type: jwt}"), 4, "integrations.api.auth.type", "unknown auth type 'jwt'", id="auth-type"
    ),
    pytest.param(
        api("auth: {type: basic, username: me}"),
        4,
        "integrations.api.auth",
        "needs 'password'",
        id="auth-missing-key",
    ),
    pytest.param(
        api("auth: {type: bearer, token: t, password: p}"),
        4,
        "integrations.api.auth.password",
        "not a key of bearer auth",
        id="auth-misplaced-key",
    ),
    pytest.param(
        api("retry: {jitter: half}"), 4, "integrations.api.retry.jitter", "full, equal, none", id="jitter"
    ),
    pytest.param(
        api("retry: {retry_on: [500, 404]}"),
        4,
        "integrations.api.retry.retry_on[1]",
        "404 cannot be retried",
        id="4xx",
    ),
    pytest.param(
        api("retry: {max_attempts: 0}"), 4, "integrations.api.retry.max_attempts", "at least 1", id="attempts"
    ),
    pytest.param(
        api("retry: {multiplier: 0.5}"), 4, "integrations.api.retry.multiplier", "at least 1", id="multiplier"
    ),
    pytest.param(
        api("circuit_breaker: {failure_rate: 0}"),
        4,
        "integrations.api.circuit_breaker.failure_rate",
        "greater than 0 and at most 1",
        id="failure-rate",
    ),
    pytest.param(
        api("circuit_breaker: {threshold: 0}"),
        4,
        "integrations.api.circuit_breaker.threshold",
        "at least 1",
        id="threshold",
    ),
    pytest.param(
        api("circuit_breaker: {half_open_max_calls: 0}"),
        4,
        "integrations.api.circuit_breaker.half_open_max_calls",
        "at least 1",
        id="half-open-calls",
    ),
    pytest.param(
        api("circuit_breaker: {consecutive_failures: 0}"),
        4,
        "integrations.api.circuit_breaker.consecutive_failures",
        "at least 1, or false to turn the rule off, got the integer 0",
        id="consecutive-zero",
    ),
    pytest.param(
        api("circuit_breaker: {consecutive_failures: true}"),
        4,
        "integrations.api.circuit_breaker.consecutive_failures",
        "or false to turn the rule off, got the boolean true",
        id="consecutive-true",
    ),
    pytest.param(api("max_queue: -1"), 4, "integrations.api.max_queue", "at least 0", id="max-queue"),
    pytest.param(
        api("queue_timeout: 0s"), 4, "integrations.api.queue_timeout", "greater than zero", id="queue-timeout"
    ),
    pytest.param(
        "defaults: {max_queue: lots}\n" + api(),
        1,
        "defaults.max_queue",
        "must be a whole number",
        id="defaults-max-queue",
    ),
    pytest.param(
        api("max_concurrency: '100'"),
        4,
        "integrations.api.max_concurrency",
        "must be a whole number",
        id="str-for-int",
    ),
    pytest.param(
        api("max_concurrency: 0"), 4, "integrations.api.max_concurrency", "at least 1", id="concurrency"
    ),
    pytest.param(
        api().replace("api:", "my-api:"),
        2,
        "integrations.my-api",
        "not a valid GraphQL name part",
        id="integration-id",
    ),
    pytest.param(
        api(operations="operations: {get-user: {path: /x}}"),
        4,
        "integrations.api.operations.get-user",
        "not a valid GraphQL name part",
        id="operation-id",
    ),
    pytest.param(operation("method: FETCH"), 6, f"{OP}.method", "unknown HTTP method 'FETCH'", id="method"),
    pytest.param(
        operation("path: /users/{id}"), 6, f"{OP}.path", "placeholder {id} has no param", id="placeholder"
    ),
    pytest.param(
        operation("path: /users", "params: {id: {type: ID!, in: path}}"),
        7,
        f"{OP}.params.id.in",
        "the path '/users' has no {id}",
        id="path-param-not-in-path",
    ),
    pytest.param(
        operation("params: {id: {type: ID, in: cookies}}"),
        6,
        f"{OP}.params.id.in",
        "path, query, header, cookie, body",
        id="in",
    ),
    pytest.param(
        operation("params: {id: '[ID'}"), 6, f"{OP}.params.id", "bad type expression", id="type-expression"
    ),
    pytest.param(
        operation("returns: Usr"), 6, f"{OP}.returns", "names no type: 'Usr'", id="returns-unknown-type"
    ),
    pytest.param(
        operation("params: {who: Usr}"),
        6,
        f"{OP}.params.who",
        "names no type: 'Usr'",
        id="param-unknown-type",
    ),
    pytest.param(
        "types:\n  User: {id: ID, team: Team}\n" + _MINIMAL,
        2,
        "types.User.team",
        "names no type: 'Team'",
        id="type-ref",
    ),
    pytest.param(
        "types:\n  String: {id: ID}\n" + _MINIMAL,
        2,
        "types.String",
        "built-in scalar",
        id="type-scalar-clash",
    ),
    pytest.param(
        "types:\n  user-type: {id: ID}\n" + _MINIMAL,
        2,
        "types.user-type",
        "not a valid GraphQL",
        id="type-name",
    ),
    pytest.param(
        "types:\n  Node: {self: Node!}\n" + _MINIMAL,
        2,
        "types.Node.self",
        "loop of non-null fields",
        id="type-loop",
    ),
    pytest.param(
        api(operations="operations:\n      a: {path: /a, field: same}\n      b: {path: /b, field: same}"),
        6,
        "integrations.api.operations.b.field",
        "GraphQL field 'same' is already taken by integrations.api.operations.a.field (line 5)",
        id="duplicate-field",
    ),
    pytest.param(
        "integrations:\n  a: {base_url: http://h, operations: {b_c: {path: /x}}}\n"
        "  a_b: {base_url: http://h, operations: {c: {path: /x}}}\n",
        3,
        "integrations.a_b.operations.c",
        "GraphQL field 'a_b_c' is already taken",
        id="derived-field-clash",
    ),
    pytest.param(
        operation("document: |", "  query Q {", "    a(", "  }", graphql=True),
        10,
        f"{OP}.document",
        "GraphQL syntax error",
        id="graphql-syntax",
    ),
    pytest.param(
        operation("document: 'query Q($id: ID!) { a(id: $id) }'", graphql=True),
        7,
        f"{OP}.document",
        "variable $id has no param",
        id="graphql-variable-without-param",
    ),
    pytest.param(
        operation("document: 'query Q { a }'", "params: {id: ID}", graphql=True),
        8,
        f"{OP}.params.id",
        "not a variable of the document",
        id="graphql-param-without-variable",
    ),
    pytest.param(
        operation("document: 'subscription S { a }'", graphql=True),
        7,
        f"{OP}.document",
        "subscriptions are not supported",
        id="graphql-subscription",
    ),
    pytest.param(
        operation("document: 'query Q { a }'", "path: /x", graphql=True),
        8,
        f"{OP}.path",
        "'path' is for rest operations",
        id="graphql-path",
    ),
    pytest.param(
        api(
            "type: graphql",
            "schema: missing.graphql",
            operations="operations: {op: {document: 'query Q { a }'}}",
        ),
        5,
        "integrations.api.schema",
        "cannot read the schema file",
        id="graphql-schema-missing",
    ),
    pytest.param(
        api('headers: {X-Bad: "a\\r\\nX-Injected: 1"}'),
        4,
        "integrations.api.headers.X-Bad",
        "must not contain line breaks",
        id="header-injection",
    ),
    pytest.param(
        "server: {max_body_bytes: lots}\n" + _MINIMAL, 1, "server.max_body_bytes", "is not a size", id="size"
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), REFUSALS)
def test_bad_config_is_refused_with_line_key_and_reason(text: str, line: int, key: str, message: str) -> None:
    """Each kind of mistake is reported at its line and key path, with a message that says what is wrong."""
    problems = problems_of(text)
    found = [p for p in problems if p.line == line and p.key == key and message in p.message]
    assert found, "\n".join(map(str, problems))


def test_forward_headers_may_mark_a_header_as_overriding_auth() -> None:
    """A plain name is forwarded (auth wins a clash); {name, override_auth: true} wins over auth."""
    config = one_integration(
        "forward_headers: [X-Request-Id, {name: Authorization, override_auth: true}]\n"
        "operations: {ping: {path: /ping}}\n"
    )
    integration = next(iter(config.integrations.values()))
    assert integration.forward_headers == ("X-Request-Id", "Authorization")
    assert integration.forward_overrides_auth == frozenset({"authorization"})


def test_breaker_graphql_error_codes_are_read_as_a_set() -> None:
    """circuit_breaker.graphql_error_codes lists upstream error codes that count as failures."""
    config = one_integration(
        'circuit_breaker: {graphql_error_codes: [INTERNAL_SERVER_ERROR, "*"]}\n'
        "operations: {ping: {path: /ping}}\n"
    )
    breaker = next(iter(config.integrations.values())).circuit_breaker
    assert breaker.graphql_error_codes == frozenset({"INTERNAL_SERVER_ERROR", "*"})
