# Every target installs into .venv first when it is missing or older than pyproject.toml.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export WANDB_MODE ?= offline

.PHONY: install sweep test test-all mutation hpo report explore bench bench-packing lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

sweep: $(STAMP)  ## the model x frames x split grid on the embedded synthetic data, then its report
	$(PY) -m ar_experiments.train -m experiment=grid; status=$$?; \
	$(PY) -m ar_experiments.report --latest; exit $$status

# The fast tier runs in a process per core (pytest-xdist, at most 4); the slow tier in one process: its
# tests start their own processes (command lines, sweeps, DDP ranks, a SLURM cluster) and time things.
test: $(STAMP)  ## the fast tests (in-process, tiny inputs; `make test-all` adds the slow ones)
	$(PY) -m pytest -m "not slow" -n auto --maxprocesses 4

test-all: test  ## every test: the fast ones, then the slow ones (real command lines, whole sweeps, DDP, SLURM)
	$(PY) -m pytest -m slow

# One module at a time, one test process, at the lowest priority; mutmut's settings (which files, which
# tests) are [tool.mutmut] in pyproject.toml. Long (minutes per module): not part of CI. docs/testing.md
MUTATION_MODULES ?= report.stats report.comparisons report.results_validation data.splits data.clips safety \
	evaluation sweeps.progress sweeps.time_left data.training_batches data.decode_check

mutation: $(STAMP)  ## mutation testing of the pure-logic modules (MUTATION_MODULES=... picks some)
	for module in $(MUTATION_MODULES); do \
	  AR_TEST_CACHE_DIR=$(CURDIR)/.cache/mutation-tests nice -n 19 $(VENV)/bin/mutmut run --max-children 1 \
	    "ar_experiments.$$module.*" || exit 1; \
	done
	$(VENV)/bin/mutmut results

hpo: $(STAMP)  ## an Optuna search (see conf/hparams_search/optuna.yaml)
	$(PY) -m ar_experiments.train -m hparams_search=optuna experiment=demo

report: $(STAMP)  ## report of the newest sweep (or SWEEP=multirun/<date>/<time>)
	$(PY) -m ar_experiments.report $(or $(SWEEP),--latest)

explore: $(STAMP)  ## split statistics and frame strips of the default data
	$(PY) -m ar_experiments.explore

bench: $(STAMP)  ## throughput and overhead measurements, written to bench.json
	$(PY) -m ar_experiments.bench

bench-packing: $(STAMP)  ## (GPU machine) the grid one job at a time vs packed on the GPUs, into $$OUT or bench-results/packing/
	$(PY) -m ar_experiments.bench.grid_packing $(if $(JOBS_PER_GPU),--jobs-per-gpu $(JOBS_PER_GPU))

lint: $(STAMP)
	$(VENV)/bin/ruff check ar_experiments tests hydra_plugins
	$(VENV)/bin/ruff format --check ar_experiments tests hydra_plugins

clean:  ## run outputs and caches; keeps .venv and the generated data (.cache)
	rm -rf outputs multirun mutants .pytest_cache .ruff_cache wandb
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
