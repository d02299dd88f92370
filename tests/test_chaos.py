"""The chaos run: the real gateway process under 50 concurrent clients while one upstream flips.

The gateway runs as ``aggregator serve`` in its own process, in front of three real loopback
upstreams; ``flaky`` is healthy, then answers 500s, then is healthy, then hangs, then is healthy
again, a few seconds each. One load run is shared by the tests below, each asserting one property
of it; the figures are printed as a ``FIGURE chaos run: ...`` line. ``AGGREGATOR_CHAOS_SECONDS``
sets the run's length (default 20).

Isolation needs a baseline, and this box is shared and noisy: a baseline measured before or after
would meet other noise than the run it is compared with. So the baseline runs at the same time: a
control gateway, identical but for its ``flaky`` integration pointing at an upstream that never
fails, under the same 50-client load from the same process. Healthy requests on the chaos gateway
while flaky fails are compared with healthy requests on the control gateway at the same moments.

Graceful shutdown has its own runs: SIGTERM with 50 requests in flight.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import pytest
from faults import FaultUpstream, Seen
from figures import report
from gateway_process import GatewayProcess, gateway_process
from loadgen import Kind, Shot, percentile, problem_with, run_clients

from aggregator.upstreams.wire import KEEPALIVE_EXPIRY  # idle upstream connections are dropped after this

CHAOS_SECONDS = float(os.environ.get("AGGREGATOR_CHAOS_SECONDS", "20"))
CLIENTS = 50
WARM_UP = 1.0
# The flaky upstream's modes during the chaos part, each for an equal share of it.
SEGMENTS = ("ok", "status", "ok", "hang", "ok")

ATTEMPT_TIMEOUT = 0.3
DEADLINE = 1.0
RESET_AFTER = 1.0
CLIENT_TIMEOUT = 5.0
POLL = 0.05
# Mean pause between a client's requests: the offered load stays below what this box serves, so
# latency measures the gateway rather than queueing in front of it.
PAUSE = 0.3
# A request admitted just before the breaker opened may reach the upstream a little after.
STRAGGLER = 0.1

CONFIG = """
types:
  Item: {{id: "ID!", name: String}}
integrations:
  alpha:
    base_url: {alpha}
    timeout: 2s
    operations:
      getItem: {{path: "/items/{{id}}", params: {{id: "ID!"}}, returns: Item}}
      createItem: {{method: POST, path: /items, params: {{id: "ID!"}}, returns: Item}}
  beta:
    base_url: {beta}
    timeout: 2s
    operations:
      getItem: {{path: "/items/{{id}}", params: {{id: "ID!"}}, returns: Item}}
  flaky:
    base_url: {flaky}
    timeout: {timeout}s
    retry: {{max_attempts: 2, initial_wait: 20ms, max_wait: 100ms, deadline: {deadline}s}}
    # The rate rule only. These upstreams share a process with the 50 clients; on a busy machine that
    # process stalls past the 0.3 s attempt timeout, failing every flaky call in flight at once: five in
    # a row, which the run rule rightly acts on, in a segment this run calls healthy. The run rule is
    # tested in test_outage.py and test_breaker.py.
    circuit_breaker:
      {{threshold: 5, failure_rate: 0.5, window: 2s, reset_after: {reset_after}s,
        consecutive_failures: false}}
    operations:
      getItem: {{path: "/items/{{id}}", params: {{id: "ID!"}}, returns: Item}}
      createItem: {{method: POST, path: /items, params: {{id: "ID!"}}, returns: Item}}
"""

ALL_THREE = '{ alpha_getItem(id: "w") { id } beta_getItem(id: "w") { id } flaky_getItem(id: "w") { id } }'
KINDS = [
    Kind("healthy", '{ alpha_getItem(id: "a") { id } beta_getItem(id: "b") { id } }', 0.45),
    Kind("flaky", '{ flaky_getItem(id: "f") { id } beta_getItem(id: "b") { id } }', 0.35),
    Kind(
        "flaky_mutation",
        "mutation($ref: ID!) { flaky_createItem(id: $ref) { id } }",
        0.12,
        lambda r: {"ref": r},
    ),
    Kind(
        "alpha_mutation",
        "mutation($ref: ID!) { alpha_createItem(id: $ref) { id } }",
        0.08,
        lambda r: {"ref": r},
    ),
]


@dataclass(frozen=True)
class Segment:
    mode: str
    start: float  # wall clock, once the upstream acts so
    end: float


@dataclass(frozen=True)
class Sample:
    at: float
    state: str
    opened_at: float | None


@dataclass
class ChaosRun:
    shots: list[Shot]  # the chaos gateway's requests
    control_shots: list[Shot]  # the control gateway's
    segments: list[Segment]
    samples: list[Sample]
    flaky_seen: list[Seen]
    mutations_seen: list[Seen]  # every POST every upstream received
    sockets: tuple[list[str], list[str]]
    rss: tuple[int, int]
    log: str
    seconds: float
    gateway_cpu: float  # seconds of CPU the gateway used during the load
    tester_cpu: float  # ... and this process: load generator, upstreams, poller

    @property
    def failing(self) -> list[Segment]:
        return [s for s in self.segments if s.mode != "ok"]

    def healthy_latencies(self, shots: list[Shot]) -> list[float]:
        """Latencies of the healthy-only requests made while flaky failed."""
        return [
            s.latency
            for seg in self.failing
            for s in shots
            if s.kind == "healthy" and seg.start <= s.started < seg.end
        ]


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


async def _poll_breaker(url: str, stop: asyncio.Event) -> list[Sample]:
    samples = []
    query = '{ integrationStats(id: "flaky") { circuitState openedAt } }'
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT) as http:
        while not stop.is_set():
            at = time.time()
            body = (await http.post("/graphql", json={"query": query})).json()
            (stats,) = body["data"]["integrationStats"]
            samples.append(Sample(at, stats["circuitState"], _epoch(stats["openedAt"])))
            await asyncio.sleep(POLL)
    return samples


async def _flip(flaky: FaultUpstream, chaos_starts: float, segment_seconds: float) -> list[Segment]:
    """Switch the flaky upstream's mode on schedule; the segments as they really happened."""
    begun: list[tuple[str, float]] = []
    for index, mode in enumerate(SEGMENTS):
        await asyncio.sleep(max(0.0, chaos_starts + index * segment_seconds - time.monotonic()))
        options = {"code": 500} if mode == "status" else {}
        await asyncio.to_thread(flaky.set_mode, mode, **options)
        begun.append((mode, time.time()))
    await asyncio.sleep(max(0.0, chaos_starts + len(SEGMENTS) * segment_seconds - time.monotonic()))
    ends = [start for _, start in begun[1:]] + [time.time()]
    return [Segment(mode, start, end) for (mode, start), end in zip(begun, ends, strict=True)]


async def _load(
    gateway: GatewayProcess, control: GatewayProcess, flaky: FaultUpstream
) -> tuple[list[Shot], list[Shot], list[Segment], list[Sample]]:
    segment_seconds = CHAOS_SECONDS / len(SEGMENTS)
    stop = asyncio.Event()
    poller = asyncio.ensure_future(_poll_breaker(gateway.url, stop))
    flipper = asyncio.ensure_future(_flip(flaky, time.monotonic() + WARM_UP, segment_seconds))
    # The same seed: both gateways get the same sequence of requests.
    shots, control_shots = await asyncio.gather(
        *(
            run_clients(
                url,
                KINDS,
                clients=CLIENTS,
                seconds=WARM_UP + CHAOS_SECONDS,
                timeout=CLIENT_TIMEOUT,
                pause=PAUSE,
                seed=5,
            )
            for url in (gateway.url, control.url)
        )
    )
    segments = await flipper
    stop.set()
    return shots, control_shots, segments, await poller


def _warm_request(gateway: GatewayProcess) -> None:
    """One request through all three integrations on a fresh connection, closed after: the idle
    upstream connections past their keep-alive are dropped on it, so each pool holds one."""
    with httpx.Client(base_url=gateway.url, timeout=CLIENT_TIMEOUT) as http:
        response = http.post("/graphql", json={"query": ALL_THREE})
    assert problem_with(response.status_code, response.content) is None, response.text


def _settled_sockets(gateway: GatewayProcess, at_most: int) -> list[str]:
    """The gateway's sockets once no more than ``at_most`` remain (closing ones get 5 s to go)."""
    deadline = time.monotonic() + 5
    sockets = gateway.sockets()
    while len(sockets) > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
        sockets = gateway.sockets()
    return sockets


def _config(directory: Path, name: str, alpha: str, beta: str, flaky: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(
        CONFIG.format(
            alpha=alpha,
            beta=beta,
            flaky=flaky,
            timeout=ATTEMPT_TIMEOUT,
            deadline=DEADLINE,
            reset_after=RESET_AFTER,
        )
    )
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[ChaosRun]:
    directory = tmp_path_factory.mktemp("chaos")
    with (
        FaultUpstream() as alpha,
        FaultUpstream() as beta,
        FaultUpstream() as flaky,
        FaultUpstream() as steady,
        gateway_process(_config(directory, "chaos", alpha.url, beta.url, flaky.url)) as gateway,
        gateway_process(_config(directory, "control", alpha.url, beta.url, steady.url)) as control,
    ):
        _warm_request(gateway)
        time.sleep(0.5)  # the closed client connection's server side goes
        sockets_before = gateway.sockets()
        rss_before = gateway.rss_bytes()
        started, cpu_started, tester_started = time.monotonic(), gateway.cpu_seconds(), time.process_time()
        shots, control_shots, segments, samples = asyncio.run(_load(gateway, control, flaky))
        seconds = time.monotonic() - started
        gateway_cpu, tester_cpu = gateway.cpu_seconds() - cpu_started, time.process_time() - tester_started
        time.sleep(KEEPALIVE_EXPIRY + 0.5)
        _warm_request(gateway)
        sockets_after = _settled_sockets(gateway, at_most=len(sockets_before))
        result = ChaosRun(
            shots=shots,
            control_shots=control_shots,
            segments=segments,
            samples=samples,
            flaky_seen=flaky.seen,
            mutations_seen=[
                seen for up in (alpha, flaky, steady) for seen in up.seen if seen.method == "POST"
            ],
            sockets=(sockets_before, sockets_after),
            rss=(rss_before, gateway.rss_bytes()),
            log=gateway.log(),
            seconds=seconds,
            gateway_cpu=gateway_cpu,
            tester_cpu=tester_cpu,
        )
    yield result
    report(pytestconfig, _figures(result))


# The properties --------------------------------------------------------------------------------------


def _unclean(run: ChaosRun) -> list[Shot]:
    return [shot for shot in [*run.shots, *run.control_shots] if shot.problem is not None]


def _mutation_tally(run: ChaosRun) -> tuple[int, int, int]:
    """(mutations sent, lost: answered with data but not received once, duplicated: received twice+)."""
    received = Counter(seen.json()["id"] for seen in run.mutations_seen)
    mutations = [s for s in [*run.shots, *run.control_shots] if s.ref is not None]
    field = {"flaky_mutation": "flaky_createItem", "alpha_mutation": "alpha_createItem"}
    lost = sum(1 for s in mutations if s.problem is None and s.data(field[s.kind]) and received[s.ref] != 1)
    duplicated = sum(1 for count in received.values() if count > 1)
    return len(mutations), lost, duplicated


def _isolation(run: ChaosRun) -> tuple[float, float]:
    """Healthy requests while flaky failed, chaos gateway against control: (p99 ratio, median ratio)."""
    chaos, control = run.healthy_latencies(run.shots), run.healthy_latencies(run.control_shots)
    return percentile(chaos, 0.99) / percentile(control, 0.99), median(chaos) / median(control)


def _recoveries(run: ChaosRun) -> list[float]:
    """Seconds from each failing segment's end (upstream healthy again) to the first request it then
    received: the trial that closes the breaker."""
    found = []
    for segment in run.failing:
        later = [seen.at for seen in run.flaky_seen if seen.at >= segment.end]
        found.append(min(later) - segment.end if later else float("inf"))
    return found


def _figures(run: ChaosRun) -> str:
    sent, lost, duplicated = _mutation_tally(run)
    p99_ratio, median_ratio = _isolation(run)
    chaos, control = run.healthy_latencies(run.shots), run.healthy_latencies(run.control_shots)
    return (
        f"chaos run: {len(run.shots)} requests in {run.seconds:.1f}s by {CLIENTS} clients "
        f"({len(run.shots) / run.seconds:.0f}/s; CPU: gateway {run.gateway_cpu / run.seconds:.0%}, "
        f"load generator and upstreams {run.tester_cpu / run.seconds:.0%}), "
        f"unclean errors {len(_unclean(run))}, mutations {sent} (lost {lost}, duplicated {duplicated}), "
        f"RSS growth {(run.rss[1] - run.rss[0]) / 2**20:.1f} MB, "
        f"sockets {len(run.sockets[0])} -> {len(run.sockets[1])}, "
        f"healthy p99 while flaky failed {percentile(chaos, 0.99) * 1000:.0f} ms vs control "
        f"{percentile(control, 0.99) * 1000:.0f} ms "
        f"(isolation ratio p99 {p99_ratio:.2f}, median {median_ratio:.2f}), "
        f"breaker recovery {', '.join(f'{r:.2f}s' for r in _recoveries(run))}"
    )


def test_every_request_got_a_well_formed_graphql_answer(run: ChaosRun) -> None:
    """No HTTP 5xx from the gateway, no client timeout, no error without a known code."""
    unclean = _unclean(run)
    assert len(run.shots) >= 10 * CHAOS_SECONDS
    assert not unclean, Counter(shot.problem for shot in unclean)


def test_the_failing_upstream_added_no_more_than_its_deadline(run: ChaosRun) -> None:
    """A request touching the failing upstream is answered within that integration's deadline, on top
    of the slowest the same request took on the control gateway (this box's own noise)."""
    slowest = max(shot.latency for shot in run.shots if shot.kind == "flaky")
    control = max(shot.latency for shot in run.control_shots if shot.kind == "flaky")
    assert slowest <= control + DEADLINE + 0.5, (slowest, control)


def test_the_healthy_integrations_never_failed(run: ChaosRun) -> None:
    """alpha and beta answered every request, whatever flaky was doing."""
    errors = [
        error
        for shot in run.shots
        if shot.body
        for error in shot.body.get("errors", [])
        if not error["path"][0].startswith("flaky_")
    ]
    assert errors == []


def test_the_breaker_stayed_closed_while_everything_was_healthy(run: ChaosRun) -> None:
    """No breaker trips before the first failure."""
    first = run.segments[0]
    assert {s.state for s in run.samples if s.at < first.end} == {"CLOSED"}


def test_the_breaker_opened_while_the_upstream_failed(run: ChaosRun) -> None:
    """In each failing segment (500s, then hangs) the breaker was seen OPEN."""
    for segment in run.failing:
        states = {s.state for s in run.samples if segment.start <= s.at < segment.end}
        assert "OPEN" in states, (segment.mode, states)


def test_the_breaker_closed_within_reset_after_and_one_trial_of_recovery(run: ChaosRun) -> None:
    """Once the upstream is healthy again, a trial reaches it within reset_after plus one (possibly
    hanging) earlier trial, plus a noisy-box margin, and the breaker is then seen CLOSED."""
    for segment, recovery in zip(run.failing, _recoveries(run), strict=True):
        assert recovery <= RESET_AFTER + ATTEMPT_TIMEOUT + 1.0, segment.mode
        trial = segment.end + recovery
        assert any(s.state == "CLOSED" for s in run.samples if s.at > trial), segment.mode


def test_while_open_the_failing_upstream_saw_only_the_half_open_trials(run: ChaosRun) -> None:
    """After the breaker opened, the failing upstream received at most one request per reset_after:
    the single half-open trial, each failure of which reopened the breaker for another reset_after."""
    for segment in run.failing:
        opened = [
            s.opened_at for s in run.samples if s.opened_at and segment.start <= s.opened_at <= segment.end
        ]
        assert opened, segment.mode
        first_open = min(opened)
        arrivals = [seen.at for seen in run.flaky_seen if first_open + STRAGGLER < seen.at < segment.end]
        gaps = [later - earlier for earlier, later in zip([first_open, *arrivals], arrivals, strict=False)]
        assert all(gap >= RESET_AFTER - STRAGGLER for gap in gaps), (segment.mode, gaps)


def test_no_mutation_was_lost_or_duplicated(run: ChaosRun) -> None:
    """Every mutation answered with data reached its upstream exactly once; none arrived twice."""
    sent, lost, duplicated = _mutation_tally(run)
    assert sent >= 2 * CHAOS_SECONDS
    assert (lost, duplicated) == (0, 0)


# Below this difference in p99 the ratio measures the shared 2-core machine's scheduling, not the
# gateway: two gateways answering in 10-40 ms differ by that much from one run to the next. A broken
# isolation shows up as the failing upstream's timeouts (seconds) in the healthy fields' latency.
SCHEDULING_NOISE = 0.05


def test_healthy_latency_stayed_within_twice_the_baseline(run: ChaosRun) -> None:
    """Isolation: the p99 of requests that only touch healthy upstreams, while flaky failed, is within
    2x of the same requests' on the control gateway at the same moments (or within the machine's
    scheduling noise of it)."""
    chaos, control = run.healthy_latencies(run.shots), run.healthy_latencies(run.control_shots)
    p99_chaos, p99_control = percentile(chaos, 0.99), percentile(control, 0.99)
    assert p99_chaos <= 2.0 * p99_control or p99_chaos - p99_control < SCHEDULING_NOISE, (
        p99_chaos,
        p99_control,
    )


def test_memory_and_sockets_returned_to_their_start(run: ChaosRun) -> None:
    """RSS grew by less than 20 MB and the gateway holds no more sockets than before the run."""
    assert run.rss[1] - run.rss[0] < 20 * 2**20
    before, after = run.sockets
    assert len(after) <= len(before), f"before: {before}\nafter: {after}"


def test_the_gateway_wrote_no_traceback(run: ChaosRun) -> None:
    """Thousands of upstream failures are logged as one-line warnings, never as tracebacks."""
    assert "Traceback" not in run.log


# Graceful shutdown under load --------------------------------------------------------------------------

IN_FLIGHT = 50
SHUTDOWN_TIMEOUT = 2.0  # the upstream's attempt timeout: what bounds an in-flight request
SHUTDOWN_CONFIG = """
integrations:
  slow:
    base_url: {url}
    timeout: {timeout}s
    operations:
      getItem: {{path: "/items/{{id}}", params: {{id: "ID!"}}}}
"""


async def _terminate_with_requests_in_flight(
    gateway: GatewayProcess, upstream: FaultUpstream
) -> tuple[list[httpx.Response | BaseException], float]:
    """Send IN_FLIGHT requests, SIGTERM once the upstream holds them all; their outcomes and the
    seconds from the signal to the process's exit."""
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=CLIENT_TIMEOUT * 2, limits=limits) as http:
        requests = [
            asyncio.ensure_future(http.post("/graphql", json={"query": f'{{ slow_getItem(id: "{n}") }}'}))
            for n in range(IN_FLIGHT)
        ]
        assert await asyncio.to_thread(upstream.wait_for, IN_FLIGHT, CLIENT_TIMEOUT * 2)
        gateway.terminate()
        signalled = time.monotonic()
        outcomes = await asyncio.gather(*requests, return_exceptions=True)
        await asyncio.to_thread(gateway.process.wait, SHUTDOWN_TIMEOUT + CLIENT_TIMEOUT)
        return outcomes, time.monotonic() - signalled


@pytest.mark.parametrize(
    ("mode", "options", "code"),
    [
        pytest.param("delay", {"seconds": 1.0}, None, id="slow-upstream-answers"),
        pytest.param("hang", {}, "UPSTREAM_TIMEOUT", id="hung-upstream-times-out"),
    ],
)
def test_sigterm_lets_every_request_in_flight_finish_then_exits(
    tmp_path: Path, mode: str, options: dict[str, Any], code: str | None
) -> None:
    """SIGTERM with 50 requests in flight: each gets a full GraphQL answer (its data, or a clean error
    when its upstream hangs: the attempt timeout bounds the wait), none hangs, and the process exits
    with status 0 as soon as they are done."""
    with FaultUpstream() as upstream:
        config = tmp_path / "shutdown.yaml"
        config.write_text(SHUTDOWN_CONFIG.format(url=upstream.url, timeout=SHUTDOWN_TIMEOUT))
        upstream.set_mode(mode, **options)
        with gateway_process(config) as gateway:
            outcomes, exited_after = asyncio.run(_terminate_with_requests_in_flight(gateway, upstream))
            assert gateway.process.returncode == 0, gateway.log()
            assert "Traceback" not in gateway.log()
    for outcome in outcomes:
        assert isinstance(outcome, httpx.Response), repr(outcome)
        assert problem_with(outcome.status_code, outcome.content) is None, outcome.text
        errors = outcome.json().get("errors", [])
        assert [e["extensions"]["code"] for e in errors] == ([code] if code else [])
    assert exited_after < SHUTDOWN_TIMEOUT + 2.0
