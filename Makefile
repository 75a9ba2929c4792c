# The two commands of the README: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck imports pytest bytecode bench-quick screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.base-installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.base-installed

# Bytecode of the package as an installed wheel would have it (an editable install writes it
# only on first import, and not at all under PYTHONDONTWRITEBYTECODE=1: then every node
# process would compile the package again at start). Up-to-date files are skipped.
bytecode: $(VENV)/.base-installed
	@$(BIN)/python -m compileall -q src/privfin > /dev/null

demo: $(VENV)/.base-installed bytecode
	$(BIN)/privfin demo

test: $(VENV)/.dev-installed lint typecheck imports pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy src/privfin

imports: $(VENV)/.dev-installed
	$(BIN)/lint-imports --no-cache

# pytest exits 5 when it collected no test: that must never pass silently.
pytest: $(VENV)/.dev-installed bytecode
	@$(BIN)/pytest -W error $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests"; exit 1; fi; exit $$rc

# The dashboard's screenshots in docs/screenshots/ (a local bank and telco node, synthetic
# data, Debian's Chromium: apt-get install chromium).
screenshots: $(VENV)/.dev-installed
	PYTHONPATH=tests $(BIN)/python -m dashboard._screenshots docs/screenshots

bench-quick: $(VENV)/.base-installed
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
