"""The demo upstreams (REST with its token endpoint, GraphQL catalog), served for real on loopback, the
runner that serves them for `aggregator demo`, and the gateway on the bundled demo config over them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway import Gateway, serve_config
from servers import serve_asgi

from aggregator.config import load
from aggregator.demo import CONFIG_PATH, GRPC_UPSTREAM, UPSTREAMS, running_upstreams
from aggregator.demo.catalog import INVENTORY_SCOPE, create_catalog_app
from aggregator.demo.tokens import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Grant, issue, verify
from aggregator.demo.upstreams import DEMO_API_KEY, DEMO_BASIC, DEMO_TOKEN, TOKEN_LIFETIME, create_rest_app

BEARER = {"Authorization": f"Bearer {DEMO_TOKEN}"}
CLIENT_CREDENTIALS = {"grant_type": "client_credentials"}


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    """A client for a fresh demo REST app (its own data), authenticated with the demo bearer token."""
    with serve_asgi(create_rest_app()) as url, httpx.Client(base_url=f"{url}/api", headers=BEARER) as client:
        yield client


@pytest.fixture
def anonymous() -> Iterator[httpx.Client]:
    """A client for a fresh demo REST app that sends no credentials."""
    with serve_asgi(create_rest_app()) as url, httpx.Client(base_url=f"{url}/api") as client:
        yield client


@pytest.fixture
def rest_root() -> Iterator[httpx.Client]:
    """A client for a fresh demo REST app at its root, where /oauth/token is."""
    with serve_asgi(create_rest_app()) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture
def catalog() -> Iterator[httpx.Client]:
    """A client for a fresh demo GraphQL catalog (its own data)."""
    with serve_asgi(create_catalog_app()) as url, httpx.Client(base_url=url) as client:
        yield client


def graphql(
    client: httpx.Client, query: str, headers: dict[str, str] | None = None, status: int = 200
) -> dict[str, Any]:
    """POST a query to the catalog, check the HTTP status, return the decoded body."""
    response = client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def inventory_token(lifetime: float = 60.0) -> str:
    return issue(Grant(DEMO_CLIENT_ID, frozenset({INVENTORY_SCOPE}), time.time() + lifetime))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users"),
        ("GET", "/users/1"),
        ("POST", "/posts"),
        ("GET", "/search"),
        ("GET", "/recommendations/1"),
    ],
)
def test_every_api_route_refuses_requests_without_credentials(
    anonymous: httpx.Client, method: str, path: str
) -> None:
    """No credentials, no data: 401 with a JSON error."""
    response = anonymous.request(method, path)
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong demo credentials"}


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"headers": BEARER}, id="bearer"),
        pytest.param({"headers": {"X-API-Key": DEMO_API_KEY}}, id="api-key-header"),
        pytest.param({"params": {"api_key": DEMO_API_KEY}}, id="api-key-query"),
        pytest.param({"auth": DEMO_BASIC}, id="basic"),
    ],
)
def test_each_demo_credential_is_accepted(anonymous: httpx.Client, credentials: dict[str, Any]) -> None:
    """Bearer token, API key (header or query) and basic auth each open the API."""
    assert anonymous.get("/users/1", **credentials).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "Basic !!not-base64"}],
)
def test_wrong_credentials_are_refused(anonymous: httpx.Client, headers: dict[str, str]) -> None:
    """A credential of the right kind but the wrong value is a 401."""
    assert anonymous.get("/users/1", headers=headers).status_code == 401


def test_a_user_has_an_address_tags_and_an_undeclared_extra_key(api: httpx.Client) -> None:
    """GET /users/{id} answers nested address, tags, and a key the demo config does not declare."""
    user = api.get("/users/1").json()
    assert user["name"] == "Ada Lovelace"
    assert user["address"]["city"] == "London"
    assert user["tags"] == ["admin", "math"]
    assert "internalScore" in user


def test_an_unknown_user_is_a_404(api: httpx.Client) -> None:
    """A missing user is a 404 with a JSON error."""
    response = api.get("/users/99")
    assert response.status_code == 404
    assert response.json() == {"error": "no user 99"}


def test_users_are_filtered_by_tag_and_limited(api: httpx.Client) -> None:
    """?tag= keeps users with that tag; ?limit= caps how many."""
    assert [u["id"] for u in api.get("/users", params={"tag": "math"}).json()] == ["1", "3", "4"]
    assert [u["id"] for u in api.get("/users", params={"tag": "math", "limit": 2}).json()] == ["1", "3"]


def test_a_non_integer_limit_is_a_400(api: httpx.Client) -> None:
    """Query parameters are validated."""
    assert api.get("/users", params={"limit": "many"}).status_code == 400


def test_a_users_posts_are_listed(api: httpx.Client) -> None:
    """GET /users/{id}/posts lists only that user's posts."""
    posts = api.get("/users/2/posts").json()
    assert {p["userId"] for p in posts} == {"2"}
    assert [p["title"] for p in posts] == ["The first bug", "Nanoseconds"]


def test_search_matches_text_and_every_repeated_tag(api: httpx.Client) -> None:
    """?q= matches title or body; repeated ?tags= must all be on a post."""
    result = api.get("/search", params={"q": "numbers", "tags": ["math", "theory"]}).json()
    assert result["total"] == 1
    assert [p["title"] for p in result["posts"]] == ["Computable numbers"]
    assert result["tags"] == ["math", "theory"]
    assert "users" not in result


def test_search_includes_users_when_asked(api: httpx.Client) -> None:
    """?includeUsers=true adds the users whose name matches."""
    result = api.get("/search", params={"q": "grace", "includeUsers": "true"}).json()
    assert [u["name"] for u in result["users"]] == ["Grace Hopper"]


def test_creating_a_post_answers_201_and_the_post_is_then_readable(api: httpx.Client) -> None:
    """POST /posts with body fields creates a post that GET /posts/{id} then returns."""
    created = api.post("/posts", json={"userId": "3", "title": "Morphogenesis", "tags": ["biology"]})
    assert created.status_code == 201
    post = created.json()
    assert post["title"] == "Morphogenesis"
    assert post["createdAt"].endswith("Z")
    assert created.headers["location"] == f"/api/posts/{post['id']}"
    assert api.get(f"/posts/{post['id']}").json() == post


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"userId": "1"}, 422, id="missing-title"),
        pytest.param({"userId": "99", "title": "t"}, 422, id="unknown-user"),
        pytest.param({"userId": "1", "title": "t", "tags": "math"}, 422, id="tags-not-a-list"),
        pytest.param(["not", "an", "object"], 400, id="not-an-object"),
    ],
)
def test_creating_a_bad_post_is_refused(api: httpx.Client, body: object, status: int) -> None:
    """Invalid post bodies are client errors, not 5xx."""
    assert api.post("/posts", json=body).status_code == status


def test_creating_a_user_takes_the_whole_body(api: httpx.Client) -> None:
    """POST /users reads the user from the whole JSON body."""
    created = api.post("/users", json={"name": "Barbara Liskov", "email": "barbara@example.com"})
    assert created.status_code == 201
    assert api.get(f"/users/{created.json()['id']}").json()["name"] == "Barbara Liskov"


def test_each_app_instance_starts_from_fresh_data() -> None:
    """What one demo app created is not in another."""
    with serve_asgi(create_rest_app()) as first, serve_asgi(create_rest_app()) as second:
        created = httpx.post(f"{first}/api/posts", json={"userId": "1", "title": "x"}, headers=BEARER).json()
        assert httpx.get(f"{second}/api/posts/{created['id']}", headers=BEARER).status_code == 404


def test_recommendations_fail_with_503_and_retry_after_when_told_to(api: httpx.Client) -> None:
    """?fail=1 makes every call a 503 carrying Retry-After, as an overloaded upstream would."""
    response = api.get("/recommendations/1", params={"fail": 1})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_recommendations_answer_posts_sharing_the_users_tags(api: httpx.Client) -> None:
    """?fail=0 always answers: other users' posts that share a tag, scored by overlap."""
    picks = api.get("/recommendations/3", params={"fail": 0}).json()
    assert picks
    assert all(0 < p["score"] <= 1 for p in picks)
    assert "Computable numbers" not in [p["title"] for p in picks]


def test_recommendations_fail_part_of_the_calls_by_default(api: httpx.Client) -> None:
    """With no parameters about half the calls fail: flaky enough to trip a breaker."""
    statuses = [api.get("/recommendations/1").status_code for _ in range(40)]
    assert {200, 503} == set(statuses)


def test_recommendations_answer_no_sooner_than_delay_ms(api: httpx.Client) -> None:
    """?delayMs= holds the answer back at least that long (a slow upstream for timeouts)."""
    started = time.monotonic()
    api.get("/recommendations/1", params={"fail": 0, "delayMs": 200})
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"data": CLIENT_CREDENTIALS, "auth": (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)}, id="basic"),
        pytest.param(
            {
                "data": {
                    **CLIENT_CREDENTIALS,
                    "client_id": DEMO_CLIENT_ID,
                    "client_secret": DEMO_CLIENT_SECRET,
                }
            },
            id="body",
        ),
    ],
)
def test_the_token_endpoint_issues_a_token_for_the_demo_client(
    rest_root: httpx.Client, credentials: dict[str, Any]
) -> None:
    """Client credentials as HTTP Basic or as form fields get a bearer token that lasts TOKEN_LIFETIME."""
    response = rest_root.post("/oauth/token", **credentials)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == TOKEN_LIFETIME
    assert body["scope"] == INVENTORY_SCOPE
    grant = verify(body["access_token"], time.time())
    assert grant is not None
    assert grant.scopes == {INVENTORY_SCOPE}


@pytest.mark.parametrize(
    ("form", "auth", "status", "error"),
    [
        pytest.param(CLIENT_CREDENTIALS, (DEMO_CLIENT_ID, "wrong"), 401, "invalid_client", id="wrong-secret"),
        pytest.param(CLIENT_CREDENTIALS, None, 401, "invalid_client", id="no-client"),
        pytest.param(
            {"grant_type": "password"},
            (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            400,
            "unsupported_grant_type",
            id="grant",
        ),
        pytest.param(
            {**CLIENT_CREDENTIALS, "scope": "admin"},
            (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            400,
            "invalid_scope",
            id="scope",
        ),
    ],
)
def test_the_token_endpoint_refuses_with_oauth_errors(
    rest_root: httpx.Client, form: dict[str, str], auth: tuple[str, str] | None, status: int, error: str
) -> None:
    """A wrong client, grant type or scope gets the RFC 6749 error code, and no token."""
    response = rest_root.post("/oauth/token", data=form, auth=auth)
    assert response.status_code == status
    assert response.json() == {"error": error}


def test_a_token_is_valid_until_it_expires() -> None:
    """verify() gives the grant back before its expiry and nothing from then on."""
    grant = Grant(DEMO_CLIENT_ID, frozenset({INVENTORY_SCOPE}), expires_at=1000.0)
    token = issue(grant)
    assert verify(token, now=999.0) == grant
    assert verify(token, now=1000.0) is None


def test_a_tampered_token_is_refused() -> None:
    """Changing the claims without the signing key makes the token worthless."""
    claims, _, signature = inventory_token().partition(".")
    assert verify(f"{claims[:-2]}xx.{signature}", time.time()) is None
    assert verify("not-a-token", time.time()) is None


def test_a_catalog_product_has_a_price_and_reviews(catalog: httpx.Client) -> None:
    """The catalog answers nested selections: price with currency, reviews, their mean rating."""
    body = graphql(
        catalog, '{ product(id: "1") { name price { amount currency } rating reviews { stars } } }'
    )
    assert body == {
        "data": {
            "product": {
                "name": "Analytical Engine poster",
                "price": {"amount": 19.5, "currency": "EUR"},
                "rating": 4.5,
                "reviews": [{"stars": 5}, {"stars": 4}],
            }
        }
    }


def test_catalog_products_are_filtered_and_cheapest_first(catalog: httpx.Client) -> None:
    """products(maxPrice:, first:) counts every match and pages them cheapest first."""
    body = graphql(catalog, "{ products(maxPrice: 20, first: 2) { totalCount nodes { name } } }")
    page = body["data"]["products"]
    assert page["totalCount"] == 3
    assert [p["name"] for p in page["nodes"]] == ["Punched-card notebook", "First-bug mug"]


def test_product_3_answers_partial_data_with_a_coded_error(catalog: httpx.Client) -> None:
    """Its shipping estimate fails: the rest of the product arrives, the error has code UNAVAILABLE."""
    body = graphql(catalog, '{ product(id: "3") { name shipsInDays } }')
    assert body["data"] == {"product": {"name": "Enigma rotor kit", "shipsInDays": None}}
    (error,) = body["errors"]
    assert error["path"] == ["product", "shipsInDays"]
    assert error["extensions"] == {"code": "UNAVAILABLE"}


def test_a_review_is_added_and_then_listed(catalog: httpx.Client) -> None:
    """addReview answers the new review, which the product's reviews then include."""
    body = graphql(
        catalog, 'mutation { addReview(productId: "2", stars: 4, text: "Good paper") { id stars } }'
    )
    review = body["data"]["addReview"]
    assert review["stars"] == 4
    reviews = graphql(catalog, '{ product(id: "2") { reviews { id text } } }')["data"]["product"]["reviews"]
    assert reviews == [{"id": review["id"], "text": "Good paper"}]


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        pytest.param(
            'addReview(productId: "2", stars: 9)', "stars must be between 1 and 5, got 9", id="stars"
        ),
        pytest.param('addReview(productId: "99", stars: 3)', "no product 99", id="product"),
    ],
)
def test_a_bad_review_is_errors_and_no_data(catalog: httpx.Client, mutation: str, message: str) -> None:
    """An invalid review is refused with BAD_USER_INPUT and no data at all."""
    body = graphql(catalog, f"mutation {{ {mutation} {{ id }} }}")
    assert body["data"] is None
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [(message, "BAD_USER_INPUT")]


def test_the_inventory_needs_a_token_with_its_scope(catalog: httpx.Client) -> None:
    """Without credentials the inventory is a FORBIDDEN error; reads of products stay open."""
    body = graphql(catalog, '{ inventory(productId: "1") { quantity } product(id: "1") { name } }')
    assert body["data"] == {"inventory": None, "product": {"name": "Analytical Engine poster"}}
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


def test_a_token_from_the_token_endpoint_opens_the_inventory(
    rest_root: httpx.Client, catalog: httpx.Client
) -> None:
    """The REST demo's token is accepted by the catalog: the two demo upstreams share the signing key."""
    token = rest_root.post(
        "/oauth/token", data=CLIENT_CREDENTIALS, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ).json()["access_token"]
    body = graphql(
        catalog, '{ inventory(productId: "3") { quantity warehouse } }', {"Authorization": f"Bearer {token}"}
    )
    assert body == {"data": {"inventory": {"quantity": 3, "warehouse": "Manchester"}}}


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer {inventory_token(lifetime=-1)}", id="expired"),
        pytest.param("Bearer forged", id="forged"),
        pytest.param(f"Basic {DEMO_TOKEN}", id="not-bearer"),
    ],
)
def test_a_bad_token_is_a_401(catalog: httpx.Client, authorization: str) -> None:
    """A stale or forged token is refused at the HTTP level, as OAuth2 resource servers do."""
    body = graphql(catalog, '{ product(id: "1") { id } }', {"Authorization": authorization}, status=401)
    assert body == {"errors": [{"message": "invalid or expired access token"}]}


def test_running_upstreams_yields_the_env_var_of_every_upstream() -> None:
    """The runner serves each demo upstream and names its base URL by the env var the config reads."""
    with running_upstreams() as env:
        assert (
            set(env)
            == {*UPSTREAMS, GRPC_UPSTREAM}
            == {"DEMO_REST_URL", "DEMO_CATALOG_URL", "DEMO_WAREHOUSE_URL"}
        )
        user = httpx.get(f"{env['DEMO_REST_URL']}/api/users/2", headers=BEARER)
        product = httpx.post(
            f"{env['DEMO_CATALOG_URL']}/graphql", json={"query": '{ product(id: "2") { name } }'}
        )
    assert user.json()["name"] == "Grace Hopper"
    assert product.json() == {"data": {"product": {"name": "Punched-card notebook"}}}


@pytest.mark.parametrize("name", sorted(UPSTREAMS))
def test_running_upstreams_stops_them_on_exit(name: str) -> None:
    """Leaving the block closes the upstreams' ports."""
    with running_upstreams() as env:
        url = env[name]
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def test_running_upstreams_stops_the_grpc_warehouse_on_exit() -> None:
    """Leaving the block closes the warehouse's port too."""
    with running_upstreams() as env:
        port = int(env[GRPC_UPSTREAM].rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


@pytest.fixture(scope="module")
def demo() -> Iterator[Gateway]:
    """The gateway on the bundled demo config over the demo upstreams, as `aggregator demo` runs it."""
    with running_upstreams() as env, serve_config(load(CONFIG_PATH, env=env)) as gateway:
        yield gateway


def test_the_demo_warehouse_answers_a_grpc_query_typed_from_its_proto(demo: Gateway) -> None:
    """warehouse_getItem calls the gRPC warehouse: an enum, a Timestamp and an int64 come typed."""
    body = demo.query(
        '{ warehouse_getItem(productId: "3") { productId quantity location restockedAt unitWeightGrams } }'
    )
    assert body == {
        "data": {
            "warehouse_getItem": {
                "productId": "3",
                "quantity": 30,
                "location": "BERLIN",
                "restockedAt": "2024-04-15T08:00:00Z",
                "unitWeightGrams": 750,
            }
        }
    }


def test_the_demo_warehouse_reserves_through_a_mutation_and_refuses_too_many(demo: Gateway) -> None:
    """warehouse_reserve is a Mutation; more units than available is UPSTREAM_GRPC_ERROR."""
    body = demo.query('mutation { warehouse_reserve(productId: "5", quantity: 4) { productId reserved } }')
    assert body == {"data": {"warehouse_reserve": {"productId": "5", "reserved": 4}}}
    refused = demo.query('mutation { warehouse_reserve(productId: "5", quantity: 1000) { reserved } }')
    extensions = refused["errors"][0]["extensions"]
    assert (extensions["code"], extensions["grpcStatus"]) == ("UPSTREAM_GRPC_ERROR", "FAILED_PRECONDITION")


def test_the_demo_catalog_is_typed_from_introspection(demo: Gateway) -> None:
    """catalog.product has no `returns`: its Product type has exactly the fields the documents select,
    and the joined field extend: gives it."""
    body = demo.query('{ __type(name: "Product") { fields { name } } }')
    fields = {f["name"] for f in body["data"]["__type"]["fields"]}
    assert fields == {"id", "name", "category", "price", "rating", "shipsInDays", "reviews", "stock"}


def test_the_demo_answers_a_catalog_query_from_the_graphql_upstream(demo: Gateway) -> None:
    """A typed selection on catalog_product gets the demo catalog's data through the gateway."""
    body = demo.query('{ catalog_product(id: "1") { name price { amount currency } reviews { stars } } }')
    assert body == {
        "data": {
            "catalog_product": {
                "name": "Analytical Engine poster",
                "price": {"amount": 19.5, "currency": "EUR"},
                "reviews": [{"stars": 5}, {"stars": 4}],
            }
        }
    }


def test_the_demo_select_path_makes_the_field_the_selected_part(demo: Gateway) -> None:
    """catalog.reviews selects product.reviews: the field is the list of reviews itself."""
    body = demo.query('{ catalog_reviews(productId: "1", first: 1) { stars text } }')
    assert body == {"data": {"catalog_reviews": [{"stars": 5, "text": "Hangs above my loom."}]}}


def test_the_demo_cheapest_products_come_as_a_page(demo: Gateway) -> None:
    """Variables of several kinds (String, Float, Int) reach the catalog; the page is typed."""
    body = demo.query(
        '{ catalog_cheapest(category: "kits", maxPrice: 200.0, first: 5) { totalCount nodes { name } } }'
    )
    assert body == {"data": {"catalog_cheapest": {"totalCount": 1, "nodes": [{"name": "Enigma rotor kit"}]}}}


def test_the_demo_mutation_adds_a_review(demo: Gateway) -> None:
    """catalog_addReview is a Mutation field; the review it adds is then listed."""
    body = demo.query(
        'mutation { catalog_addReview(productId: "4", stars: 5, text: "Still runs payroll") { id stars } }'
    )
    review = body["data"]["catalog_addReview"]
    assert review["stars"] == 5
    listed = demo.query('{ catalog_reviews(productId: "4") { id text } }')["data"]["catalog_reviews"]
    assert {"id": review["id"], "text": "Still runs payroll"} in listed


def test_the_demo_partial_result_keeps_the_data_and_adds_the_error(demo: Gateway) -> None:
    """Product 3's failing shipsInDays is null with an error at its gateway path; the rest arrives."""
    body = demo.query('{ catalog_product(id: "3") { name shipsInDays } }')
    assert body["data"] == {"catalog_product": {"name": "Enigma rotor kit", "shipsInDays": None}}
    (error,) = body["errors"]
    assert error["path"] == ["catalog_product", "shipsInDays"]
    assert error["extensions"]["code"] == "UPSTREAM_GRAPHQL_ERROR"
    assert error["extensions"]["upstreamCode"] == "UNAVAILABLE"


def test_the_demo_bad_review_is_an_upstream_graphql_error(demo: Gateway) -> None:
    """An errors-only answer is UPSTREAM_GRAPHQL_ERROR carrying the upstream's message and code."""
    body = demo.query('mutation { catalog_addReview(productId: "4", stars: 0) { id } }')
    assert body["data"] == {"catalog_addReview": None}
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "UPSTREAM_GRAPHQL_ERROR"
    assert extensions["upstreamErrors"] == [
        {
            "message": "stars must be between 1 and 5, got 0",
            "path": ["addReview"],
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


def test_the_demo_inventory_is_reached_with_the_oauth2_token(demo: Gateway) -> None:
    """inventory authenticates with client credentials at the REST demo's token endpoint."""
    body = demo.query('{ inventory_stock(productId: "4") { quantity warehouse } }')
    assert body == {"data": {"inventory_stock": {"quantity": 12, "warehouse": "Arlington"}}}


def test_a_callers_authorization_overrides_the_oauth2_token(demo: Gateway) -> None:
    """override_auth: a caller's own (here forged) token reaches the catalog instead of the gateway's."""
    body = demo.query(
        '{ inventory_stock(productId: "2") { quantity } }', headers={"Authorization": "Bearer forged"}
    )
    assert body["data"] == {"inventory_stock": None}
    assert body["errors"][0]["extensions"]["status"] == 401


def _users_calls(demo: Gateway) -> int:
    body = demo.query('{ integrationStats(id: "users") { calls } }')
    calls: int = body["data"]["integrationStats"][0]["calls"]
    return calls


def test_the_demo_joins_each_post_to_its_author_in_one_batched_call(demo: Gateway) -> None:
    """Post.author (REST -> REST): seven posts by five authors, one call to the users API."""
    before = _users_calls(demo)
    body = demo.query('{ posts_search(q: "") { posts { title author { id name } } } }')
    authors = [post["author"]["name"] for post in body["data"]["posts_search"]["posts"]]
    assert authors[:3] == ["Ada Lovelace", "Ada Lovelace", "Grace Hopper"]
    assert _users_calls(demo) == before + 1


def test_the_demo_joins_a_catalog_product_to_its_stock_in_the_grpc_warehouse(demo: Gateway) -> None:
    """Product.stock (GraphQL -> gRPC), an extend: of a type derived from the catalog's schema."""
    body = demo.query('{ catalog_product(id: "3") { name stock { productId quantity location } } }')
    assert body["data"]["catalog_product"]["stock"] == {
        "productId": "3",
        "quantity": 30,
        "location": "BERLIN",
    }
