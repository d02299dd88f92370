"""Persisted queries, Apollo's automatic ones and trusted documents, against the served gateway."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from gateway import Directory, Gateway, serve_gateway
from node_clients import apollo_persisted
from servers import serve_asgi

from aggregator.config import loads
from aggregator.config.models import PersistedDocuments, ServerConfig
from aggregator.errors import ConfigError
from aggregator.server.app import create_app
from aggregator.server.persisted import PersistedQueries

GRAPHQL_RESPONSE = "application/graphql-response+json"
CONFIG = """
server: {{{server}}}
types:
  User: {{id: "ID!", name: String}}
integrations:
  users:
    base_url: {url}
    operations:
      getUser: {{path: "/users/{{id}}", params: {{id: "ID!"}}, returns: User}}
      createUser: {{method: POST, path: /users, params: {{name: "String!"}}, returns: User}}
"""
GET_USER = 'query GetUser { users_getUser(id: "1") { name } }'
CREATE_USER = 'mutation Create { users_createUser(name: "Lin") { id } }'
ADA = {"data": {"users_getUser": {"name": "Ada"}}}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha(text)}}


def code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_asgi(Directory().app) as url:
        yield url


@pytest.fixture(scope="module")
def serve(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Gateway]]:
    """Starts a gateway with the given `server:` block (and manifest file), once per module."""
    started: dict[str, Gateway] = {}
    with contextlib.ExitStack() as stack:

        def start(server: str, manifest: Any = None) -> Gateway:
            key = server + json.dumps(manifest)
            if key not in started:
                folder = tmp_path_factory.mktemp("gateway")
                if manifest is not None:
                    (folder / "manifest.json").write_text(json.dumps(manifest))
                config = CONFIG.format(server=server, url=upstream)
                started[key] = stack.enter_context(serve_gateway(config, base_dir=folder))
            return started[key]

        yield start


@pytest.fixture(scope="module")
def gateway(serve: Callable[..., Gateway]) -> Gateway:
    return serve("apq_cache_bytes: 1KiB")


def post(gateway: Gateway, body: dict[str, Any], accept: str = "application/json") -> httpx.Response:
    return gateway.http.post("/graphql", json=body, headers={"accept": accept})


def get(gateway: Gateway, params: dict[str, Any], accept: str = "application/json") -> httpx.Response:
    encoded = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    return gateway.http.get("/graphql", params=encoded, headers={"accept": accept})


SEND = {"POST": post, "GET": get}


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_an_unknown_hash_is_persisted_query_not_found(gateway: Gateway, method: str, accept: str) -> None:
    """A hash the gateway never saw gets PERSISTED_QUERY_NOT_FOUND with HTTP 200, uncached, as Apollo
    Server answers it (so Apollo's link sends the query next)."""
    text = f"{{ __typename }} # {method} {accept}"
    response = SEND[method](gateway, {"extensions": apq(text)}, accept)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(accept)
    assert response.headers["cache-control"] == "private, no-cache, must-revalidate"
    assert response.json() == {
        "errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]
    }


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_the_hash_with_its_query_registers_the_query(gateway: Gateway, method: str) -> None:
    """Hash and query run the query and register it: the hash alone then runs it, over POST and GET."""
    text = f"{GET_USER} # registered over {method}"
    assert SEND[method](gateway, {"query": text, "extensions": apq(text)}).json() == ADA
    assert post(gateway, {"extensions": apq(text)}).json() == ADA
    assert get(gateway, {"extensions": apq(text)}).json() == ADA


def test_a_hash_that_is_not_the_query_s_is_refused(gateway: Gateway) -> None:
    """A sha256Hash that is not the SHA-256 of the query is a 400 PERSISTED_QUERY_HASH_MISMATCH, and
    nothing is registered under it."""
    response = post(gateway, {"query": GET_USER, "extensions": apq("{ __typename }")})
    assert response.status_code == 400
    assert code(response) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert code(post(gateway, {"extensions": apq("{ __typename }")})) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "persisted",
    [{"version": 2, "sha256Hash": sha(GET_USER)}, {"sha256Hash": sha(GET_USER)}, "x", {"version": 1}],
    ids=["version-2", "no-version", "not-an-object", "no-hash"],
)
def test_a_malformed_persisted_query_extension_is_a_bad_request(gateway: Gateway, persisted: Any) -> None:
    """An unsupported version, or an extension without its fields, is a 400 BAD_REQUEST."""
    response = post(gateway, {"query": GET_USER, "extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400
    assert code(response) == "BAD_REQUEST"


def test_a_document_that_fails_validation_is_not_registered(gateway: Gateway) -> None:
    """Only a document that ran is kept: an invalid one gets its validation error, then not found."""
    text = "{ nope }"
    assert code(post(gateway, {"query": text, "extensions": apq(text)})) == "GRAPHQL_VALIDATION_FAILED"
    assert code(post(gateway, {"extensions": apq(text)})) == "PERSISTED_QUERY_NOT_FOUND"


def test_a_persisted_mutation_is_not_run_over_get(gateway: Gateway) -> None:
    """A registered mutation named by its hash over GET is still refused with 405."""
    post(gateway, {"query": CREATE_USER, "extensions": apq(CREATE_USER)})
    response = get(gateway, {"extensions": apq(CREATE_USER)})
    assert response.status_code == 405


def test_the_store_keeps_the_most_recently_used_documents(serve: Callable[..., Gateway]) -> None:
    """Over apq_cache_bytes, the least recently used document leaves first."""
    gateway = serve("apq_cache_bytes: 160")
    first, second, third = (f"{GET_USER} # {'x' * 40} {n}" for n in range(3))  # 94 bytes each
    for text in (first, second):
        post(gateway, {"query": text, "extensions": apq(text)})
    assert code(post(gateway, {"extensions": apq(first)})) == "PERSISTED_QUERY_NOT_FOUND"
    assert post(gateway, {"extensions": apq(second)}).json() == ADA
    post(gateway, {"query": third, "extensions": apq(third)})
    assert code(post(gateway, {"extensions": apq(second)})) == "PERSISTED_QUERY_NOT_FOUND"


def test_the_store_evicts_by_size_in_least_recently_used_order() -> None:
    """A lookup refreshes a document; a document larger than the whole store is not kept."""
    store = PersistedQueries(ServerConfig(apq_cache_bytes=10))
    store.register("a", "aaaa")
    store.register("b", "bbbb")
    assert store.resolve(None, {"persistedQuery": {"version": 1, "sha256Hash": "a"}}, None)[0] == "aaaa"
    store.register("c", "cccc")
    assert store.resolve(None, {"persistedQuery": {"version": 1, "sha256Hash": "a"}}, None)[0] == "aaaa"
    with pytest.raises(Exception, match="PersistedQueryNotFound"):
        store.resolve(None, {"persistedQuery": {"version": 1, "sha256Hash": "b"}}, None)
    store.register("d", "d" * 11)
    with pytest.raises(Exception, match="PersistedQueryNotFound"):
        store.resolve(None, {"persistedQuery": {"version": 1, "sha256Hash": "d"}}, None)


def test_without_a_store_persisted_queries_are_not_supported(serve: Callable[..., Gateway]) -> None:
    """apq_cache_bytes: 0 answers PERSISTED_QUERY_NOT_SUPPORTED (Apollo's link stops hashing) and
    still runs a query sent with its hash."""
    gateway = serve("apq_cache_bytes: 0")
    assert code(post(gateway, {"extensions": apq(GET_USER)})) == "PERSISTED_QUERY_NOT_SUPPORTED"
    assert post(gateway, {"query": GET_USER, "extensions": apq(GET_USER)}).json() == ADA
    assert code(post(gateway, {"extensions": apq(GET_USER)})) == "PERSISTED_QUERY_NOT_SUPPORTED"


# Apollo Client's persisted-query link, from npm --------------------------------------------------------


class Seen:
    """The gateway's app, recording each /graphql request it receives: method, query sent, hash sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, bool, bool]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> Any:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording, send)
        if scope["method"] == "GET":
            params: dict[str, Any] = dict(parse_qsl(scope["query_string"].decode()))
            params["extensions"] = json.loads(params.get("extensions", "{}"))
        else:
            params = json.loads(b"".join(chunks))
        hashed = "persistedQuery" in (params.get("extensions") or {})
        self.requests.append((scope["method"], bool(params.get("query")), hashed))


@pytest.fixture
def seen(upstream: str) -> Iterator[tuple[str, Seen]]:
    """A fresh gateway (an empty store) behind the recorder, and its /graphql URL."""
    recorder = Seen(create_app(loads(CONFIG.format(server="", url=upstream))))
    with serve_asgi(recorder, lifespan="on") as url:
        yield url + "/graphql", recorder


@pytest.mark.parametrize(
    ("get", "methods"),
    [(False, ["POST", "POST", "POST"]), (True, ["GET", "POST", "GET"])],
    ids=["post", "use-get-for-hashed-queries"],
)
def test_apollo_client_s_persisted_query_link_registers_then_sends_the_hash_only(
    seen: tuple[str, Seen], get: bool, methods: list[str]
) -> None:
    """Apollo's link: the first hash is not found and the link sends it again with the query; the
    second request sends the hash only and gets the data (hashes over GET with useGETForHashedQueries)."""
    url, recorder = seen
    outcome = apollo_persisted(url, '{ users_getUser(id: "1") { name } }', get=get)
    assert outcome.error is None, outcome
    user = {"__typename": "User", "name": "Ada"}
    assert outcome.results == [{"users_getUser": user}] * 2
    assert [(r["method"], r["sentQuery"], r["sentHash"]) for r in outcome.requests] == [
        (methods[0], False, True),
        (methods[1], True, True),
        (methods[2], False, True),
    ]
    assert [(r["status"], r["codes"]) for r in outcome.requests] == [
        (200, ["PERSISTED_QUERY_NOT_FOUND"]),
        (200, []),
        (200, []),
    ]
    assert recorder.requests == [
        (methods[0], False, True),
        (methods[1], True, True),
        (methods[2], False, True),
    ]


# Trusted documents -----------------------------------------------------------------------------------

MANIFESTS = {
    "apollo": {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": sha(GET_USER), "name": "GetUser", "type": "query", "body": GET_USER}],
    },
    "relay": {hashlib.md5(GET_USER.encode()).hexdigest(): GET_USER},  # Relay's own ids
    "codegen": {f"sha256:{sha(GET_USER)}": GET_USER},
}


def manifest_id(kind: str) -> str:
    return next(iter(MANIFESTS[kind])) if kind != "apollo" else sha(GET_USER)


@pytest.mark.parametrize("kind", MANIFESTS)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_manifest_document_is_run_by_its_document_id(
    serve: Callable[..., Gateway], kind: str, method: str
) -> None:
    """Apollo's, Relay's and GraphQL Codegen's manifests: `documentId` names a document, with or
    without the proposal's `sha256:` prefix."""
    gateway = serve("persisted_documents: {file: manifest.json}", MANIFESTS[kind])
    document_id = manifest_id(kind)
    assert SEND[method](gateway, {"documentId": document_id}).json() == ADA
    if kind != "relay":
        bare = document_id.removeprefix("sha256:")
        assert SEND[method](gateway, {"documentId": f"sha256:{bare}"}).json() == ADA
        assert SEND[method](gateway, {"documentId": bare}).json() == ADA


@pytest.mark.parametrize("kind", ["apollo", "codegen"])
def test_a_manifest_document_is_run_by_its_apq_hash(serve: Callable[..., Gateway], kind: str) -> None:
    """The persistedQuery extension's hash finds a manifest document: nothing to register first."""
    gateway = serve("persisted_documents: {file: manifest.json}", MANIFESTS[kind])
    assert post(gateway, {"extensions": apq(GET_USER)}).json() == ADA


def test_an_unknown_document_id_is_not_found(serve: Callable[..., Gateway]) -> None:
    """A documentId that names no document gets PERSISTED_QUERY_NOT_FOUND."""
    gateway = serve("persisted_documents: {file: manifest.json}", MANIFESTS["apollo"])
    assert code(post(gateway, {"documentId": "sha256:" + "0" * 64})) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [{"documentId": "x", "query": GET_USER}, {"documentId": 5}, {"documentId": ""}],
    ids=["with-query", "number", "empty"],
)
def test_a_malformed_document_id_is_a_bad_request(
    serve: Callable[..., Gateway], body: dict[str, Any]
) -> None:
    """documentId must be a non-empty string and comes without a query."""
    gateway = serve("persisted_documents: {file: manifest.json}", MANIFESTS["apollo"])
    response = post(gateway, body)
    assert response.status_code == 400
    assert code(response) == "BAD_REQUEST"


@pytest.fixture(scope="module")
def trusted_only(serve: Callable[..., Gateway]) -> Gateway:
    return serve("persisted_documents: {file: manifest.json, only: true}", MANIFESTS["apollo"])


@pytest.mark.parametrize(
    "body",
    [
        {"query": "{ __typename }"},
        {"query": "{ __typename }", "extensions": apq("{ __typename }")},
        {"query": GET_USER + " "},
    ],
    ids=["query-text", "apq-registration", "almost-the-document"],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_only_trusted_documents_are_served(trusted_only: Gateway, method: str, body: dict[str, Any]) -> None:
    """With only: true a document that is not the manifest's, sent as text or registered through
    APQ, is a 400 PERSISTED_QUERY_REQUIRED."""
    response = SEND[method](trusted_only, body, GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert code(response) == "PERSISTED_QUERY_REQUIRED"


@pytest.mark.parametrize(
    "body",
    [{"documentId": f"sha256:{sha(GET_USER)}"}, {"extensions": apq(GET_USER)}, {"query": GET_USER}],
    ids=["document-id", "apq-hash", "the-manifest-s-text"],
)
def test_trusted_documents_are_still_served(trusted_only: Gateway, body: dict[str, Any]) -> None:
    """With only: true the manifest's documents run, named by id or hash, or sent as their own text."""
    assert post(trusted_only, body).json() == ADA


def test_an_unknown_hash_is_not_found_when_only_trusted_documents_are_served(trusted_only: Gateway) -> None:
    """A hash outside the manifest is not found (and cannot be registered)."""
    assert code(post(trusted_only, {"extensions": apq("{ __typename }")})) == "PERSISTED_QUERY_NOT_FOUND"


# The config ------------------------------------------------------------------------------------------


def load_with_manifest(tmp_path: Path, manifest: str, block: str = "{file: docs.json}") -> Any:
    (tmp_path / "docs.json").write_text(manifest)
    text = f"server:\n  persisted_documents: {block}\n" + CONFIG.split("\n", 2)[2].format(url="http://h")
    return loads(text, "gw.yaml", base_dir=tmp_path)


@pytest.mark.parametrize("kind", MANIFESTS)
def test_the_manifest_is_loaded_relative_to_the_config_file(tmp_path: Path, kind: str) -> None:
    """Each manifest shape loads into id -> document, ids without their sha256: prefix."""
    config = load_with_manifest(tmp_path, json.dumps(MANIFESTS[kind]), "{file: docs.json, only: true}")
    assert config.server.persisted_documents == PersistedDocuments(
        file=str(tmp_path / "docs.json"),
        documents={manifest_id(kind).removeprefix("sha256:"): GET_USER},
        only=True,
    )


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ('{\n  "a": "{ __typename }",\n}', "is not JSON (trailing comma is not allowed); write it again"),
        ('{"a": "{ __typename"}', "document 'a' of the manifest"),
        ('{"format": "apollo-persisted-query-manifest", "version": 2}', "version 2; known:"),
        (
            '{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": 1}]}',
            "operation 0",
        ),
        ('{"a": 1}', "is not in a known shape"),
    ],
    ids=["json", "graphql", "version", "operation", "shape"],
)
def test_a_bad_manifest_is_a_config_error_naming_the_key(tmp_path: Path, manifest: str, message: str) -> None:
    """The problem names the config file, the `file:` key's line, the key and the manifest's trouble."""
    with pytest.raises(ConfigError) as refused:
        load_with_manifest(tmp_path, manifest)
    [problem] = refused.value.problems
    assert (problem.file, problem.line, problem.key) == ("gw.yaml", 2, "server.persisted_documents.file")
    assert message in problem.message


def test_a_malformed_manifest_s_line_is_given(tmp_path: Path) -> None:
    """For JSON that does not parse, the line within the manifest is named too."""
    with pytest.raises(
        ConfigError, match=r"write it again with the tool that made it \(line 2 of docs.json\)"
    ):
        load_with_manifest(tmp_path, '{\n  "a": "{ __typename }",\n}')
