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

test: $(STAMP)
	$(BIN)/python -m pytest -q

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
