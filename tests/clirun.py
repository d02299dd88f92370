"""Run the ``aggregator`` command line many times, each run in a process of its own, cheaply.

Starting Python and importing the gateway costs about half a second on this machine; a hundred
``aggregator check`` runs would cost a minute. This driver imports ``aggregator.cli`` once and then
forks one child per run: each child runs the command's ``main`` as the console script does, with its
own stdout, stderr and exit status; an exception escaping ``main`` is printed as the interpreter
would (a traceback, status 1), so a test sees exactly what a user would.

    python tests/clirun.py FILE-OF-RUNS   # a JSON list of argument lists; prints a JSON list of results
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from aggregator.cli import main


def _run_forked(argv: list[str], scratch: Path) -> dict[str, Any]:
    out, err = scratch / "stdout", scratch / "stderr"
    pid = os.fork()
    if pid == 0:  # the child: become the command
        with out.open("wb") as stdout, err.open("wb") as stderr:
            os.dup2(stdout.fileno(), 1)
            os.dup2(stderr.fileno(), 2)
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            status = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return {
        "argv": argv,
        "status": os.waitstatus_to_exitcode(wait_status),
        "stdout": out.read_text(errors="replace"),
        "stderr": err.read_text(errors="replace"),
    }


def run_all(runs: list[list[str]]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as scratch:
        return [_run_forked(argv, Path(scratch)) for argv in runs]


if __name__ == "__main__":
    print(json.dumps(run_all(json.loads(Path(sys.argv[1]).read_text()))))
