"""A hard outage under steady traffic, end to end: the gateway process (`aggregator serve`, the default
breaker rules) in front of a real loopback upstream that answers a long run of calls, then is stopped
(connection refused) or hangs. The breaker opens on the run's fifth failed call, whatever the window's
successes, and its transitions are logged, closing included.

Calls are sent one after another, so "the fifth failure" is exact: with concurrent clients, calls
already in flight when it opens would still fail on their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faults import FaultUpstream
from gateway_process import GatewayProcess, gateway_process

HISTORY = 200  # successful calls before the cut: the window holds them all
RUN = 5  # the default circuit_breaker.consecutive_failures
CONFIG = """
integrations:
  svc:
    base_url: {url}
    timeout: 300ms
    # The default rules, with a window long enough to keep the whole history of successes in view: the
    # case where the rate rule alone would take longest.
    circuit_breaker: {{window: 1m, reset_after: 500ms}}
    operations:
      getItem: {{path: "/items/{{id}}", params: {{id: "ID!"}}}}
"""
STATS = (
    '{ integrationStats(id: "svc") { circuitState calls successes failuresTotal rejected windowCalls '
    "windowFailures consecutiveFailures } }"
)


def get_item(http: httpx.Client, n: int) -> str | None:
    """One call through the gateway: None when it answered, else the error's code."""
    body = http.post("/graphql", json={"query": f'{{ svc_getItem(id: "{n}") }}'}).json()
    errors = body.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


def stats(http: httpx.Client) -> dict[str, object]:
    [found] = http.post("/graphql", json={"query": STATS}).json()["data"]["integrationStats"]
    return found  # type: ignore[no-any-return]


@pytest.fixture
def upstream() -> Iterator[FaultUpstream]:
    with FaultUpstream() as server:
        yield server


@pytest.fixture
def gateway(upstream: FaultUpstream, tmp_path: Path) -> Iterator[GatewayProcess]:
    config = tmp_path / "outage.yaml"
    config.write_text(CONFIG.format(url=upstream.url))
    with gateway_process(config, log_level="info") as process:
        yield process


@pytest.fixture
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        assert [get_item(client, n) for n in range(HISTORY)] == [None] * HISTORY
        yield client


def calls_until_refused(http: httpx.Client) -> list[str | None]:
    """Codes of calls made one after another until the breaker refuses one (at most 3 runs' worth)."""
    codes: list[str | None] = []
    for n in range(3 * RUN):
        codes.append(get_item(http, HISTORY + n))
        if codes[-1] == "CIRCUIT_OPEN":
            break
    return codes


def test_a_stopped_upstream_opens_the_breaker_on_the_fifth_failure(
    upstream: FaultUpstream, gateway: GatewayProcess, http: httpx.Client
) -> None:
    """The upstream stops (connections refused): five UPSTREAM_UNAVAILABLE, then CIRCUIT_OPEN."""
    upstream.__exit__(None, None, None)
    assert calls_until_refused(http) == ["UPSTREAM_UNAVAILABLE"] * RUN + ["CIRCUIT_OPEN"]
    seen = stats(http)
    assert (seen["circuitState"], seen["windowCalls"], seen["windowFailures"]) == ("OPEN", HISTORY + RUN, RUN)
    assert (seen["successes"], seen["failuresTotal"], seen["rejected"]) == (HISTORY, RUN, 1)
    assert "circuit svc: closed -> open (5 failed attempts in a row)" in gateway.log()


def test_a_hanging_upstream_opens_the_breaker_then_a_trial_closes_it(
    upstream: FaultUpstream, gateway: GatewayProcess, http: httpx.Client
) -> None:
    """The upstream hangs: five UPSTREAM_TIMEOUT, then CIRCUIT_OPEN; once it answers again, the first
    call after reset_after is a trial that closes the breaker, and an INFO line says so."""
    upstream.set_mode("hang")
    started = time.monotonic()
    assert calls_until_refused(http) == ["UPSTREAM_TIMEOUT"] * RUN + ["CIRCUIT_OPEN"]
    assert time.monotonic() - started < 10 * RUN * 0.3  # each failure took about one attempt timeout
    assert stats(http)["windowCalls"] == HISTORY + RUN  # 2.5% of the window failed
    upstream.set_mode("ok")
    time.sleep(0.6)  # past reset_after
    assert get_item(http, 0) is None
    seen = stats(http)
    assert (seen["circuitState"], seen["consecutiveFailures"], seen["windowCalls"]) == ("CLOSED", 0, 0)
    log = gateway.log()
    assert "WARNING:  circuit svc: closed -> open (5 failed attempts in a row)" in log
    assert "INFO:     circuit svc: half_open -> closed (1 trial call(s) succeeded)" in log
