"""GraphiQL served offline by the gateway, and the fetcher that installs its pinned, verified assets."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from graphql import get_introspection_query
from servers import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aggregator.config import loads
from aggregator.server import graphiql
from aggregator.server.app import create_app
from aggregator.server.assets import STATIC_DIR, AssetFetchError, NpmPackage, assets_available, fetch_assets

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
CONFIG = """
integrations:
  svc:
    base_url: http://127.0.0.1:9/api
    operations:
      ping: {path: /ping}
"""


def asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


@pytest.fixture(scope="module")
def installed_assets() -> None:
    """The real pinned assets, fetched from the registry when this checkout does not have them yet."""
    fetch_assets()
    assert assets_available()


@pytest.fixture
def no_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway looks for its assets in an empty directory."""
    monkeypatch.setattr(graphiql, "STATIC_DIR", tmp_path)


@pytest.fixture
def gateway() -> Iterator[httpx.Client]:
    """A client for a real gateway (upstream down: GraphiQL must not care) on loopback."""
    with serve_asgi(create_app(loads(CONFIG))) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.mark.usefixtures("installed_assets")
def test_the_page_references_only_assets_on_the_gateway() -> None:
    """Every script and stylesheet comes from /graphiql/static; nothing points at a CDN."""
    page = graphiql.graphiql_html()
    urls = asset_urls(page)
    assert sorted(urls) == sorted(
        f"{graphiql.STATIC_PATH}/{name}"
        for name in (
            "graphiql.min.css",
            "react.production.min.js",
            "react-dom.production.min.js",
            "graphiql.min.js",
        )
    )
    assert "http://" not in page
    assert "https://" not in page


@pytest.mark.usefixtures("installed_assets")
def test_the_page_points_graphiql_at_the_endpoint() -> None:
    """The fetcher the page builds posts to the endpoint it was made for."""
    assert 'createFetcher({ url: "/api/graphql" })' in graphiql.graphiql_html("/api/graphql")


@pytest.mark.usefixtures("installed_assets")
def test_an_endpoint_value_cannot_end_the_script_block() -> None:
    """A hostile endpoint string stays inside its JS string literal."""
    page = graphiql.graphiql_html('/x"</script><script>alert(1)</script>')
    assert "<script>alert(1)" not in page


@pytest.mark.usefixtures("no_assets")
def test_without_assets_the_page_says_how_to_fetch_them() -> None:
    """No blank page: the missing-assets page names the command that installs them, and loads no script."""
    page = graphiql.graphiql_html()
    assert "python -m aggregator.server.assets" in page
    assert "<script" not in page


@pytest.mark.usefixtures("installed_assets")
def test_get_graphql_from_a_browser_serves_the_page(gateway: httpx.Client) -> None:
    """GET /graphql with Accept: text/html answers the GraphiQL page."""
    response = gateway.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"{graphiql.STATIC_PATH}/graphiql.min.js" in response.text


@pytest.mark.usefixtures("installed_assets")
def test_every_asset_the_page_references_is_served_with_its_content_type(gateway: httpx.Client) -> None:
    """Each referenced file is served whole, with a JS or CSS content type the browser will execute."""
    page = gateway.get("/graphql", headers={"Accept": "text/html"}).text
    for url in asset_urls(page):
        response = gateway.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(CONTENT_TYPES[Path(url).suffix]), url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (STATIC_DIR / Path(url).name).read_bytes()


def test_graphiqls_introspection_query_is_answered(gateway: httpx.Client) -> None:
    """GraphiQL loads the schema with the full introspection query: the request limits let it through."""
    query = get_introspection_query(descriptions=True, input_value_deprecation=True)
    body = gateway.post("/graphql", json={"query": query}).json()
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.usefixtures("installed_assets")
@pytest.mark.parametrize("name", ["nope.js", "manifest.json", "..%2Fassets.py", "%2E%2E%2Fgraphiql.py"])
def test_files_other_than_the_assets_are_not_served(gateway: httpx.Client, name: str) -> None:
    """Only the page's own asset files are reachable under /graphiql/static."""
    assert gateway.get(f"{graphiql.STATIC_PATH}/{name}").status_code == 404


@pytest.mark.usefixtures("no_assets")
def test_without_assets_a_browser_gets_instructions_not_a_blank_page(gateway: httpx.Client) -> None:
    """The gateway's page, when its assets were never fetched, tells how to fetch them."""
    response = gateway.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "python -m aggregator.server.assets" in response.text


@pytest.mark.usefixtures("no_assets")
def test_a_missing_asset_file_is_a_404(gateway: httpx.Client) -> None:
    """Without installed assets the asset routes answer 404, not a server error."""
    assert gateway.get(f"{graphiql.STATIC_PATH}/graphiql.min.js").status_code == 404


# The fetcher, against a registry served on loopback.


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@dataclass
class Registry:
    """An npm-registry stand-in: serves tarballs by URL path and counts the requests."""

    tarballs: dict[str, bytes] = field(default_factory=dict)
    requests: int = 0
    url: str = ""

    def app(self) -> Starlette:
        async def tgz(request: Request) -> Response:
            self.requests += 1
            data = self.tarballs.get(request.url.path)
            if data is None:
                return Response("not found", status_code=404)
            return Response(data, media_type="application/octet-stream")

        return Starlette(routes=[Route("/{path:path}", tgz)])

    def publish(self, name: str, version: str, data: bytes) -> None:
        self.tarballs[f"/{name}/-/{name}-{version}.tgz"] = data


@pytest.fixture
def registry() -> Iterator[Registry]:
    """An empty registry on loopback; tests publish what they need."""
    registry = Registry()
    with serve_asgi(registry.app()) as url:
        registry.url = url
        yield registry


def package(registry: Registry, version: str = "1.0.0", *, tamper: bool = False) -> NpmPackage:
    """Publish a 'widget' package whose tarball has a wanted and an unwanted file; its pin."""
    data = tarball({"dist/widget.min.js": b"widget();", "dist/unused.js": b"unused();"})
    registry.publish("widget", version, data + b"tampered" if tamper else data)
    return NpmPackage("widget", version, integrity(data), {"package/dist/widget.min.js": "widget.js"})


def test_fetch_installs_only_the_listed_files_of_a_verified_tarball(
    registry: Registry, tmp_path: Path
) -> None:
    """The listed file lands under its served name, beside the manifest; nothing else is extracted."""
    dest = tmp_path / "graphiql"
    assert fetch_assets(dest, registry=registry.url, packages=[package(registry)])
    assert sorted(p.name for p in dest.iterdir()) == ["manifest.json", "widget.js"]
    assert (dest / "widget.js").read_bytes() == b"widget();"


def test_fetch_does_nothing_when_the_pinned_assets_are_present(registry: Registry, tmp_path: Path) -> None:
    """A second run makes no request and reports that nothing was fetched."""
    pins = [package(registry)]
    fetch_assets(tmp_path / "graphiql", registry=registry.url, packages=pins)
    before = registry.requests
    assert not fetch_assets(tmp_path / "graphiql", registry=registry.url, packages=pins)
    assert registry.requests == before


def test_a_changed_pin_is_fetched_again(registry: Registry, tmp_path: Path) -> None:
    """Installed assets of another version do not count as present."""
    fetch_assets(tmp_path / "graphiql", registry=registry.url, packages=[package(registry, "1.0.0")])
    assert fetch_assets(tmp_path / "graphiql", registry=registry.url, packages=[package(registry, "2.0.0")])


def test_a_tarball_not_matching_its_integrity_is_refused_and_nothing_written(
    registry: Registry, tmp_path: Path
) -> None:
    """A tampered download fails with an integrity error and leaves no file or staging folder behind."""
    with pytest.raises(AssetFetchError, match="integrity"):
        fetch_assets(tmp_path / "graphiql", registry=registry.url, packages=[package(registry, tamper=True)])
    assert list(tmp_path.iterdir()) == []


def test_a_failed_fetch_keeps_the_previous_install(registry: Registry, tmp_path: Path) -> None:
    """A forced refetch that fails leaves the working assets in place."""
    dest = tmp_path / "graphiql"
    fetch_assets(dest, registry=registry.url, packages=[package(registry)])
    with pytest.raises(AssetFetchError):
        fetch_assets(dest, registry=registry.url, packages=[package(registry, tamper=True)], force=True)
    assert (dest / "widget.js").read_bytes() == b"widget();"


def test_a_listed_file_missing_from_the_tarball_is_an_error(registry: Registry, tmp_path: Path) -> None:
    """A pin naming a file the package does not have fails, naming the file."""
    pin = package(registry)
    broken = NpmPackage(pin.name, pin.version, pin.integrity, {"package/dist/gone.js": "gone.js"})
    with pytest.raises(AssetFetchError, match=re.escape("package/dist/gone.js")):
        fetch_assets(tmp_path / "graphiql", registry=registry.url, packages=[broken])


def test_a_package_missing_from_the_registry_is_an_error_naming_its_url(
    registry: Registry, tmp_path: Path
) -> None:
    """A 404 from the registry fails at once with the URL that was tried."""
    pin = NpmPackage("absent", "1.0.0", integrity(b""), {"package/a.js": "a.js"})
    with pytest.raises(AssetFetchError, match=re.escape(pin.tarball_url(registry.url))):
        fetch_assets(tmp_path / "graphiql", registry=registry.url, packages=[pin])


def test_the_command_reports_a_failure_in_one_line_and_exits_1(registry: Registry, tmp_path: Path) -> None:
    """The fetcher command, given a registry without the packages: one error line, status 1."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aggregator.server.assets",
            "--registry",
            registry.url,
            "--dest",
            str(tmp_path / "g"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: could not download ")
