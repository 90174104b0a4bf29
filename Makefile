# The two README commands: `make run` (main job) and `make check` (all checks).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run check test lint bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[tools]'
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,tools]'
	touch $@

## run: set up and run the main job (until `codedance run` lands: doctor, plugins and
## one sandboxed execution that returns an image)
run: $(VENV)/.base
	$(BIN)/codedance doctor
	$(BIN)/codedance plugins
	$(BIN)/codedance exec examples/sandbox_demo.py

## check: ruff lint + format, mypy on the package, pytest
check: $(VENV)/.dev
	PYTHON=$(BIN)/python scripts/check.sh

test: $(VENV)/.dev
	$(BIN)/python -m pytest

bench: $(VENV)/.base
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
