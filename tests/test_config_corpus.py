"""The config corpus: each broken file is refused with the problem its first line announces, each good file
loads, and generated configs (random text, random mappings, mutations of a good file) never crash the loader.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import gateway_sdl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config import Config, load, loads
from aggregator.errors import ConfigError

CONFIGS = Path(__file__).parent / "configs"
BAD = sorted((CONFIGS / "bad").glob("*.yaml"))
GOOD = sorted((CONFIGS / "good").glob("*.yaml"))
EXPECT = re.compile(r"# expect: (\d+): (.*?): (.+)")
ENV = {"USERS_TOKEN": "corpus-users-token"}

# Generated inputs must not depend on the wall clock or leave a database in the repository.
GENERATED = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def expectation(path: Path) -> tuple[int, str, str]:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    match = EXPECT.fullmatch(first_line)
    assert match, f"{path.name} must start with '# expect: <line>: <key>: <message>'"
    return int(match[1]), match[2], match[3]


def test_corpus_has_at_least_45_broken_files() -> None:
    """The corpus is big enough to cover every kind of mistake the loader knows."""
    assert len(BAD) >= 45


@pytest.mark.parametrize("path", BAD, ids=lambda path: path.stem)
def test_broken_file_is_refused_with_the_announced_problem(path: Path) -> None:
    """The problem in the file's `# expect:` line is reported, rendered as FILE:LINE: key: message."""
    line, key, message = expectation(path)
    with pytest.raises(ConfigError) as caught:
        load(path, env=ENV)
    rendered = [str(problem) for problem in caught.value.problems]
    prefix = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    assert any(text.startswith(prefix) and message in text for text in rendered), "\n".join(rendered)


@pytest.mark.parametrize("path", GOOD, ids=lambda path: path.stem)
def test_good_file_loads_and_builds_its_schema(path: Path) -> None:
    """Every file under configs/good is a valid config, and its gateway schema builds."""
    config = load(path, env=ENV)
    assert config.integrations
    assert gateway_sdl(config)


# --- generated configs ----------------------------------------------------------------------------------

KEYS = [
    *("defaults", "types", "integrations", "server", "users", "User", "Simple_User", "getUser", "id"),
    *("description", "type", "base_url", "auth", "headers", "timeout", "max_concurrency", "retry"),
    *("circuit_breaker", "forward_headers", "schema", "operations", "max_response_bytes", "method", "path"),
    *("params", "returns", "idempotent", "kind", "field", "document", "select", "operation_name", "in"),
    *("max_attempts", "initial_wait", "max_wait", "multiplier", "jitter", "retry_on", "deadline", "budget"),
    *("threshold", "failure_rate", "window", "reset_after", "half_open_max_calls", "token", "key", "name"),
    *("consecutive_failures", "max_queue", "queue_timeout"),
    *("graphiql", "max_depth", "cors_origins", "<<", "", "x-y", "1"),
]
WORDS = [
    *("250ms", "2s", "1m", "0", "-1", "ID!", "[User!]", "[[Int]!]!", "User", "JSON", "String", "[", "!"),
    *("Simple_User", "[Simple_User]", "first_name"),
    *(
        "http://127.0.0.1:9001/api",
        "ftp://x",
        "http://",
        "GET",
        "post",
        "FETCH",
        "/users/{id}",
        "/x{",
        "{id}",
    ),
    *(
        "query Q($id: ID!) { a(id: $id) }",
        "mutation { m }",
        "subscription { s }",
        "query {",
        "${X}",
        "${X:-1}",
    ),
    *(
        "${",
        "full",
        "none",
        "bearer",
        "api_key",
        "basic",
        "oauth2",
        "graphql",
        "grpc",
        "rest",
        "path",
        "body",
    ),
    *("schema.graphql", "1MiB", "*", "query", "mutation"),
]
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=600),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=40,
)


def loads_or_refuses(text: str) -> None:
    """Load ``text``: a Config whose schema builds, or a ConfigError with at least one located problem;
    anything else fails."""
    try:
        result = loads(text, "generated.yaml", env={"X": "1"})
    except ConfigError as error:
        problems = error.problems
    else:
        assert isinstance(result, Config)
        assert gateway_sdl(result)
        return
    assert problems
    assert all(problem.file == "generated.yaml" and problem.line >= 0 for problem in problems)


@GENERATED
@given(st.text(max_size=300))
def test_any_text_is_loaded_or_refused(text: str) -> None:
    """Arbitrary text either loads or raises ConfigError; nothing else escapes."""
    loads_or_refuses(text)


@GENERATED
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5))
def test_any_yaml_mapping_is_loaded_or_refused(document: dict[str, Any]) -> None:
    """Random mappings made of real config keys and plausible values load or raise ConfigError."""
    loads_or_refuses(yaml.safe_dump(document, allow_unicode=True))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


EXAMPLE = yaml.safe_load((CONFIGS / "good" / "contract_example.yaml").read_text(encoding="utf-8"))
EXAMPLE_PATHS = [path for path in _paths(EXAMPLE) if path]


@GENERATED
@given(st.sampled_from(EXAMPLE_PATHS), VALUES)
def test_mutated_example_is_loaded_or_refused(path: tuple[Any, ...], value: Any) -> None:
    """The contract example with any one value replaced by a random one loads or raises ConfigError."""
    document = copy.deepcopy(EXAMPLE)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    loads_or_refuses(yaml.safe_dump(document, allow_unicode=True))
