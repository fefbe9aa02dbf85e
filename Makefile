# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo demo-active test bench clean

$(BIN)/superlens: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/superlens

# The main job on the embedded default: the compressed-computation study (no download).
demo: install
	$(BIN)/superlens toy --out runs/toy-demo --force
	$(BIN)/superlens active --preset digits --out runs/active-demo --force

test: install
	$(BIN)/python -m pytest tests

bench: install
	$(BIN)/python bench/toy_train.py

clean:
	rm -rf runs .pytest_cache
