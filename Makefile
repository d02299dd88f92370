# One-command entry points; each creates .venv and installs what it needs, quickly when already done.
#   make demo   install, then run the bundled demo (GraphiQL on http://127.0.0.1:8000/graphql)
#   make test   install, then lint (ruff) and run the whole test suite
#   make lint   install, then ruff (check + format check) and mypy --strict

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Written after a successful install; pyproject.toml changing makes it stale, so deps are re-installed.
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml build_backend.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The install's build fetches GraphiQL's assets (build_backend.py); the fetcher runs here too, for a
# tree whose assets were deleted since. It does nothing when the pinned versions are in place.
install: $(STAMP)
	$(BIN)/python -m aggregator.server.assets

# Third-party servers, clients and API descriptions the tests run against, from the committed lockfile.
NODE_STAMP := tests/node/node_modules/.installed
$(NODE_STAMP): tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(BIN)/aggregator demo

test: install $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install  ## side-by-side benchmark against Hive Gateway, about 7 min (bench/README.md)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) aggregator/server/static/graphiql
