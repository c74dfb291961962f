# BNNR developer entry points. `make demo` and `make test` are the two set-up commands:
# each creates (or reuses) the virtual environment in $(VENV) and installs the project first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision are installed first, pinned, so pip takes the releases this project
# is tested with; override TORCH_SPEC to use others (any release the pyproject ranges admit).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.bnnr-installed
DEMO_OUT ?= demo_output
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck check clean install digits-data

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "BNNR needs Python 3.10 or newer; set PYTHON=python3.x")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bnnr plugins list
	$(BIN)/bnnr demo --output $(DEMO_OUT)

# The browser tests of report.html (tests/test_report_browser.py) need Debian's chromium.
.PHONY: browser
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
		elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
		else echo "make test needs Debian's chromium: run 'apt-get install chromium' as root" >&2; exit 1; fi; \
		echo "Installing chromium for the browser tests of report.html"; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory check

lint: $(STAMP)
	$(BIN)/ruff check bnnr bnnr_core plugins tests benchmarks scripts examples
	$(BIN)/ruff format --check bnnr bnnr_core plugins tests benchmarks scripts examples

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

# Regenerates the bundled digits data (needs scikit-learn, a dev dependency).
digits-data: $(STAMP)
	$(BIN)/python scripts/make_digits_data.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
