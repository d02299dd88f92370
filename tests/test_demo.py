"""The demo upstream API, served for real on loopback, and the runner that serves it for `aggregator demo`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from servers import serve_asgi

from aggregator.demo import UPSTREAMS, running_upstreams
from aggregator.demo.upstreams import DEMO_API_KEY, DEMO_BASIC, DEMO_TOKEN, create_rest_app

BEARER = {"Authorization": f"Bearer {DEMO_TOKEN}"}


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


def test_running_upstreams_yields_the_env_var_of_every_upstream() -> None:
    """The runner serves each demo upstream and names its base URL by the env var the config reads."""
    with running_upstreams() as env:
        assert set(env) == set(UPSTREAMS)
        response = httpx.get(f"{env['DEMO_REST_URL']}/api/users/2", headers=BEARER)
    assert response.json()["name"] == "Grace Hopper"


def test_running_upstreams_stops_them_on_exit() -> None:
    """Leaving the block closes the upstreams' ports."""
    with running_upstreams() as env:
        url = env["DEMO_REST_URL"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/users/1", headers=BEARER)
