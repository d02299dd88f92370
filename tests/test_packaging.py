"""The package as users install it: a wheel built by the Dockerfile's own steps, installed into a fresh
virtual environment, serves GraphiQL with its assets from inside the installed package; a build that
cannot get the assets fails instead of producing a wheel whose GraphiQL page says they are missing.

Docker itself is not needed: the Dockerfile's build stage is run here step by step (the test checks the
Dockerfile still holds exactly these steps). The fresh environment gets the wheel with --no-deps and
reads the dependencies from the test's own environment, so nothing is downloaded for it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import closed_port_url

ROOT = Path(__file__).resolve().parents[1]
# The Dockerfile's build stage, verbatim: what it copies into /src and the command that builds the wheel.
BUILD_STEPS = """\
WORKDIR /src
COPY pyproject.toml README.md MANIFEST.in build_backend.py ./
COPY aggregator ./aggregator
RUN pip wheel --no-deps --wheel-dir /wheels .
"""
ASSETS = "aggregator/server/static/graphiql"
CONFIG = """\
integrations:
  users:
    base_url: http://127.0.0.1:9/api
    operations:
      getUser: {path: "/users/{id}", params: {id: "ID!"}}
"""
STARTUP_SECONDS = 60


def copy_sources(into: Path, *, with_assets: bool = True) -> None:
    """What the build stage's COPY lines put into its WORKDIR, less compiled files (and assets if asked)."""
    leave_out = ["__pycache__", "*.pyc"] + ([] if with_assets else ["static"])
    for line in BUILD_STEPS.splitlines():
        if line.startswith("COPY "):
            *sources, target = line.split()[1:]
            for source in sources:
                destination = into / target / (Path(source).name if target.endswith("/") else "")
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, destination, ignore=shutil.ignore_patterns(*leave_out))
                else:
                    shutil.copy(ROOT / source, destination)


def build_command(wheels: Path) -> list[str]:
    """The build stage's RUN line, with this interpreter's pip and ``wheels`` for /wheels."""
    run = next(line for line in BUILD_STEPS.splitlines() if line.startswith("RUN "))
    words = [str(wheels) if word == "/wheels" else word for word in shlex.split(run)[1:]]
    assert words[0] == "pip"
    return [sys.executable, "-m", *words]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel the Dockerfile builds, from a copy of the sources (the build writes into its tree)."""
    work = tmp_path_factory.mktemp("docker-build")
    source, wheels = work / "src", work / "wheels"
    source.mkdir()
    copy_sources(source)
    result = subprocess.run(
        build_command(wheels), cwd=source, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = wheels.glob("aggregator-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (no deps: they come from this environment)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    # A .pth file adds this environment's site-packages after the fresh one's own: its .pth files (this
    # checkout's editable install among them) are not run, so `aggregator` is the installed wheel.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`aggregator serve` of the fresh environment on a free port, run outside the source tree."""
    work = tmp_path_factory.mktemp("serve")
    (work / "integrations.yaml").write_text(CONFIG)
    process = subprocess.Popen(
        [str(installed / "bin" / "aggregator"), "serve", "--port", "0", "--log-level", "warning"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the first line it prints, once it accepts requests
        assert line.startswith("listening on http://"), line + process.stderr.read()
        yield line.removeprefix("listening on ").strip().removesuffix("/graphql")
    finally:
        process.terminate()
        process.communicate(timeout=STARTUP_SECONDS)


def test_the_dockerfile_builds_the_wheel_with_these_steps() -> None:
    """The steps these tests run are the Dockerfile's build stage, verbatim."""
    assert BUILD_STEPS in (ROOT / "Dockerfile").read_text()


def test_the_wheel_carries_the_graphiql_assets(wheel: Path) -> None:
    """Every pinned asset and the manifest naming their versions are inside the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = {name.removeprefix(f"{ASSETS}/") for name in archive.namelist() if name.startswith(ASSETS)}
    assert names == {
        "manifest.json",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "graphiql.min.css",
    }


def test_the_fresh_environment_runs_the_installed_package(installed: Path) -> None:
    """`aggregator` there is the wheel's copy, not this checkout, and knows its version."""
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import aggregator; print(aggregator.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=installed,
    ).stdout
    assert Path(where.strip()).is_relative_to(installed)
    version = subprocess.run(
        [str(installed / "bin" / "aggregator"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version.startswith("aggregator 0.")


def test_the_installed_gateway_serves_graphiql_and_its_assets(served: str, wheel: Path) -> None:
    """A browser gets the GraphiQL page, and its script comes from the installed package, byte for byte."""
    page = httpx.get(f"{served}/graphql", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200
    assert "/graphiql/static/graphiql.min.js" in page.text
    assert "not installed" not in page.text
    script = httpx.get(f"{served}/graphiql/static/graphiql.min.js", timeout=30)
    assert script.status_code == 200
    with zipfile.ZipFile(wheel) as archive:
        assert script.content == archive.read(f"{ASSETS}/graphiql.min.js")


def test_a_build_that_cannot_fetch_the_assets_fails_and_says_why(tmp_path: Path) -> None:
    """No assets in the tree and no registry: the build hook exits non-zero naming the problem, and no
    wheel is written. (The hook is called as pip calls it, without pip's isolated environment.)"""
    source, wheels = tmp_path / "src", tmp_path / "wheels"
    source.mkdir()
    wheels.mkdir()
    copy_sources(source, with_assets=False)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import build_backend, sys; build_backend.build_wheel(sys.argv[1])",
            str(wheels),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AGGREGATOR_NPM_REGISTRY": closed_port_url()},
        check=False,
    )
    assert result.returncode != 0
    assert "GraphiQL's assets must be inside the package" in result.stderr
    assert list(wheels.iterdir()) == []
    assert not (source / ASSETS).exists()


def test_a_wheel_without_the_assets_is_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build's last check: a wheel lacking an asset (say, package data that stopped matching them)
    is removed and the build fails."""
    monkeypatch.syspath_prepend(str(ROOT))
    import build_backend

    wheel = tmp_path / "aggregator-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("aggregator/__init__.py", "")
        archive.writestr(f"{ASSETS}/manifest.json", "{}")
    with pytest.raises(SystemExit, match="lacks GraphiQL's assets"):
        build_backend._check_wheel(wheel)
    assert not wheel.exists()
