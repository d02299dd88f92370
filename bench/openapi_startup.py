"""Start-up cost of an OpenAPI import: GitHub's published document (~1,000 operations, ~13 MB of JSON).

    .venv/bin/python bench/openapi_startup.py [--rounds 5]

Four configs, each measured ``--rounds`` times, alternating within every round:

  baseline    one hand-written REST operation (what start-up costs without any import)
  petstore    the classic Petstore (tests/openapi/petstore.yaml), every operation
  github-5    GitHub's whole document with ``include:`` of five operations
  github-all  GitHub's whole document, every operation

For each: in a fresh interpreter, ``load`` (the config read, the document parsed and mapped) and
``build`` (the GraphQL schema built) in seconds; then ``aggregator serve`` started as a process and
timed until it answers ``{ __typename }`` (``ready``, from spawn, interpreter start included), with its
peak RSS (VmHWM) at that moment. Reported: medians, the ratio to the baseline measured in the same
run, and the number of rounds that failed. The upstream is never called. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import free_port, http_ok, start, wait_ready

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "tests/node/node_modules/@octokit/openapi/generated/api.github.com.json"
PETSTORE = ROOT / "tests/openapi/petstore.yaml"
PYTHON = ROOT / ".venv/bin/python"
FIVE = "[repos/get, issues/list-for-repo, users/get-by-username, repos/list-languages, issues/create]"
CONFIGS = {
    "baseline": "integrations:\n  api:\n    base_url: http://127.0.0.1:9/api\n"
    "    operations: {getUser: {path: '/users/{id}', params: {id: ID!}}}\n",
    "petstore": f"integrations:\n  petstore:\n    base_url: http://127.0.0.1:9/v1\n    openapi: {PETSTORE}\n",
    "github-5": f"integrations:\n  github:\n    base_url: http://127.0.0.1:9\n    openapi: {GITHUB}\n"
    f"    include: {FIVE}\n",
    "github-all": f"integrations:\n  github:\n    base_url: http://127.0.0.1:9\n    openapi: {GITHUB}\n",
}
# Run in a fresh interpreter: the phases of start-up, as seconds, and what the schema holds.
_PHASES = """
import json, sys, time
from aggregator.config import load
from aggregator.module import IntegrationModule
from aggregator.schema import build_schema
t0 = time.perf_counter()
config = load(sys.argv[1])
t1 = time.perf_counter()
module = IntegrationModule(config)
schema = build_schema(module.typed_config(config), module)
t2 = time.perf_counter()
operations = sum(len(i.operations) for i in config.integrations.values())
print(json.dumps({"load": t1 - t0, "build": t2 - t1, "operations": operations, "types": len(config.types)}))
"""
_TYPENAME = json.dumps({"query": "{ __typename }"}).encode()


@dataclass
class Cell:
    load: list[float] = field(default_factory=list)
    build: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    errors: int = 0
    operations: int = 0
    types: int = 0


def phases(config: Path, cell: Cell) -> None:
    done = subprocess.run([PYTHON, "-c", _PHASES, str(config)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        cell.errors += 1
        print(done.stderr[-2000:], file=sys.stderr)
        return
    found = json.loads(done.stdout)
    cell.load.append(found["load"])
    cell.build.append(found["build"])
    cell.operations, cell.types = found["operations"], found["types"]


def serve(name: str, config: Path, cell: Cell, log_dir: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    command = [str(PYTHON), "-m", "aggregator.cli", "serve", "-c", str(config), "--port", str(port)]
    began = time.perf_counter()
    server = start(name, url, [*command, "--log-level", "warning"], log_dir=log_dir, cwd=ROOT)
    try:
        wait_ready(server, lambda: http_ok(url, _TYPENAME), timeout=120)
        cell.ready.append(time.perf_counter() - began)
        cell.rss.append(server.peak_rss_mib())
    except RuntimeError as exc:
        cell.errors += 1
        print(exc, file=sys.stderr)
    finally:
        server.stop()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(cells: dict[str, Cell], rounds: int) -> str:
    base = cells["baseline"]
    lines = [
        f"OpenAPI start-up, medians of {rounds} rounds (ratio to the baseline of the same run)",
        "",
        "| config | operations | types | load s | build s | serve ready s | peak RSS MiB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cell in cells.items():
        ready, rss = _median(cell.ready), _median(cell.rss)
        ratio_ready = ready / _median(base.ready) if base.ready else float("nan")
        ratio_rss = rss / _median(base.rss) if base.rss else float("nan")
        lines.append(
            f"| {name} | {cell.operations} | {cell.types} | {_median(cell.load):.2f} | "
            f"{_median(cell.build):.2f} | {ready:.2f} (x{ratio_ready:.1f}) | {rss:.0f} (x{ratio_rss:.1f}) | "
            f"{cell.errors} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not GITHUB.exists():
        sys.exit(f"{GITHUB} is missing: run `make tests/node/node_modules/.installed`")
    cells = {name: Cell() for name in CONFIGS}
    with tempfile.TemporaryDirectory() as folder:
        log_dir = Path(folder)
        paths = {}
        for name, text in CONFIGS.items():
            paths[name] = log_dir / f"{name}.yaml"
            paths[name].write_text(text)
        for round_ in range(args.rounds):
            order = list(CONFIGS) if round_ % 2 == 0 else list(reversed(CONFIGS))
            for name in order:
                phases(paths[name], cells[name])
                serve(name, paths[name], cells[name], log_dir)
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    print(report(cells, args.rounds))


if __name__ == "__main__":
    main()
