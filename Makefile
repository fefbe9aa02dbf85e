# Two commands on a fresh machine: `make demo` and `make test`.
#   make demo   installs what the demo needs (no test extras), then runs both studies
#   make test   installs the test extras too (pytest, ray), then runs the test suite
# torch: the CUDA build where nvidia-smi lists a GPU, else the CPU build when pip can get one (PyTorch's
# CPU index, or a +cpu wheel among pip's own sources): ~1 GB instead of ~5 GB of CUDA libraries.
# tools/install_torch.py prints which build it chose. TORCH=cpu|cuda forces one; TORCH_INDEX=URL
# names another index of CPU builds.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= auto
TORCH_INDEX ?=

.PHONY: install install-test demo demo-active test bench clean

# stamps: the base install (what `superlens` needs) and the test extras on top of it
$(VENV)/.installed: pyproject.toml tools/install_torch.py
	@echo "== creating $(VENV) and installing superlens: torch, torchvision, scipy, scikit-learn,"
	@echo "   matplotlib, openTSNE (~1-5 minutes on a fresh machine; pip shows its progress)"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python tools/install_torch.py --build $(TORCH) $(if $(TORCH_INDEX),--cpu-index $(TORCH_INDEX))
	$(BIN)/pip install --progress-bar on -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "== installing the test extras: pytest, ray (~250 MB)"
	$(BIN)/pip install --progress-bar on -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# The main job on the embedded default: the compressed-computation study (no download), then the
# active-learning study on scikit-learn's bundled digits.
demo: install
	@echo "== 1/2 the compressed-computation study -> runs/toy-demo/report.html (~1 minute on 2 cores)"
	$(BIN)/superlens toy --out runs/toy-demo --force
	@echo "== 2/2 the active-learning study on digits -> runs/active-demo/report.html (~7 minutes on 2 cores, a busy one included)"
	$(BIN)/superlens active --preset digits --out runs/active-demo --force

test: install-test
	@echo "== the test suite (pytest tests; the ten slowest are listed at the end)"
	$(BIN)/python -m pytest tests --durations=10

bench: install
	$(BIN)/python bench/toy_train.py

clean:
	rm -rf runs .pytest_cache
