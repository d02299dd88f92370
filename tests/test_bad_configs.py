"""Broken configs through the command line users run: ``aggregator check -c FILE``.

Every file of the corpus (tests/configs/bad, each announcing its problem on its first line) is checked
in a process of its own: exit status 2, the announced ``FILE:LINE: key: message`` line on stderr, no
traceback. ``clirun`` forks those processes from one that imported the CLI once (a fresh interpreter
per file would cost a minute); the console script itself is run on a sample to show it answers the
same. Generated configs, valid and not, must get exit 0 or 2 from ``check``, never a crash.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import gateway_sdl
from figures import report
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_config_corpus import BAD, expectation

from aggregator.cli import main
from aggregator.config import load

ENV = {"USERS_TOKEN": "corpus-users-token"}
CONSOLE_SCRIPT = Path(sys.executable).parent / "aggregator"
SAMPLE = [path for path in BAD if path.stem in ("syntax_tab_indentation", "env_missing", "unknown_retry_key")]


def _environment() -> dict[str, str]:
    # The corpus's "missing variable" files name variables that must stay unset.
    env = {name: value for name, value in os.environ.items() if not name.startswith("CORPUS_UNSET")}
    return {**env, **ENV}


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, dict[str, Any]]:
    """`aggregator check -c FILE` for every corpus file, each in a forked process of its own."""
    runs = tmp_path_factory.mktemp("clirun") / "runs.json"
    runs.write_text(json.dumps([["check", "-c", str(path)] for path in BAD]))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "clirun.py"), str(runs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_environment(),
        check=True,
    )
    return dict(zip(BAD, json.loads(done.stdout), strict=True))


@pytest.mark.parametrize("path", BAD, ids=lambda path: path.stem)
def test_check_refuses_the_file_with_exit_2_and_its_file_line_key_message(
    path: Path, checked: dict[Path, dict[str, Any]]
) -> None:
    """Exit 2, the announced `FILE:LINE: key: message` line on stderr, nothing on stdout, no traceback."""
    line, key, message = expectation(path)
    result = checked[path]
    assert result["status"] == 2, result
    prefix = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    lines = result["stderr"].splitlines()
    assert any(text.startswith(prefix) and message in text for text in lines), result["stderr"]
    assert "Traceback" not in result["stderr"]
    assert result["stdout"] == ""


@pytest.mark.parametrize("path", SAMPLE, ids=lambda path: path.stem)
def test_the_console_script_answers_as_the_forked_runs_do(
    path: Path, checked: dict[Path, dict[str, Any]]
) -> None:
    """The real `aggregator` executable gives the same status and output as the forked run."""
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
        check=False,
    )
    forked = checked[path]
    assert (done.returncode, done.stdout, done.stderr) == (
        forked["status"],
        forked["stdout"],
        forked["stderr"],
    )


# Generated configs ---------------------------------------------------------------------------------------

# Underscores too: Strawberry's camel-casing of such names once broke the schema `check` accepted.
TYPE_NAMES = ["User", "Simple_User", "gh_Label"]
SCALARS = ["ID", "String", "Int", "Float", "Boolean", "JSON", "DateTime"]


def _type_expr(names: list[str]) -> st.SearchStrategy[str]:
    base = st.sampled_from([*SCALARS, *names, "Nope"])
    return st.builds(
        lambda name, listed, inner, outer: (f"[{name}{'!' * inner}]" if listed else name) + "!" * outer,
        base,
        st.booleans(),
        st.booleans(),
        st.booleans(),
    )


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid configs, with types used, unused, missing or cyclic, and operations of every shape."""
    names = draw(st.lists(st.sampled_from(TYPE_NAMES), unique=True, max_size=3))
    types = {
        name: draw(
            st.dictionaries(
                st.sampled_from(["id", "name", "next", "tags", "first_name"]), _type_expr(names), min_size=1
            )
        )
        for name in names
    }
    operations: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 3))):
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
        with_id = draw(st.booleans())
        params: dict[str, Any] = {"id": "ID!"} if with_id else {}
        params |= draw(st.dictionaries(st.sampled_from(["q", "n", "flag", "data"]), st.sampled_from(SCALARS)))
        operation: dict[str, Any] = {"method": method, "path": "/items/{id}" if with_id else "/items"}
        if params:
            operation["params"] = params
        if draw(st.booleans()):
            operation["returns"] = draw(_type_expr(names))
        operations[f"op{index}"] = operation
    config: dict[str, Any] = {
        "integrations": {"shop": {"base_url": "http://127.0.0.1:9/api", "operations": operations}}
    }
    if types:
        config["types"] = types
    return config


@pytest.fixture(scope="module")
def generated(pytestconfig: pytest.Config) -> Iterator[list[int]]:
    statuses: list[int] = []
    yield statuses
    valid = statuses.count(0)
    report(
        pytestconfig,
        f"generated configs checked: {len(statuses)} ({valid} valid, {len(statuses) - valid} refused)",
    )


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(config=configs())
def test_check_of_a_generated_config_exits_0_or_2_and_never_crashes(
    config: dict[str, Any], generated: list[int]
) -> None:
    """Whatever the config, `check` answers ok (0) or lists problems (2); an exception is a bug."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "integrations.yaml"
        path.write_text(yaml.safe_dump(config))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["check", "-c", str(path)])
        if status == 0:
            # What `check` accepts, `serve` serves: the gateway's schema builds.
            assert gateway_sdl(load(path))
    generated.append(status)
    assert status in (0, 2), err.getvalue()
    if status == 2:
        assert all(
            line.startswith(f"{path}:") or line.startswith("aggregator check:")
            for line in err.getvalue().splitlines()
        )
