"""The Markdown report: a table per scenario, the aggregator / Hive Gateway ratios, and the targets.

Only ratios measured in the same run mean anything on a shared 2-core machine; the absolute figures are
printed so that a reader can see what the ratios are made of.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loadgen import LoadResult
from scenarios import FANOUT_DELAY_MS, SCENARIOS

TARGET_TITLES = {"direct": "direct upstream", "aggregator": "aggregator", "hive": "Hive Gateway"}
# The project's performance targets, against Hive Gateway in the same run.
RPS_TARGETS = {"rest": 1.5, "fanout": 1.5, "graphql": 1.0, "join": 2.0}
MAX_ADDED_P50_MS = 0.7
MAX_RSS_SHARE = 0.2
# The breaker's rejection "costs no more than a trivial query": requests/s within this share (noise).
BREAKER_RPS_TOLERANCE = 0.9
# "20 ms + overhead, not 100 ms": anything under two sequential calls shows the calls ran concurrently.
FANOUT20_MAX_P50_MS = 2 * FANOUT_DELAY_MS


@dataclass(frozen=True)
class Point:
    target: str
    scenario: str
    clients: int
    load: LoadResult
    cpu_seconds: float
    peak_rss_mib: float
    note: str = ""

    @property
    def rps_per_cpu(self) -> float | None:
        return self.load.requests / self.cpu_seconds if self.cpu_seconds > 0 else None


@dataclass(frozen=True)
class RunInfo:
    started: str
    command: str
    machine: Sequence[str]
    settings: Sequence[str]
    skipped: Sequence[str]
    checks: Sequence[str]
    elapsed_s: float
    final_rss_mib: dict[str, float]


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _find(points: Iterable[Point], target: str, scenario: str, clients: int) -> Point | None:
    return next((p for p in points if (p.target, p.scenario, p.clients) == (target, scenario, clients)), None)


def _scenario_table(points: Sequence[Point], scenario: str) -> list[str]:
    rows = [p for p in points if p.scenario == scenario]
    if not rows:
        return ["(not run)"]
    lines = [
        "| target | clients | req/s | p50 ms | p99 ms | errors HTTP / GraphQL | server CPU s | req per CPU-s "
        "| peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in rows:
        title = TARGET_TITLES[p.target] + (f" ({p.note})" if p.note else "")
        lines.append(
            f"| {title} | {p.clients} | {_num(p.load.rps)} | {p.load.p50_ms:.2f} | {p.load.p99_ms:.2f} "
            f"| {p.load.http_errors} / {p.load.graphql_errors} | {p.cpu_seconds:.2f} | {_num(p.rps_per_cpu)} "
            f"| {p.peak_rss_mib:.0f} |"
        )
    return lines


def _ratio_table(points: Sequence[Point], clients: Sequence[int]) -> list[str]:
    lines = [
        "| scenario | clients | req/s | req per CPU-s | p50 (lower is better) |",
        "|---|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        for c in clients:
            ours, peer = _find(points, "aggregator", scenario.key, c), _find(points, "hive", scenario.key, c)
            if ours is None or peer is None:
                continue
            lines.append(
                f"| {scenario.key} | {c} | {_num(_ratio(ours.load.rps, peer.load.rps), 2)}x "
                f"| {_num(_ratio(ours.rps_per_cpu, peer.rps_per_cpu), 2)}x "
                f"| {_num(_ratio(ours.load.p50_ms, peer.load.p50_ms), 2)}x |"
            )
    return lines


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def _targets(points: Sequence[Point], info: RunInfo) -> list[str]:
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    for scenario, wanted in RPS_TARGETS.items():
        for metric in ("req/s", "req per CPU-s"):
            parts, oks = [], []
            for c in (16, 64):
                ours, peer = _find(points, "aggregator", scenario, c), _find(points, "hive", scenario, c)
                if ours is None or peer is None:
                    continue
                if metric == "req/s":
                    r = _ratio(ours.load.rps, peer.load.rps)
                else:
                    r = _ratio(ours.rps_per_cpu, peer.rps_per_cpu)
                parts.append(f"{_num(r, 2)}x at {c}")
                oks.append(r is not None and r >= wanted)
            verdict = _verdict(all(oks) if oks else None)
            measured = ", ".join(parts) or "—"
            lines.append(
                f"| {metric} >= {wanted}x Hive, {scenario}, 16 and 64 clients | {measured} | {verdict} |"
            )
    for scenario in ("rest", "graphql"):
        direct = _find(points, "direct", scenario, 1)
        ours, peer = _find(points, "aggregator", scenario, 1), _find(points, "hive", scenario, 1)
        if direct is None or ours is None:
            lines.append(f"| p50 added over direct < {MAX_ADDED_P50_MS} ms, {scenario}, 1 client | — | n/a |")
            continue
        added = ours.load.p50_ms - direct.load.p50_ms
        peer_added = peer.load.p50_ms - direct.load.p50_ms if peer else None
        ok = added < MAX_ADDED_P50_MS and (peer_added is None or added <= peer_added / 2)
        lines.append(
            f"| p50 added over direct < {MAX_ADDED_P50_MS} ms and <= half Hive's, {scenario}, 1 client "
            f"| +{added:.2f} ms (Hive +{_num(peer_added, 2)} ms) | {_verdict(ok)} |"
        )
    ours_rss, peer_rss = info.final_rss_mib.get("aggregator"), info.final_rss_mib.get("hive")
    share = _ratio(ours_rss, peer_rss)
    percent = _num(share * 100 if share is not None else None)
    verdict = _verdict(None if share is None else share < MAX_RSS_SHARE)
    lines.append(
        f"| peak RSS < {MAX_RSS_SHARE:.0%} of Hive's | {_num(ours_rss)} MiB vs {_num(peer_rss)} MiB "
        f"({percent}%) | {verdict} |"
    )
    parts, oks = [], []
    for c in (1, 16, 64):
        rejected, trivial = (
            _find(points, "aggregator", "breaker", c),
            _find(points, "aggregator", "trivial", c),
        )
        if rejected is None or trivial is None:
            continue
        r = _ratio(rejected.load.rps, trivial.load.rps)
        parts.append(
            f"{_num(r, 2)}x req/s, p50 {rejected.load.p50_ms:.2f} vs {trivial.load.p50_ms:.2f} ms at {c}"
        )
        oks.append(r is not None and r >= BREAKER_RPS_TOLERANCE)
    lines.append(
        "| open-breaker rejection costs no more than a trivial query "
        f"(req/s >= {BREAKER_RPS_TOLERANCE:.0%} of it) | {'; '.join(parts) or '—'} "
        f"| {_verdict(all(oks) if oks else None)} |"
    )
    fan = _find(points, "aggregator", "fanout20", 1)
    peer_fan = _find(points, "hive", "fanout20", 1)
    lines.append(
        f"| fan-out with {FANOUT_DELAY_MS} ms upstreams answers in {FANOUT_DELAY_MS} ms + overhead "
        f"(p50 < {FANOUT20_MAX_P50_MS} ms at 1 client) | {_num(fan.load.p50_ms if fan else None, 2)} ms "
        f"(Hive {_num(peer_fan.load.p50_ms if peer_fan else None, 2)} ms) "
        f"| {_verdict(None if fan is None else fan.load.p50_ms < FANOUT20_MAX_P50_MS)} |"
    )
    return lines


def render(points: Sequence[Point], info: RunInfo, clients: Sequence[int]) -> str:
    out = [f"# Benchmark: aggregator vs Hive Gateway, {info.started}", ""]
    out += ["Command: `" + info.command + "`", ""]
    out += ["## Machine and settings", "", *(f"- {line}" for line in (*info.machine, *info.settings)), ""]
    out += ["## Ratios aggregator / Hive Gateway (same run)", "", *_ratio_table(points, clients), ""]
    out += ["## Performance targets", "", *_targets(points, info), ""]
    out += ["## Results per scenario", ""]
    for scenario in SCENARIOS:
        out += [f"### {scenario.key}: {scenario.title}", "", *_scenario_table(points, scenario.key), ""]
    out += [
        "Errors: HTTP = non-2xx answers plus socket errors and timeouts; GraphQL = answers with an `errors` "
        "entry (expected in every answer of `breaker`). Server CPU s: user + system time of the target's "
        "processes during the point (for the direct target, the upstream's). Peak RSS: VmHWM so far.",
        "",
    ]
    out += ["## Sample check before the load", "", *(f"- {line}" for line in info.checks), ""]
    if info.skipped:
        out += ["## Not run", "", *(f"- {line}" for line in info.skipped), ""]
    out += [f"Total time: {info.elapsed_s:.0f} s.", ""]
    return "\n".join(out)
