"""Secrets stay secret: a run with real credentials in the environment, everything it outputs scanned.

Credentials of every auth type (bearer token, api key in a header and in the query, basic password,
oauth2 client secret and the tokens it is issued) and a header value come from ``${VAR}`` in the
config. The upstreams are as careless as they come: they answer errors whose bodies repeat the URL
and every header they were sent, and the token endpoint repeats the client secret in its refusal.
Then every output is searched for every secret, raw and in the forms it travels in (percent-encoded,
base64 in a Basic header): the GraphQL responses, every log record at DEBUG (any logger, httpx's
included), integrationStats, /healthz, and what ``aggregator check`` and ``aggregator schema`` print.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from faults import FaultUpstream
from gateway import Gateway, serve_gateway
from servers import closed_port_url, serve_asgi
from upstream_apps import OAuthServer

CONSOLE_SCRIPT = Path(sys.executable).parent / "aggregator"
# A distinct marker in every secret, so that a fragment of one is easy to spot in a failure message.
SECRETS = {
    "SECRET_BEARER": f"brr-{secrets.token_hex(12)}",
    "SECRET_HEADER": f"hdr-{secrets.token_hex(12)}",
    "SECRET_KEY": f"akh-{secrets.token_hex(12)}",
    "SECRET_QUERY_KEY": f"akq-{secrets.token_hex(8)}+/={secrets.token_hex(4)}",
    "SECRET_PASSWORD": f"bpw-{secrets.token_hex(8)} &:{secrets.token_hex(4)}",
    "SECRET_CLIENT": f"ocs-{secrets.token_hex(12)}",
}

CONFIG = """
types:
  Echo: {{url: String, body: String}}
defaults:
  retry: {{max_attempts: 2, initial_wait: 10ms, max_wait: 20ms}}
integrations:
  bearer:
    base_url: {echo}
    auth: {{type: bearer, token: "${{SECRET_BEARER}}"}}
    headers: {{X-Custom: "${{SECRET_HEADER}}"}}
    operations: &ops
      read:
        path: /read
        params: &params {{code: {{type: Int, in: query}}, fault: {{type: String, in: query}}}}
        returns: Echo
      write: {{method: POST, path: /write, params: *params}}
  keyed:
    base_url: {echo}
    auth: {{type: api_key, key: "${{SECRET_KEY}}", header: X-Api-Key}}
    operations: *ops
  query_keyed:
    base_url: {echo}
    auth: {{type: api_key, key: "${{SECRET_QUERY_KEY}}", in: query, name: api_key}}
    operations: *ops
  basic:
    base_url: {echo}
    auth: {{type: basic, username: service, password: "${{SECRET_PASSWORD}}"}}
    operations: *ops
  oauth:
    base_url: {echo}
    auth: {{type: oauth2, token_url: "{token_url}", client_id: gateway, client_secret: "${{SECRET_CLIENT}}"}}
    operations: *ops
  oauth_refused:
    base_url: {echo}
    auth:
      type: oauth2
      token_url: "{refusing_token_url}"
      client_id: gateway
      client_secret: "${{SECRET_CLIENT}}"
    operations: *ops
  down:
    base_url: {down}
    auth: {{type: api_key, key: "${{SECRET_QUERY_KEY}}", in: query, name: api_key}}
    operations: *ops
"""
INTEGRATIONS = ["bearer", "keyed", "query_keyed", "basic", "oauth", "oauth_refused", "down"]
STATS = """{ integrationStats { integrationId type circuitState failures failuresTotal lastFailure lastSuccess
  openedAt retryAfter calls successes retries rejected bulkheadRejected timeouts inFlight
  latencyMs { p50 p95 p99 } operations { operationId calls successes failures retries rejected timeouts
  latencyMs { p50 p95 p99 } } } }"""


def forms(secret: str) -> set[str]:
    """A secret as it may appear: raw, percent-encoded (path and form style), JSON-escaped."""
    return {secret, quote(secret, safe=""), quote_plus(secret), secret.replace("/", "\\/")}


@dataclass
class Run:
    outputs: dict[str, str]  # where -> what was output there
    forbidden: dict[str, str]  # a form of a secret -> the secret's name


@pytest.fixture(scope="module")
def environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in SECRETS}
    os.environ.update(SECRETS)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _queries() -> list[str]:
    """Every operation of every integration, answered with the upstream repeating what it was sent."""
    faults = [
        ("echo", 500),
        ("echo", 400),
        ("echo", 401),
        ("echo", 403),
        ("echo", 502),
        ("redirect", 0),
        ("ok", 0),
    ]
    queries = []
    for integration in INTEGRATIONS:
        for fault, code in faults:
            args = f'fault: "{fault}", code: {code}'
            queries.append(f"{{ {integration}_read({args}) {{ url body }} }}")
            queries.append(f"mutation {{ {integration}_write({args}) }}")
    return queries


@pytest.fixture(scope="module")
def run(environment: None, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The gateway over careless upstreams: every response, log record, stats and CLI output."""
    tokens, refusing = OAuthServer(), OAuthServer()
    refusing.mode = "invalid_client"
    handler = _Collect()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with (
            FaultUpstream() as echo,
            serve_asgi(tokens.app) as token_base,
            serve_asgi(refusing.app) as refusing_base,
        ):
            config_text = CONFIG.format(
                echo=echo.url,
                token_url=f"{token_base}/token",
                refusing_token_url=f"{refusing_base}/token",
                down=closed_port_url(),
            )
            outputs: dict[str, str] = {}
            with serve_gateway(config_text) as gateway:
                for number, query in enumerate(_queries()):
                    outputs[f"response {number}: {query}"] = _post(gateway, query)
                outputs["integrationStats"] = _post(gateway, STATS)
                outputs["/healthz"] = gateway.http.get("/healthz").text
            issued = {f"tok-{n}" for n in range(1, tokens.token_calls + 1)}
            assert issued, "the oauth integration never got a token: the run did not cover oauth2"
            config = tmp_path_factory.mktemp("secrets") / "integrations.yaml"
            config.write_text(config_text)
            for command in ("check", "schema"):
                done = _cli(command, config)
                outputs[f"aggregator {command}"] = done.stdout + done.stderr
            broken = config.with_name("broken.yaml")
            broken.write_text(config_text.replace("retry:", "retries:", 1))
            done = _cli("check", broken)
            assert done.returncode == 2, done.stderr
            outputs["aggregator check (broken config)"] = done.stdout + done.stderr
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    outputs["log records"] = "\n".join(handler.lines)
    password_header = base64.b64encode(f"service:{SECRETS['SECRET_PASSWORD']}".encode()).decode()
    forbidden = {form: name for name, value in SECRETS.items() for form in forms(value)}
    forbidden |= {
        password_header: "the Basic credentials",
        **dict.fromkeys(issued, "an issued oauth2 token"),
    }
    return Run(outputs, forbidden)


class _Collect(logging.Handler):
    """Keeps every record whole: the formatted line, its traceback, and every attribute (extras too)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{self.format(record)} {vars(record)!r}")


def _post(gateway: Gateway, query: str) -> str:
    response = gateway.http.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text
    return response.text


def _cli(command: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), command, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **SECRETS},
        check=False,
    )


def _leaks(run: Run, where: str) -> list[str]:
    text = run.outputs[where]
    return [f"{name} as {form!r}" for form, name in run.forbidden.items() if form in text]


def test_the_run_saw_the_secrets_echoed_back(run: Run) -> None:
    """The scan is meaningful: the upstreams really were sent the credentials, and answered errors."""
    assert any(
        "UPSTREAM_HTTP_ERROR" in text for where, text in run.outputs.items() if where.startswith("response")
    )
    assert any(
        "UPSTREAM_AUTH_ERROR" in text for where, text in run.outputs.items() if where.startswith("response")
    )
    assert any(
        "UPSTREAM_UNAVAILABLE" in text for where, text in run.outputs.items() if where.startswith("response")
    )
    assert len(run.outputs["log records"]) > 10_000


def test_no_secret_in_any_graphql_response(run: Run) -> None:
    """Errors (the upstream's echo of the credentials included) and data never carry a secret."""
    leaks = {where: _leaks(run, where) for where in run.outputs if where.startswith("response")}
    assert {where: found for where, found in leaks.items() if found} == {}


@pytest.mark.parametrize("where", ["log records", "integrationStats", "/healthz"])
def test_no_secret_in_logs_stats_or_health(run: Run, where: str) -> None:
    """Not in any log record at DEBUG, of any logger; not in the stats; not in the health answer."""
    assert _leaks(run, where) == []


@pytest.mark.parametrize(
    "where", ["aggregator check", "aggregator schema", "aggregator check (broken config)"]
)
def test_no_secret_in_cli_output(run: Run, where: str) -> None:
    """What `check` and `schema` print, for a good config and for a broken one."""
    assert _leaks(run, where) == []
