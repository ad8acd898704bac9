# Two set-up commands, each self-contained on a fresh machine:
#   make demo   installs (torch first, pinned) and runs the main demo
#   make test   installs (torch first, pinned) and runs the whole test suite
# The test environment is a lock: every test and dev dependency at the exact version in $(LOCK), generated from
# pyproject.toml's ranges by `make lock`. torch stays out of the lock: it is installed first, at TORCH_VERSION, from
# pip's configured index (PyPI: on Linux a CUDA build of several GB) or from TORCH_INDEX, for instance PyTorch's
# CPU-only wheel index:  make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
#   make test-floors  the same install, then a fast subset of the suite in a second venv with the lowest
#               torchmetrics, Lightning and scikit-learn pyproject.toml declares (.ci/test-floors; CI runs it too)
#   make lock         refresh $(LOCK) to the newest releases pyproject.toml allows (pip-tools' pip-compile)
#   make test-newest  the suite in a second venv (.ci/newest-venv) without the lock: run it when refreshing the lock
#   make mutation     mutation testing of functional/, metrics/ and scoring/ (not in CI; about an hour on 2 cores):
#               tests/mutation/RESULTS.md. MUTATION_ARGS="--modules _nll _bce --max-mutants 30" narrows it
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
LOCK = requirements/dev.lock.txt
TORCH_INSTALL = pip install --quiet "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))

.PHONY: install demo test lint bench bench-gpu lock test-newest

install:
	$(PYTHON) -m $(TORCH_INSTALL)
	$(PYTHON) -m pip install --quiet --constraint $(LOCK) -e ".[dev]"

demo: install
	$(PYTHON) -m xent_metrics.demos

test: install
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check xent_metrics tests benchmarks examples
	$(PYTHON) -m mypy

bench:
	$(PYTHON) benchmarks/run.py --quick

# On a machine with one NVIDIA GPU: the correctness pass against float64 on the device (and 2 gloo ranks
# syncing CUDA tensors), then every case with --quick; see benchmarks/README.md ("GPU").
bench-gpu:
	$(PYTHON) benchmarks/run.py --device cuda --quick

# pip-compile runs in its own venv (.ci/lock-venv: pip-tools 7.7 needs pip >= 26.2, the test environment keeps its
# pip). pip and setuptools (pip-tools' defaults), torch (installed first, above) and this project stay out of the
# lock; the lock names no index, find-links or local path, so it installs on any machine.
PIP_TOOLS ?= pip-tools==7.7.0
lock:
	rm -rf .ci/lock-venv
	$(PYTHON) -m venv .ci/lock-venv
	.ci/lock-venv/bin/python -m pip install --quiet "$(PIP_TOOLS)"
	pin=$$(mktemp) && echo "torch==$(TORCH_VERSION)" > $$pin && \
	CUSTOM_COMPILE_COMMAND="make lock" .ci/lock-venv/bin/python -m piptools compile --quiet --upgrade --extra dev \
		--strip-extras --unsafe-package pip --unsafe-package setuptools --unsafe-package torch \
		--unsafe-package xent-metrics --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
		--constraint $$pin --output-file $(LOCK) pyproject.toml; status=$$?; rm -f $$pin; exit $$status

test-newest:
	rm -rf .ci/newest-venv
	$(PYTHON) -m venv .ci/newest-venv
	.ci/newest-venv/bin/python -m $(TORCH_INSTALL)
	.ci/newest-venv/bin/python -m pip install --quiet -e ".[dev]"
	.ci/newest-venv/bin/python -m pip list --format=freeze > .ci/newest-venv/versions.txt
	.ci/newest-venv/bin/python -m pytest -p no:cacheprovider

# The Sphinx site (needs the `docs` extra): docs/_build/html, every warning an error.
.PHONY: docs
docs:
	$(PYTHON) -m sphinx -W --keep-going -b html docs docs/_build/html

# A fast subset of the suite against the declared floors of torchmetrics, Lightning and scikit-learn, in a second
# venv (.ci/floors-venv) that leaves this environment's versions alone.
.PHONY: test-floors
test-floors: install
	PYTHON=$(PYTHON) bash .ci/test-floors

# Mutation testing (tests/mutation/mutate.py): a seeded sample of mutants per module, each run against the module's
# fast test subset in a forked child, within MUTATION_MINUTES. Writes tests/mutation/results.json and RESULTS.md.
MUTATION_MINUTES ?= 60
MUTATION_ARGS ?=
.PHONY: mutation
mutation:
	$(PYTHON) tests/mutation/mutate.py --budget $(MUTATION_MINUTES) --jobs 2 $(MUTATION_ARGS)
