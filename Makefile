# Two set-up commands, each self-contained on a fresh machine:
#   make demo   installs (CPU torch first) and runs the main demo
#   make test   installs (CPU torch first) and runs the whole test suite
#   make test-floors  the same install, then a fast subset of the suite in a second venv with the lowest
#               torchmetrics, Lightning and scikit-learn pyproject.toml declares (.ci/test-floors; CI runs it too)
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0

.PHONY: install demo test lint bench

install:
	$(PYTHON) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PYTHON) -m pip install --quiet -e ".[dev]"

demo: install
	$(PYTHON) -m xent_metrics.demos

test: install
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check xent_metrics tests benchmarks examples
	$(PYTHON) -m mypy

bench:
	$(PYTHON) benchmarks/run.py --quick

# The Sphinx site (needs the `docs` extra): docs/_build/html, every warning an error.
.PHONY: docs
docs:
	$(PYTHON) -m sphinx -W --keep-going -b html docs docs/_build/html

# A fast subset of the suite against the declared floors of torchmetrics, Lightning and scikit-learn, in a second
# venv (.ci/floors-venv) that leaves this environment's versions alone.
.PHONY: test-floors
test-floors: install
	PYTHON=$(PYTHON) bash .ci/test-floors
