"""GraphiQL's browser assets, fetched from the npm registry when the package is built, never committed.

Gateways often run where browsers cannot reach a CDN, so the page at ``GET /graphql`` loads React,
ReactDOM and GraphiQL from the gateway itself. This fetcher needs only the standard library (a fresh
machine may have Python and pip but no npm, and the build backend, ``build_backend.py``, imports it where
only setuptools is installed): it downloads the pinned package tarballs, refuses any whose sha512
differs from the pinned npm ``dist.integrity``, and extracts only the files the page uses.

``python -m aggregator.server.assets`` does nothing when the pinned versions are already in place.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.errors import AggregatorError

__all__ = [
    "DEFAULT_REGISTRY",
    "PACKAGES",
    "STATIC_DIR",
    "AssetFetchError",
    "NpmPackage",
    "assets_available",
    "fetch_assets",
    "main",
]

DEFAULT_REGISTRY = "https://registry.npmjs.org"
REGISTRY_ENV = "AGGREGATOR_NPM_REGISTRY"
STATIC_DIR = Path(__file__).resolve().parent / "static" / "graphiql"
MANIFEST = "manifest.json"
# The largest pinned tarball is under 4 MiB; the cap only stops a misbehaving mirror filling the disk.
MAX_TARBALL_BYTES = 64 * 1024 * 1024
DOWNLOAD_ATTEMPTS = 3


class AssetFetchError(AggregatorError):
    """The assets could not be downloaded, did not match their pinned integrity, or could not be written."""

    code = "ASSET_FETCH_ERROR"


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package and the files taken from it (tarball path -> file name served)."""

    name: str
    version: str
    integrity: str
    files: Mapping[str, str]

    def tarball_url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name}-{self.version}.tgz"


# Integrity values are the registry's own `dist.integrity` for these exact versions.
PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage(
        name="react",
        version="18.3.1",
        integrity="sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
        files={"package/umd/react.production.min.js": "react.production.min.js"},
    ),
    NpmPackage(
        name="react-dom",
        version="18.3.1",
        integrity="sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
        files={"package/umd/react-dom.production.min.js": "react-dom.production.min.js"},
    ),
    NpmPackage(
        name="graphiql",
        version="3.8.3",
        integrity="sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
        files={"package/graphiql.min.js": "graphiql.min.js", "package/graphiql.min.css": "graphiql.min.css"},
    ),
)


def _manifest(packages: Sequence[NpmPackage]) -> dict[str, str]:
    return {p.name: p.version for p in packages}


def assets_available(directory: Path = STATIC_DIR, packages: Sequence[NpmPackage] = PACKAGES) -> bool:
    """True when every file of the pinned versions is in ``directory``."""
    try:
        recorded = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if recorded != _manifest(packages):
        return False
    return all((directory / name).is_file() for p in packages for name in p.files.values())


def _download(url: str) -> bytes:
    last: Exception | None = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data: bytes = response.read(MAX_TARBALL_BYTES + 1)
        except (urllib.error.URLError, OSError) as exc:
            last = exc
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the error response's open connection
                # A 4xx will not get better by asking again; a dropped connection might.
                if exc.code < 500:
                    break
            if attempt < DOWNLOAD_ATTEMPTS:
                time.sleep(attempt)
            continue
        if len(data) > MAX_TARBALL_BYTES:
            raise AssetFetchError(f"{url}: larger than {MAX_TARBALL_BYTES} bytes; refusing it")
        return data
    raise AssetFetchError(f"could not download {url}: {last}")


def _verify(package: NpmPackage, data: bytes, url: str) -> None:
    algorithm, _, expected = package.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode("ascii")
    if actual != expected:
        raise AssetFetchError(
            f"{url} does not match the pinned {algorithm} integrity of {package.name}@{package.version}; "
            "refusing it"
        )


def _extract(package: NpmPackage, data: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member_name, target in package.files.items():
            try:
                member = tar.extractfile(member_name)
            except KeyError:
                member = None
            if member is None:
                raise AssetFetchError(f"{package.name}@{package.version} has no file {member_name}")
            (into / target).write_bytes(member.read())


def fetch_assets(
    directory: Path = STATIC_DIR,
    *,
    registry: str | None = None,
    packages: Sequence[NpmPackage] = PACKAGES,
    force: bool = False,
) -> bool:
    """Download, verify and install the assets into ``directory``; False when they were already there.

    Files are written to a sibling temporary directory first, so ``directory`` either holds a complete,
    verified set or is left as it was.
    """
    if not force and assets_available(directory, packages):
        return False
    registry = registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".graphiql-", dir=directory.parent))
    try:
        # mkdtemp makes it private; the server may run as another user than the installer (Docker).
        staging.chmod(0o755)
        for package in packages:
            url = package.tarball_url(registry)
            data = _download(url)
            _verify(package, data, url)
            _extract(package, data, staging)
        (staging / MANIFEST).write_text(json.dumps(_manifest(packages), indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    except OSError as exc:
        raise AssetFetchError(f"could not write the assets into {directory}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aggregator.server.assets",
        description="Fetch GraphiQL's browser assets (pinned, integrity-checked) from the npm registry.",
    )
    parser.add_argument("--force", action="store_true", help="fetch even when the assets are present")
    parser.add_argument(
        "--registry",
        help=f"npm registry base URL (default: ${REGISTRY_ENV}, then {DEFAULT_REGISTRY})",
    )
    parser.add_argument("--dest", type=Path, default=STATIC_DIR, help="target directory")
    args = parser.parse_args(argv)
    try:
        fetched = fetch_assets(args.dest, registry=args.registry, force=args.force)
    except AssetFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    versions = ", ".join(f"{p.name} {p.version}" for p in PACKAGES)
    state = "fetched" if fetched else "already present"
    print(f"graphiql assets {state}: {versions} in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
