# The two commands of the README:
#   make demo   install everything, start the local stack on the embedded model, run the example agent
#   make test   install everything, then lint, type-check and run the whole test suite
# Both need only Python 3.11, pip and make. The first install builds llama.cpp from source (~3 min).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stigmer-installed

.PHONY: install demo test lint typecheck pytest bench clean chromium console-screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -e '.[embedded,team,otel,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/stigmer local start
	$(BIN)/stigmer apply -f examples/agents/
	$(BIN)/stigmer run hello "Say hello to the new stigmer user."
	@echo
	@echo "The stack keeps running: try 'stigmer local status', 'stigmer run ...', 'stigmer local stop'"
	@echo "(the commands live in $(BIN); activate with '. $(BIN)/activate')."

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

# The web console's tests drive Debian's chromium through Playwright (Playwright's own browser download is not
# used); installed with apt-get when missing (CI runs as root). A missing browser fails those tests, never skips them.
CHROMIUM ?= /usr/bin/chromium

chromium:
	@test -x $(CHROMIUM) || { apt-get update && apt-get install -y chromium; }

pytest: install chromium
	$(BIN)/pytest -q

# Screenshots of each console page in docs/console/ (a real stack on the scripted model, headless chromium)
console-screenshots: install chromium
	$(BIN)/python -m tests.support.console_shots docs/console

test: lint typecheck pytest

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
