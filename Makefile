# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs on first use (and again when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# pytest options, e.g. `make test PYTEST_ARGS="-k parsing -x"`
PYTEST_ARGS ?=
# two pytest-xdist workers: the tests that run Ray in-process share one (they form one xdist group),
# the two-node job cluster's tests another, the rest are spread over both (TEST_WORKERS=0: one process)
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
DEMO_DIR ?= runs/demo

.PHONY: demo test test-fast lint bench install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first, pinned to the builds on the machines' local disk (fast, no download)
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/unireward demo --workdir $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# ruff: formatting and lint (CI runs this before the tests)
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# unit tests only (skips the slower integration tests)
test-fast: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/unireward bench judge

clean:
	rm -rf $(VENV) runs .pytest_cache
