# The two README commands: `make run` (main job) and `make check` (all checks).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run check test lint bench clean

# rapidocr-onnxruntime (the ocr extra) requires the GUI build opencv-python, whose cv2
# needs libGL; both builds install the same cv2 package, file over file. Keep only
# opencv-python-headless, at the version pip chose (`codedance doctor` checks this).
# setuptools explains, on every editable build of a package_dir layout like ours, that
# folders named like the package may shadow it; nothing to act on, so keep make quiet.
EDITABLE := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q --disable-pip-version-check -e

define headless_cv2
	@v=$$($(BIN)/python -c "from importlib.metadata import version; print(version('opencv-python-headless'))") && \
	if $(BIN)/python -m pip show -q opencv-python >/dev/null 2>&1; then \
	  $(BIN)/python -m pip uninstall -q -y opencv-python opencv-python-headless && \
	  $(BIN)/python -m pip install -q --disable-pip-version-check --no-deps "opencv-python-headless==$$v"; fi
endef

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(EDITABLE) '.[tools,ocr,rewards]'
	$(headless_cv2)
	touch $@

# The trainer's tests run real verl classes on CPU, and verl 0.9 needs transformers 5,
# whose Qwen2.5-VL processor needs torchvision: torch 2.14.1 + torchvision 0.29.1 are the
# pair that installs here (CUDA builds that run on CPU; ~3 min from the local wheels).
$(VENV)/.dev: $(VENV)/.base
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(EDITABLE) '.[dev,tools,ocr,rewards,eval,train]'
	$(headless_cv2)
	touch $@

## run: set up and run the main job: the built-in example tasks solved through the real
## protocol and sandbox (no model needed; `codedance run --model ...` runs one)
run: $(VENV)/.base
	$(BIN)/codedance run

## check: ruff lint + format, mypy on the package, pytest
check: $(VENV)/.dev
	PYTHON=$(BIN)/python scripts/check.sh

test: $(VENV)/.dev
	$(BIN)/python -m pytest

bench: $(VENV)/.base
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/runtime.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
