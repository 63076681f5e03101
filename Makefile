# make train: set up .venv, fetch MNIST, train the cluttered60 recipe.   make test: set up, fetch MNIST, lint, test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch==2.13.0 first: on the project's machines pip takes the CPU wheel that lies on disk, where a bare range
# would pull a multi-GB CUDA build. Elsewhere, set TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu)
# for a CPU wheel, or let the fallback take whatever torch>=2.1 pip chooses.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
ARGS ?=
RUN ?= runs/cluttered60-6g-s0

.PHONY: setup data train test lint bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) \
		|| $(PY) -m pip install -q "torch>=2.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

data: setup
	$(PY) -m envs

# A second `make train` continues (or, when finished, re-tests) the same run.
train: data
	$(PY) train.py --run-dir $(RUN) $(if $(wildcard $(RUN)/last.pt),--resume) $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .

test: data lint
	$(PY) -m pytest -q

bench: data
	$(PY) benchmarks/bench_foundation.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
