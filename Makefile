# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv (and refresh it when pyproject.toml changes) before running.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint venv bench clean stack dashboards docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tokenpulse demo --wait

# Two test files at a time (pytest-xdist): most of the suite waits on real servers, Prometheus rule
# evaluations and Locust runs rather than using a core, so two workers halve the wall time on two cores.
# --dist loadfile keeps each file in one worker (its module-scoped servers start once).
# TEST_WORKERS=0 runs it serially.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# ruff and mypy, as CI runs them (settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The observability stack without Docker (needs Debian's prometheus and prometheus-alertmanager;
# Grafana when installed). Ctrl-C stops it. With Docker: docker compose up -d (docs/observability.md).
stack: $(STAMP)
	$(BIN)/tokenpulse stack up

# Regenerate dashboards/json from dashboards/generate.py (a test checks they are in step).
dashboards: $(STAMP)
	$(BIN)/python dashboards/generate.py

# Regenerate docs/config-reference.md and docs/metrics-reference.md from the code (a test checks they are current).
docs: $(STAMP)
	$(BIN)/python -m tools.docs_gen

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
