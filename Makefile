# One command each: `make demo` runs the service with demo data, `make test` runs every check.
# Both install what they need into .venv first (again only when pyproject.toml changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: install demo serve test lint bench clean chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: install
	$(BIN)/oms demo

serve: install
	$(BIN)/oms serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The browser tests drive Debian's Chromium (Playwright never downloads one): install it
# with apt when it is missing.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

test: lint chromium
	$(BIN)/pytest -n auto  # one process per CPU (pytest-xdist)

bench: install
	$(BIN)/python -m bench.capture

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
