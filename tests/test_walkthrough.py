"""The README's "Your own API in five minutes", followed as written: its config saved as my-api.yaml, its
`check` and `serve` commands run with the installed `aggregator`, and its curl queries sent, each answer
compared with the one the README shows. A loopback stand-in answers for JSONPlaceholder with the same
data, through the ${PLACEHOLDER_URL} the config reads; `serve` gets `--port 0` (8000 may be taken).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
SECTION = TEXT[TEXT.index("## Your own API in five minutes") :].split("\n---\n", 1)[0]
# The command the README runs as .venv/bin/aggregator: the one installed next to this interpreter.
CLI = Path(sys.executable).with_name("aggregator")
SECONDS = 60

# What JSONPlaceholder answers for these ids (a part of each record).
USERS = {
    "1": {
        "id": 1,
        "name": "Leanne Graham",
        "username": "Bret",
        "email": "Sincere@april.biz",
        "address": {"street": "Kulas Light", "city": "Gwenborough", "zipcode": "92998-3874"},
    }
}
POSTS = [
    {
        "userId": 1,
        "id": 1,
        "title": "sunt aut facere repellat provident occaecati excepturi optio reprehenderit",
        "body": "quia et suscipit",
    },
    {"userId": 1, "id": 2, "title": "qui est esse", "body": "est rerum tempore vitae"},
]


async def _user(request: Request) -> JSONResponse:
    user = USERS.get(request.path_params["id"])
    return JSONResponse(user or {}, status_code=200 if user else 404)


async def _post(request: Request) -> JSONResponse:
    found = [post for post in POSTS if str(post["id"]) == request.path_params["id"]]
    return JSONResponse(found[0] if found else {}, status_code=200 if found else 404)


async def _posts(request: Request) -> JSONResponse:
    user_id = request.query_params.get("userId")
    return JSONResponse([post for post in POSTS if user_id is None or str(post["userId"]) == user_id])


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", SECTION, re.MULTILINE | re.DOTALL)


def command(line: str) -> list[str]:
    """A README command line, with the installed CLI for .venv/bin/aggregator."""
    words = shlex.split(line)
    assert words[0] == ".venv/bin/aggregator", line
    return [str(CLI), *words[1:]]


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    """JSONPlaceholder's users and posts routes, on loopback."""
    app = Starlette(
        routes=[Route("/users/{id}", _user), Route("/posts/{id}", _post), Route("/posts", _posts)]
    )
    with serve_asgi(app) as url:
        yield url


@pytest.fixture
def my_api(tmp_path: Path) -> Path:
    """A folder holding my-api.yaml, the README's config, saved as step 1 says."""
    (config,) = blocks("yaml")
    (tmp_path / "my-api.yaml").write_text(config, encoding="utf-8")
    return tmp_path


def test_check_prints_what_the_readme_says(my_api: Path) -> None:
    """Step 2: `check` on the walkthrough's config prints the line the README quotes."""
    check = next(line for line in blocks("sh") if " check " in line).strip()
    result = subprocess.run(command(check), cwd=my_api, capture_output=True, text=True, timeout=SECONDS)
    quoted = re.search(r"It prints `(ok: [^`]+)`", SECTION)
    assert quoted is not None
    assert (result.returncode, result.stdout) == (0, quoted.group(1) + "\n"), result.stderr


def test_serve_and_the_readme_queries_give_the_answers_it_shows(my_api: Path, stand_in: str) -> None:
    """Steps 3 to 5: `serve` says where it listens; each curl query gets the answer shown under it
    (only the latency may differ)."""
    serve = next(line for line in blocks("sh") if " serve " in line).strip()
    process = subprocess.Popen(
        [*command(serve), "--port", "0"],
        cwd=my_api,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PLACEHOLDER_URL": stand_in},
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline().strip()
        assert re.fullmatch(r"listening on http://127\.0\.0\.1:\d+/graphql", listening), listening
        assert "`listening on http://127.0.0.1:8000/graphql`" in SECTION
        endpoint = listening.removeprefix("listening on ")
        curls = [
            line for block in blocks("sh") for line in block.splitlines() if line.strip().startswith("-d ")
        ]
        answers = [json.loads(block) for block in blocks("json")]
        assert len(curls) == len(answers) == 2
        for curl, shown in zip(curls, answers, strict=True):
            body = json.loads(shlex.split(curl)[1])
            got = httpx.post(endpoint, json=body, timeout=SECONDS).json()
            assert without_latency(got) == without_latency(shown)
    finally:
        process.terminate()
        process.communicate(timeout=SECONDS)


def without_latency(answer: Any) -> Any:
    """The answer with every latencyMs figure replaced by its type: they differ from run to run."""
    if isinstance(answer, dict):
        return {
            key: {k: type(v).__name__ for k, v in value.items()}
            if key == "latencyMs"
            else without_latency(value)
            for key, value in answer.items()
        }
    if isinstance(answer, list):
        return [without_latency(item) for item in answer]
    return answer
