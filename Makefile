# Entry points: `make demo`, `make check` (quick) and `make test` (all). Everything installs from
# the lock files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The project's bytecode, as the image has it (pip compiles it there): each `sabot` process the
# tests start would otherwise compile every module again when PYTHONDONTWRITEBYTECODE is set.
BYTECODE := $(BIN)/python -m compileall -q bot workflows sandbox

.PHONY: demo check test lint lock clean reliability bench

$(BIN)/.main: requirements/main.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements/main.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(BIN)/.dev: requirements/dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(BIN)/.main $@

demo: $(BIN)/.main
	$(BYTECODE)
	$(BIN)/sabot demo

# Lint, types and every test tier but e2e (no sabot process), in under a minute. The tests
# wait more than they compute, so more workers than cores.
check: $(BIN)/.dev
	$(BIN)/ruff check bot workflows sandbox tests bench
	$(BIN)/mypy bot workflows sandbox
	$(BYTECODE)
	$(BIN)/pytest -q -m "not e2e" -n 4

test: $(BIN)/.dev
	$(BIN)/ruff check bot workflows sandbox tests
	$(BIN)/mypy bot workflows sandbox
	$(BYTECODE)
	$(BIN)/pytest -q

# Runs the issue-5 scenarios and rewrites docs/reliability.md from what they measured.
reliability: $(BIN)/.dev
	$(BIN)/python -m tests.support.reliability

# Prints the benchmark table and rewrites bench/RESULTS.md (a few minutes).
bench: $(BIN)/.dev
	$(BYTECODE)
	$(BIN)/python -m bench.run

lint: $(BIN)/.dev
	$(BIN)/ruff check bot workflows sandbox tests
	$(BIN)/ruff format --check bot workflows sandbox tests
	$(BIN)/mypy bot workflows sandbox

# Regenerate the lock files after editing pyproject.toml (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --generate-hashes -o requirements/main.lock
	uv pip compile pyproject.toml --extra test --generate-hashes -o requirements/dev.lock

clean:
	rm -rf $(VENV)
