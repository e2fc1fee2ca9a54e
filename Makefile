# Llamarada: `make run` starts the embedded stack, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin
# Debian packages the tests drive for real (see ARCHITECTURE.md, "What the tests run for real").
SYSTEM_PACKAGES := redis-server prometheus nginx chromium
SYSTEM_BINARIES := redis-server promtool nginx chromium

.PHONY: run test lint bench bench-deps load eval-rag tune-rag eval-semantic system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded,test]'
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/llamarada serve --port $(PORT)

system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do command -v $$b >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	  else echo "install these Debian packages first: $(SYSTEM_PACKAGES)"; exit 1; fi; \
	fi

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# checkov scans the Helm chart (tests/deploy/test_helm.py); its many pins get a venv of their own.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.3.30'

test: system-deps lint $(CHECKOV_VENV)/bin/checkov
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(BIN)/pytest

# LiteLLM's proxy, the reference the gateway benchmark compares with, in a venv of its own.
LITELLM_VENV := .venv-litellm
$(LITELLM_VENV)/bin/litellm:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet 'litellm[proxy]>=1.108'

$(VENV)/.bench-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded,test,bench]'
	touch $@ $(VENV)/.test-deps $(VENV)/.run-deps

# wrk drives the hot-path benchmark (bench/hot_path.py).
bench-deps:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
	  || { echo "install the Debian package wrk first"; exit 1; }

bench: system-deps bench-deps $(VENV)/.bench-deps $(LITELLM_VENV)/bin/litellm
	LITELLM_BIN=$(LITELLM_VENV)/bin $(BIN)/python -m bench

# By hand, not in `make test`: 200 streaming clients through nginx, then a soak with Redis
# restarted midway (bench/load.py; its figures are in docs/RELIABILITY.md).
load: system-deps $(VENV)/.test-deps
	$(BIN)/python -m bench.load

# The bilingual retrieval evaluation on the test split of bench/data/rag_eval (bench/rag_eval.py;
# its baseline is in docs/BENCHMARKS.md). `--split dev` is the one to tune on.
eval-rag: $(VENV)/.test-deps
	$(BIN)/python -m bench.rag_eval --split test

# Reranking weights and the refusal rule chosen by 5-fold cross-validation over the dev split
# (bench/rag_features.py dumps the dev questions' candidates; bench/rag_cv.py scores the choices).
tune-rag: $(VENV)/.test-deps
	$(BIN)/python -m bench.rag_features /tmp/llamarada-rag-features.json
	$(BIN)/python -m bench.rag_cv /tmp/llamarada-rag-features.json

# The semantic cache's threshold (dev pairs) and its precision/recall per kind (test pairs).
eval-semantic: $(VENV)/.test-deps
	$(BIN)/python -m bench.semantic_eval

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .mypy_cache .ruff_cache .pytest_cache
