"""The classic Petstore (OpenAPI 3.0) and a 3.1 document with references across files, imported whole
and served end to end: the gateway in front of Stoplight Prism mocking the same document."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway import Gateway, serve_gateway
from openapi_docs import OPENAPI_DIR, prism_mock
from servers import serve_asgi
from upstream_apps import Answer, RecordingUpstream


@contextlib.contextmanager
def imported(name: str) -> Iterator[tuple[Gateway, str]]:
    """The gateway importing tests/openapi/<name>.yaml with only base_url and openapi:, in front of
    Prism mocking that document (its examples, else data made from the schemas); and Prism's URL."""
    document = OPENAPI_DIR / f"{name}.yaml"
    with (
        prism_mock(document) as prism,
        serve_gateway(
            f"integrations:\n  {name}:\n    base_url: {prism}\n    openapi: {document}\n"
        ) as gateway,
    ):
        yield gateway, prism


@pytest.fixture(scope="module")
def petstore() -> Iterator[tuple[Gateway, str]]:
    with imported("petstore") as served:
        yield served


@pytest.fixture(scope="module")
def library() -> Iterator[tuple[Gateway, str]]:
    with imported("library") as served:
        yield served


def upstream(prism: str, method: str, path: str) -> Any:
    """What Prism answers the same request directly."""
    response = httpx.request(method, prism + path, timeout=30)
    assert response.is_success, response.text
    return response.json()


def data(gateway: Gateway, query: str) -> dict[str, Any]:
    body = gateway.query(query)
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]
    return result


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("{ petstore_listPets(limit: 2) { id name tag } }", "/pets?limit=2"),
        ('{ petstore_showPetById(petId: "7") { id name tag } }', "/pets/7"),
    ],
    ids=["list", "by-id"],
)
def test_a_petstore_query_answers_what_prism_answers(
    petstore: tuple[Gateway, str], query: str, path: str
) -> None:
    """listPets and showPetById return Prism's pets, field for field."""
    gateway, prism = petstore
    (got,) = data(gateway, query).values()
    assert got == upstream(prism, "GET", path)


def test_a_pet_is_created_and_the_bodiless_201_is_true(petstore: tuple[Gateway, str]) -> None:
    """createPets is a mutation taking PetInput as `input`; its 201 without a body answers true."""
    gateway, _ = petstore
    got = data(gateway, 'mutation { petstore_createPets(input: {id: 5, name: "Rex", tag: "dog"}) }')
    assert got == {"petstore_createPets": True}


def test_the_31_example_is_typed_field_by_field(library: tuple[Gateway, str]) -> None:
    """listBooks: a 64-bit id as sent, an enum by its GraphQL name, DateTime, a null from a type array,
    the discriminated union's member, `+1`/`-1` renamed and an open object as JSON."""
    gateway, prism = library
    # Prism is JavaScript: the example's id 2^53 + 1 reaches the gateway as 2^53.
    (sent,) = upstream(prism, "GET", "/books")
    got = data(
        gateway,
        """{ library_listBooks(tags: ["a", "b"], X_Trace_Id: "t-1") {
             id title genre published rating author { name books { id } }
             media { __typename ... on Paper { kind pages } ... on Ebook { megabytes } }
             counts { plus_1 minus_1 } extra } }""",
    )
    assert sent["id"] > 2**31
    assert got == {
        "library_listBooks": [
            {
                "id": sent["id"],
                "title": "Dune",
                "genre": "sci_fi",
                "published": "1965-08-01T00:00:00Z",
                "rating": None,
                "author": {"name": "Frank Herbert", "books": []},
                "media": {"__typename": "Paper", "kind": "paper", "pages": 412},
                "counts": {"plus_1": 7, "minus_1": 1},
                "extra": {"signed": True},
            }
        ]
    }


def test_a_31_book_is_added_from_its_input_type_with_an_enum(library: tuple[Gateway, str]) -> None:
    """addBook takes NewBookInput (the enum sent as its wire value) and answers the 201's Book."""
    gateway, _ = library
    got = data(
        gateway,
        """mutation { library_addBook(input: {title: "Emma", genre: classic, rating: 4.5}) {
             id genre media { __typename ... on Ebook { megabytes } } } }""",
    )
    assert got == {
        "library_addBook": {"id": 1, "genre": "classic", "media": {"__typename": "Ebook", "megabytes": 2.0}}
    }


def test_a_31_delete_answering_204_is_true(library: tuple[Gateway, str]) -> None:
    """removeBook's path parameter `book-id` is the BigInt argument `book_id`; its 204 answers true."""
    gateway, _ = library
    assert data(gateway, 'mutation { library_removeBook(book_id: "4294967296") }') == {
        "library_removeBook": True
    }


def test_an_imported_operation_runs_through_the_executor_like_a_hand_written_one() -> None:
    """Auth, retries, the breaker and stats apply to an imported operation: a 503 is retried with
    the bearer token on each attempt, then counted against the integration and its operation."""
    recorder = RecordingUpstream(answer=Answer(503, b'{"message": "busy"}'))
    with serve_asgi(recorder) as url:
        config = f"""
integrations:
  petstore:
    base_url: {url}/v1
    openapi: {OPENAPI_DIR / "petstore.yaml"}
    auth: {{type: bearer, token: pet-token}}
    retry: {{max_attempts: 2, initial_wait: 1ms, max_wait: 2ms}}
    circuit_breaker: {{threshold: 2, failure_rate: 0.5, reset_after: 60s}}
"""
        with serve_gateway(config) as gateway:
            failed = gateway.query('{ petstore_showPetById(petId: "7") { id } }')
            refused = gateway.query('{ petstore_showPetById(petId: "7") { id } }')
            stats = gateway.query(
                '{ integrationStats(id: "petstore") { circuitState windowFailures '
                "operations { operationId calls failures rejected } } }"
            )["data"]["integrationStats"]
    assert [(r.method, r.path, r.header("authorization")) for r in recorder.received] == [
        ("GET", "/v1/pets/7", ["Bearer pet-token"])
    ] * 2
    assert (failed["errors"][0]["extensions"]["code"], failed["errors"][0]["extensions"]["attempts"]) == (
        "UPSTREAM_HTTP_ERROR",
        2,
    )
    assert refused["errors"][0]["extensions"]["code"] == "CIRCUIT_OPEN"
    assert stats == [
        {
            "circuitState": "OPEN",
            "windowFailures": 2,
            "operations": [{"operationId": "showPetById", "calls": 2, "failures": 1, "rejected": 1}],
        }
    ]
