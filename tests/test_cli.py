"""The `aggregator` command, run as a real subprocess: check, schema, serve and demo, and their exit codes."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from itertools import takewhile
from pathlib import Path

import httpx
import pytest
from servers import serve_asgi
from starlette.types import Receive, Scope, Send

from aggregator.config import load
from aggregator.demo import CONFIG_PATH as DEMO_CONFIG
from aggregator.demo import SAMPLE_QUERY
from aggregator.demo.upstreams import DEMO_TOKEN, create_rest_app

READY_SECONDS = 30.0
COMMAND = [sys.executable, "-m", "aggregator.cli"]
SECRET = "s3cr3t-7f1d9a-never-print-me"

GOOD_CONFIG = """\
types:
  User: {id: "ID!", name: String}
integrations:
  users:
    base_url: {base_url}
    auth: {type: bearer, token: "${DEMO_TOKEN_FOR_TEST}"}
    operations:
      getUser: {path: "/users/{id}", params: {id: "ID!"}, returns: User}
      recommend:
        path: /recommendations/{userId}
        params: {userId: "ID!", fail: Float, delayMs: Int}
"""

BAD_CONFIG = """\
integrations:
  users:
    base_url: http://127.0.0.1:9/api
    timout: 5s
    retry: {initial_wait: soon}
    operations:
      getUser:
        path: /users/{id}
        returns: Usr
"""


def run(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def good_config(tmp_path: Path, base_url: str = "http://127.0.0.1:9") -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_CONFIG.replace("{base_url}", f"{base_url}/api"))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_ready(process: subprocess.Popen[str], base_url: str) -> None:
    """Poll /readyz until 200; fail with the process's output if it exits or never gets ready."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"exited with {process.returncode} before ready:\n{out}\n{err}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"not ready within {READY_SECONDS}s:\n{process.communicate()[1]}")


def listening_url(process: subprocess.Popen[str]) -> str:
    """The base URL from the `listening on http://HOST:PORT/graphql` line serve prints once listening."""
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("listening on "):
                found.put(line.removeprefix("listening on ").rstrip("\n"))
                return
        found.put("")  # the process ended without saying it

    threading.Thread(target=read, daemon=True).start()
    try:
        endpoint = found.get(timeout=READY_SECONDS)
    except queue.Empty:
        process.kill()
        pytest.fail(f"no listening line within {READY_SECONDS}s:\n{process.communicate()[1]}")
    if not endpoint:
        pytest.fail(f"exited with {process.wait()} without a listening line:\n{process.communicate()[1]}")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/graphql", endpoint), endpoint
    return endpoint.removesuffix("/graphql")


def stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> tuple[str, str]:
    process.send_signal(signum)
    try:
        return process.communicate(timeout=READY_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def query(base_url: str, text: str) -> dict[str, object]:
    response = httpx.post(f"{base_url}/graphql", json={"query": text}, timeout=30)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def sdl_type(sdl: str, name: str) -> str:
    """The body of ``type <name> { ... }`` in printed SDL."""
    match = re.search(rf"^type {name} \{{\n(.*?)^\}}", sdl, re.MULTILINE | re.DOTALL)
    assert match is not None, f"no type {name} in:\n{sdl}"
    return match.group(1)


@pytest.fixture
def demo_api() -> Iterator[str]:
    """The demo REST upstream on loopback: a real upstream for `serve` to call."""
    with serve_asgi(create_rest_app()) as url:
        yield url


@pytest.fixture
def gateway_port() -> int:
    """A free loopback port for a gateway subprocess."""
    return free_port()


def test_check_accepts_the_bundled_config_and_counts_what_it_found() -> None:
    """A good file: exit 0 and one line with the numbers of integrations and operations."""
    config = load(DEMO_CONFIG)
    operations = sum(len(i.operations) for i in config.integrations.values())
    result = run("check", "-c", str(DEMO_CONFIG))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ok: {len(config.integrations)} integrations, {operations} operations\n"


def test_check_counts_one_integration_in_the_singular(tmp_path: Path) -> None:
    """One integration with one operation is "1 integration, 1 operation"."""
    config = tmp_path / "one.yaml"
    config.write_text(
        "integrations:\n  users:\n    base_url: http://127.0.0.1:9\n    operations: {me: {path: /me}}\n"
    )
    result = run("check", "-c", str(config))
    assert result.stdout == "ok: 1 integration, 1 operation\n", result.stderr


def test_version_prints_the_installed_package_version() -> None:
    """--version prints the version the package was installed as, and exits 0."""
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"aggregator {version('aggregator')}\n")


def test_check_prints_every_problem_as_file_line_key_message_and_exits_2(tmp_path: Path) -> None:
    """A bad file: every problem on its own FILE:LINE: key.path: message line, exit 2."""
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = run("check", "-c", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith(f"{path}:")]
    assert [line.split(": ", 2)[:2] for line in problems] == [
        [f"{path}:4", "integrations.users.timout"],
        [f"{path}:5", "integrations.users.retry.initial_wait"],
        [f"{path}:8", "integrations.users.operations.getUser.path"],
        [f"{path}:9", "integrations.users.operations.getUser.returns"],
    ]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("integrations: {users: [unclosed", id="yaml-syntax"),
        pytest.param("", id="empty"),
        pytest.param("- a list\n- not a mapping\n", id="not-a-mapping"),
        pytest.param("\x00\x01\x02", id="binary"),
    ],
)
def test_check_refuses_malformed_files_without_a_traceback(tmp_path: Path, text: str) -> None:
    """Whatever the file holds, the answer is FILE:LINE lines and exit 2."""
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    result = run("check", "-c", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(rf"^{re.escape(str(path))}:\d+: ", result.stderr, re.MULTILINE), result.stderr


@pytest.mark.parametrize("command", ["check", "schema", "serve"])
def test_a_missing_config_file_is_a_one_line_error(tmp_path: Path, command: str) -> None:
    """No such file: one line naming it, exit 2."""
    missing = tmp_path / "nowhere.yaml"
    result = run(command, "-c", str(missing))
    assert result.returncode == 2
    assert result.stderr == f"aggregator {command}: error: config file not found: {missing}\n"


def test_without_c_the_config_comes_from_the_environment_variable(tmp_path: Path) -> None:
    """$AGGREGATOR_CONFIG names the file when -c is not given."""
    path = good_config(tmp_path)
    result = run(
        "check", env={"AGGREGATOR_CONFIG": str(path), "DEMO_TOKEN_FOR_TEST": "t"}, cwd=tmp_path.parent
    )
    assert result.returncode == 0, result.stderr


def test_a_missing_file_named_by_the_environment_variable_says_so(tmp_path: Path) -> None:
    """The error names the variable the path came from."""
    missing = tmp_path / "nowhere.yaml"
    result = run("check", env={"AGGREGATOR_CONFIG": str(missing)})
    assert result.returncode == 2
    assert (
        result.stderr
        == f"aggregator check: error: config file not found: {missing} (named by $AGGREGATOR_CONFIG)\n"
    )


def test_without_c_or_the_variable_the_config_is_integrations_yaml_here(tmp_path: Path) -> None:
    """Failing both, ./integrations.yaml is used; its absence is reported with the hint."""
    env = {"AGGREGATOR_CONFIG": "", "DEMO_TOKEN_FOR_TEST": "t"}
    missing = run("check", env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert "integrations.yaml" in missing.stderr
    assert "AGGREGATOR_CONFIG" in missing.stderr
    good_config(tmp_path).rename(tmp_path / "integrations.yaml")
    assert run("check", env=env, cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("command", ["check", "schema"])
def test_secrets_from_the_environment_are_never_printed(tmp_path: Path, command: str) -> None:
    """Neither check (good or bad file) nor schema shows a credential read from ${VAR}."""
    good = good_config(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("returns: User", "returns: Usr"))
    env = {"DEMO_TOKEN_FOR_TEST": SECRET}
    for path in (good, bad):
        result = run(command, "-c", str(path), env=env)
        assert SECRET not in result.stdout + result.stderr


def test_schema_prints_the_sdl_with_generated_field_names() -> None:
    """The SDL has <integration>_<operation> fields, renamed fields, mutations and integrationStats."""
    result = run("schema", "-c", str(DEMO_CONFIG))
    assert result.returncode == 0, result.stderr
    sdl = result.stdout
    for expected in (
        "type Query {",
        "users_getUser(id: ID!): User",
        "users_posts(id: ID!): [Post!]",
        "integrationStats(id: String = null): [IntegrationStats!]!",
        "type Mutation {",
        "posts_createPost(",
        "users_createUser(input: JSON!): User",
        "type User {",
    ):
        assert expected in sdl


def test_schema_of_the_demo_config_shows_the_graphql_upstream_fields() -> None:
    """The catalog's queries are Query fields and its mutation a Mutation field, with their params."""
    result = run("schema", "-c", str(DEMO_CONFIG))
    assert result.returncode == 0, result.stderr
    query, mutation = sdl_type(result.stdout, "Query"), sdl_type(result.stdout, "Mutation")
    for expected in (
        "catalog_product(id: ID!)",
        "catalog_cheapest(category: String, maxPrice: Float, first: Int)",
        "catalog_reviews(productId: ID!, first: Int)",
        "inventory_stock(productId: ID!)",
    ):
        assert expected in query
    assert "catalog_addReview(productId: ID!, stars: Int!, text: String)" in mutation


def test_schema_of_a_bad_config_exits_2_with_its_problems(tmp_path: Path) -> None:
    """schema refuses a bad file the same way check does."""
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = run("schema", "-c", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{path}:4: integrations.users.timout: " in result.stderr


def test_no_command_prints_usage_and_exits_2() -> None:
    """`aggregator` alone is a usage error."""
    result = run()
    assert result.returncode == 2
    assert result.stderr.startswith("usage: aggregator")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_queries_and_stops_cleanly_on_a_signal(
    tmp_path: Path, demo_api: str, gateway_port: int, signum: int
) -> None:
    """serve: a query over HTTP gets upstream data; the signal ends it gracefully with status 0."""
    config = good_config(tmp_path, demo_api)
    process = start(
        "serve", "-c", str(config), "--port", str(gateway_port), env={"DEMO_TOKEN_FOR_TEST": DEMO_TOKEN}
    )
    base_url = f"http://127.0.0.1:{gateway_port}"
    wait_ready(process, base_url)
    result = query(base_url, '{ users_getUser(id: "2") { id name } }')
    _, err = stop(process, signum)
    assert result == {"data": {"users_getUser": {"id": "2", "name": "Grace Hopper"}}}
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_serve_lets_an_in_flight_request_finish_on_sigterm(tmp_path: Path, gateway_port: int) -> None:
    """A query still waiting on its upstream when SIGTERM arrives gets its answer; then exit 0."""
    arrived = threading.Event()
    upstream = create_rest_app()

    async def noting_arrivals(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/recommendations"):
            arrived.set()
        await upstream(scope, receive, send)

    with serve_asgi(noting_arrivals) as api_url:
        process = start(
            "serve",
            "-c",
            str(good_config(tmp_path, api_url)),
            "--port",
            str(gateway_port),
            env={"DEMO_TOKEN_FOR_TEST": DEMO_TOKEN},
        )
        base_url = f"http://127.0.0.1:{gateway_port}"
        wait_ready(process, base_url)
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(query, base_url, '{ users_recommend(userId: "3", fail: 0, delayMs: 1000) }')
            assert arrived.wait(READY_SECONDS)
            _, err = stop(process)
            result = answer.result(timeout=READY_SECONDS)
    data = result["data"]
    assert isinstance(data, dict)
    assert [pick["postId"] for pick in data["users_recommend"]] == ["1", "2", "6"]
    assert process.returncode == 0, err


def test_serve_on_port_0_prints_the_port_it_got_and_serves_there(tmp_path: Path, demo_api: str) -> None:
    """--port 0: the kernel picks a free port; the one `listening on` line names it, and it answers."""
    process = start(
        "serve",
        "-c",
        str(good_config(tmp_path, demo_api)),
        "--port",
        "0",
        env={"DEMO_TOKEN_FOR_TEST": DEMO_TOKEN},
    )
    try:
        base_url = listening_url(process)
        result = query(base_url, '{ users_getUser(id: "2") { name } }')
    finally:
        out, err = stop(process)
    assert result == {"data": {"users_getUser": {"name": "Grace Hopper"}}}
    assert "listening on" not in out, "printed more than once"
    assert err.count("Shutting down") == 1, err


def test_serve_with_several_workers_answers_queries(tmp_path: Path, demo_api: str) -> None:
    """--workers 2 serves the same config from two processes, on the one port it prints."""
    config = good_config(tmp_path, demo_api)
    process = start(
        "serve", "-c", str(config), "--port", "0", "--workers", "2", env={"DEMO_TOKEN_FOR_TEST": DEMO_TOKEN}
    )
    try:
        base_url = listening_url(process)
        wait_ready(process, base_url)
        result = query(base_url, '{ users_getUser(id: "3") { name } }')
    finally:
        out, err = stop(process)
    assert result == {"data": {"users_getUser": {"name": "Alan Turing"}}}
    assert "listening on" not in out, "printed more than once"
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_serve_on_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    """A taken port: one line saying so, exit 1."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run(
            "serve", "-c", str(good_config(tmp_path)), "--port", str(port), env={"DEMO_TOKEN_FOR_TEST": "t"}
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"aggregator serve: error: cannot listen on 127.0.0.1:{port}: ")
    assert len(result.stderr.splitlines()) == 1


@dataclass(frozen=True)
class Demo:
    base_url: str
    banner: str


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """One `aggregator demo` process for this module's demo tests, with the banner it printed."""
    port = free_port()
    process = start("demo", "--port", str(port))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base_url)
        # The banner is printed before the gateway serves, so by now it is all in the pipe.
        assert process.stdout is not None
        lines = iter(process.stdout.readline, "")
        banner = "".join(takewhile(lambda line: not line.startswith("Ctrl-C"), lines))
        yield Demo(base_url, banner)
    finally:
        stop(process)


def test_demo_answers_the_sample_query_with_data_from_its_upstreams(demo: Demo) -> None:
    """The sample query gets the bundled upstreams' data, and stats of every integration."""
    data = query(demo.base_url, SAMPLE_QUERY)["data"]
    assert isinstance(data, dict)
    assert data["users_getUser"]["name"] == "Ada Lovelace"
    assert data["users_getUser"]["address"] == {"city": "London", "country": "GB"}
    assert data["posts_search"]["total"] >= 1
    assert data["posts_search"]["posts"][0]["author"] == {"name": "Ada Lovelace"}
    assert data["catalog_product"]["stock"] == {"quantity": 10}
    assert data["catalog_product"]["price"] == {"amount": 19.5, "currency": "EUR"}
    assert data["inventory_stock"] == {"quantity": 40, "warehouse": "Manchester"}
    assert data["warehouse_getItem"]["location"] == "BERLIN"
    assert {s["integrationId"] for s in data["integrationStats"]} == {
        "users",
        "posts",
        "recommendations",
        "catalog",
        "inventory",
        "warehouse",
    }


def test_demo_prints_the_graphiql_url_and_the_sample_query(demo: Demo) -> None:
    """The banner says where GraphiQL is and what to paste into it."""
    assert f"GraphiQL  {demo.base_url}/graphql" in demo.banner
    assert 'users_getUser(id: "1")' in demo.banner
    assert "query Demo {" in demo.banner


def test_demo_prints_the_url_of_every_demo_upstream(demo: Demo) -> None:
    """The banner names each upstream's env var and loopback URL: the REST API and the GraphQL catalog."""
    for name in ("DEMO_REST_URL", "DEMO_CATALOG_URL"):
        assert re.search(rf"upstream  {name}=http://127\.0\.0\.1:\d+\n", demo.banner), demo.banner


def test_the_curl_command_the_demo_prints_works(demo: Demo) -> None:
    """The printed curl line is a valid request the gateway answers with data."""
    body = re.search(r"-d '(\{.*\})'", demo.banner)
    assert body is not None, demo.banner
    response = httpx.post(f"{demo.base_url}/graphql", json=json.loads(body.group(1)), timeout=30)
    assert response.json()["data"]["users_getUser"]["name"] == "Ada Lovelace"


def test_the_demo_serves_graphiql_from_the_gateway(demo: Demo) -> None:
    """A browser opening the printed URL gets the GraphiQL page."""
    response = httpx.get(f"{demo.base_url}/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_the_demo_stops_cleanly_on_sigterm(gateway_port: int) -> None:
    """SIGTERM ends the gateway and its upstreams: status 0, no traceback, "Shutting down" said once."""
    process = start("demo", "--port", str(gateway_port))
    wait_ready(process, f"http://127.0.0.1:{gateway_port}")
    _, err = stop(process)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("Shutting down") == 1, err
