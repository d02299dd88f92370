"""The README's examples stay true: every complete config in it loads, and its sample query is the demo's.

A ```yaml block is a complete config when it has a top-level ``integrations:`` key. Each is loaded with
``aggregator.config.loads``, given the environment variables the examples read and, as the
``catalog.graphql`` that the GraphQL example's ``schema:`` names, the SDL of the demo catalog; as the
``persisted-documents.json`` of the persisted queries example, the README's own manifest example (the
gRPC examples get the demo warehouse's proto).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.config import ApiKeyAuth, Config, Integration, loads
from aggregator.demo import SAMPLE_QUERY
from aggregator.demo.catalog import catalog_schema
from aggregator.demo.warehouse import PROTO
from aggregator.module import IntegrationModule
from aggregator.schema import build_schema

README = Path(__file__).resolve().parents[1] / "README.md"
# Every ${VAR} the README's examples read (loads gets exactly these: nothing from the real environment).
ENV = {
    "BILLING_TOKEN": "billing-token",
    "MAPS_KEY": "maps-key",
    "SEARCH_KEY": "search-key",
    "LEGACY_KEY": "legacy-key",
    "LEGACY_PASSWORD": "legacy-password",
    "CRM_CLIENT_SECRET": "crm-secret",
    "PROFILE_SERVICE_TOKEN": "profile-token",
    "CATALOG_TOKEN": "catalog-token",
    "GITHUB_TOKEN": "github-token",
}
OPENAPI = Path(__file__).resolve().parent / "openapi"
GITHUB = Path(__file__).resolve().parent / "node/node_modules/@octokit/openapi/generated/api.github.com.json"


@dataclass(frozen=True)
class Example:
    line: int  # of the block's first line in README.md
    text: str

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def yaml_configs(markdown: str) -> list[Example]:
    blocks = re.finditer(r"^```yaml\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)
    return [
        Example(markdown.count("\n", 0, block.start()) + 2, block.group(1))
        for block in blocks
        if re.search(r"^integrations:", block.group(1), re.MULTILINE)
    ]


EXAMPLES = yaml_configs(README.read_text(encoding="utf-8"))


def manifest_example() -> str:
    """The README's example of a persisted documents manifest (Apollo's format)."""
    blocks = re.findall(r"^```json\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    [manifest] = [block for block in blocks if "apollo-persisted-query-manifest" in block]
    return str(manifest)


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    """A folder holding catalog.graphql, the demo catalog's SDL, for `schema: catalog.graphql`,
    persisted-documents.json, the README's manifest example, the demo warehouse's proto for
    `proto: protos/inventory.proto`, the files `tls:` blocks name, and specs/ with the OpenAPI
    documents the import examples name (GitHub's from tests/node)."""
    if not GITHUB.exists():
        pytest.skip("GitHub's OpenAPI document is missing: run `make tests/node/node_modules/.installed`")
    (tmp_path / "catalog.graphql").write_text(str(catalog_schema()), encoding="utf-8")
    (tmp_path / "persisted-documents.json").write_text(manifest_example(), encoding="utf-8")
    (tmp_path / "protos").mkdir()
    shutil.copy(PROTO, tmp_path / "protos" / "inventory.proto")
    (tmp_path / "certs").mkdir()
    for name in ("internal-ca.pem", "client.pem", "client.key"):
        (tmp_path / "certs" / name).write_text("read when the upstream starts, not when the file loads")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "petstore.yaml").symlink_to(OPENAPI / "petstore.yaml")
    (tmp_path / "specs" / "github.json").symlink_to(GITHUB)
    return tmp_path


def test_the_manifest_example_s_ids_are_its_documents_hashes() -> None:
    """Each id in the README's manifest example is the SHA-256 of its document, as Apollo's tool writes."""
    operations = json.loads(manifest_example())["operations"]
    assert [op["id"] for op in operations] == [
        hashlib.sha256(op["body"].encode()).hexdigest() for op in operations
    ]


def load_example(example: Example, base_dir: Path) -> Config:
    # Blank lines in front make a problem's line number its line in README.md.
    text = "\n" * (example.line - 1) + example.text
    return loads(text, README.name, env=ENV, base_dir=base_dir)


def all_integrations(base_dir: Path) -> list[Integration]:
    return [i for e in EXAMPLES for i in load_example(e, base_dir).integrations.values()]


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_each_config_example_in_the_readme_loads_and_builds_a_schema(
    example: Example, base_dir: Path
) -> None:
    """A README config loads as written, and its gateway schema builds (derived types included)."""
    config = load_example(example, base_dir)
    module = IntegrationModule(config)
    sdl = build_schema(module.typed_config(config), module).as_str()
    assert all(op.field in sdl for i in config.integrations.values() for op in i.operations.values())


def test_the_readme_shows_every_auth_type_and_every_upstream_kind(base_dir: Path) -> None:
    """Each of the five auth types and the three integration types has a working example."""
    integrations = all_integrations(base_dir)
    assert {i.auth.type for i in integrations} == {"none", "bearer", "api_key", "basic", "oauth2"}
    assert {i.auth.location for i in integrations if isinstance(i.auth, ApiKeyAuth)} == {
        "header",
        "query",
        "cookie",
    }
    assert {i.type for i in integrations} == {"rest", "graphql", "grpc"}


def test_the_readme_shows_a_forwarded_header_that_overrides_auth(base_dir: Path) -> None:
    """The forward_headers example has both forms: a plain name and one with override_auth."""
    for integration in all_integrations(base_dir):
        forwarded = {name.lower() for name in integration.forward_headers}
        if integration.forward_overrides_auth and forwarded - integration.forward_overrides_auth:
            return
    pytest.fail("no README example forwards one header by name and another with override_auth: true")


def test_the_readme_sample_query_is_the_demos() -> None:
    """The query the README shows is the one `aggregator demo` prints."""
    assert SAMPLE_QUERY in README.read_text(encoding="utf-8")
