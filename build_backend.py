"""The package's build backend: setuptools' own, plus GraphiQL's browser assets inside every build.

The gateway serves GraphiQL's scripts and styles itself (browsers behind it may reach no CDN), so a
wheel without them would serve a page saying they are missing. Every build therefore fetches them
into ``aggregator/server/static/graphiql/`` first when this tree does not hold the pinned versions
(``aggregator/server/assets.py``: pinned npm tarballs, checked against their sha512 integrity), and a
wheel that still lacks one of them is deleted and the build fails. That covers ``pip install .``,
``pip wheel .``, ``python -m build`` (the sdist carries the assets, so its wheel needs no network),
the Dockerfile, and editable installs (``make``), which serve the assets from the source tree.

``pyproject.toml`` names this module with ``backend-path = ["."]``: setuptools' documented way to wrap
its backend. The assets module needs only the standard library, so it imports in the isolated build
environment, where nothing but setuptools is installed.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403 - every other hook is setuptools' own, unchanged

from aggregator.server.assets import MANIFEST, PACKAGES, STATIC_DIR, AssetFetchError, fetch_assets

ConfigSettings = dict[str, str | list[str]] | None

_IN_PACKAGE = STATIC_DIR.relative_to(STATIC_DIR.parents[3]).as_posix()  # aggregator/server/static/graphiql


def build_wheel(
    wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: str | None = None
) -> str:
    _ensure_assets()
    name: str = build_meta.build_wheel(wheel_directory, config_settings, metadata_directory)
    _check_wheel(Path(wheel_directory) / name)
    return name


def build_sdist(sdist_directory: str, config_settings: ConfigSettings = None) -> str:
    _ensure_assets()
    name: str = build_meta.build_sdist(sdist_directory, config_settings)
    return name


def build_editable(
    wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: str | None = None
) -> str:
    _ensure_assets()
    name: str = build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
    return name


def _ensure_assets() -> None:
    """Fetch the pinned assets unless the tree already has them; a failure ends the build."""
    try:
        fetch_assets()
    except AssetFetchError as error:
        raise SystemExit(
            f"error: GraphiQL's assets must be inside the package, and fetching them failed: {error}\n"
            "Set AGGREGATOR_NPM_REGISTRY to an npm registry this machine can reach, or run "
            "`python -m aggregator.server.assets` where one is reachable and build from that tree."
        ) from None


def _check_wheel(wheel: Path) -> None:
    """Refuse a wheel that lacks an asset (say, package data that stopped matching them)."""
    wanted = {f"{_IN_PACKAGE}/{name}" for package in PACKAGES for name in package.files.values()}
    with zipfile.ZipFile(wheel) as archive:
        missing = sorted((wanted | {f"{_IN_PACKAGE}/{MANIFEST}"}) - set(archive.namelist()))
    if missing:
        wheel.unlink()
        raise SystemExit(f"error: the wheel lacks GraphiQL's assets {', '.join(missing)}; it was deleted")
