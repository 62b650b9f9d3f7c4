# One command each: `make run` (service on SQLite) and `make test` (the whole suite).
# `make run PORT=5077 HOST=127.0.0.1` and `make demo PORT=5077`: the same PORT/HOST for both.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install run test lint translations demo bench bench-quick soak mutants clean

$(BIN)/consent-service: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/consent-service

run: install
	$(BIN)/consent-service db upgrade
	@$(BIN)/consent-service admin hint --host $(HOST) --port $(PORT)
	$(BIN)/consent-service serve --host $(HOST) --port $(PORT)

# The pages' wording: extract the texts of the code and templates (babel.cfg), merge them into
# each language's catalog (translate the new entries in the .po), compile the .mo (all committed).
TRANSLATIONS := consent_service/translations
translations: install
	$(BIN)/pybabel extract -F babel.cfg -k translate --add-location=file --sort-output --no-wrap \
		--project=consent-service -o $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --no-wrap --ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel compile -d $(TRANSLATIONS) --statistics

demo: install
	$(BIN)/consent-service db upgrade
	$(BIN)/consent-service demo --base-url http://$(HOST):$(PORT)

lint: install
	$(BIN)/ruff check consent_service tests migrations bench
	$(BIN)/ruff format --check consent_service tests migrations bench
	$(BIN)/mypy

# -n auto: one pytest-xdist worker a core (each with its own SQLite files, PostgreSQL schema,
# Redis key prefix and browser port); the slowest tests listed, to see where the time goes.
test: install lint
	$(BIN)/pytest -q -n auto --durations=15

bench: install  # full sizes (1M consents), < 40 min; see docs/performance.md
	@test -x $(BIN)/pyinstrument || $(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

bench-quick: install  # small sizes, a few minutes
	@test -x $(BIN)/pyinstrument || $(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench --quick

soak: install  # load and soak with kill -9 of a worker, SQLite then PostgreSQL, 120 s each; docs/security.md
	$(BIN)/python -m bench.soak

mutants: install  # mutation testing of the engine, policy and rule cache (mutmut), 3-4 min; docs/security.md
	@test -x $(BIN)/mutmut || $(BIN)/pip install -q -e '.[mutation]'
	$(BIN)/python -m bench.mutants

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
