# Every target installs into .venv first when it is missing or older than pyproject.toml.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export WANDB_MODE ?= offline

.PHONY: install sweep test test-all hpo report explore bench bench-packing gpu-wheels bench-gpu lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

sweep: $(STAMP)  ## the model x frames x split grid on the embedded synthetic data, then its report
	$(PY) -m ar_experiments.train -m experiment=grid; status=$$?; \
	$(PY) -m ar_experiments.report --latest; exit $$status

test: $(STAMP)  ## the fast tests (about two minutes on 2 cores; `make test-all` adds the slow ones)
	$(PY) -m pytest -m "not slow"

test-all: $(STAMP)  ## every test: the fast ones and the slow ones (real command lines, whole sweeps, DDP)
	$(PY) -m pytest

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

# What a GPU machine with Python 3.12, torch 2.11, Lightning, torchmetrics and numpy/pandas/scipy/matplotlib
# lacks to run the bench and training; versions as in this project's .venv, except torchvision, which must
# be torch's pair (pytorchvideo's model package imports torchvision.ops): 0.26.0 for torch 2.11.0, set
# GPU_TORCHVISION for another torch. Pure-python sdists are built into wheels here; PyAV's abi3 wheel
# serves 3.11 and 3.12.
GPU_TORCHVISION ?= torchvision==0.26.0
GPU_WHEELS := hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 pytorchvideo==0.1.5 \
	fvcore==0.1.5.post20221221 iopath==0.1.10 av==18.1.0 parameterized==0.9.0 yacs==0.1.8 tabulate==0.10.0 \
	termcolor==3.3.0 portalocker==4.4.2 $(GPU_TORCHVISION)
WHEELS := .whl
GPU_SITE ?= /tmp/site

gpu-wheels:  ## (here, online) the wheels `make bench-gpu` installs on a GPU machine without network, into .whl/
	mkdir -p $(WHEELS)
	for spec in $(GPU_WHEELS); do \
	  $(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	    -d $(WHEELS) $$spec 2>/dev/null \
	  || $(PYTHON) -m pip wheel --quiet --no-deps --no-binary=:all: -w $(WHEELS) $$spec \
	  || exit 1; \
	done
	du -sh $(WHEELS)

bench-gpu:  ## (there, offline) install .whl/ beside its torch, run the GPU bench and short trainings into $$OUT or gpu-results/
	$(PYTHON) -m pip install --quiet --no-index --no-deps --upgrade --target $(GPU_SITE) $(WHEELS)/*.whl
	PYTHONPATH=$(GPU_SITE):$(CURDIR) $(PYTHON) -m ar_experiments.bench.gpu_session

lint: $(STAMP)
	$(VENV)/bin/ruff check ar_experiments tests hydra_plugins
	$(VENV)/bin/ruff format --check ar_experiments tests hydra_plugins

clean:  ## run outputs and caches; keeps .venv and the generated data (.cache)
	rm -rf outputs multirun .pytest_cache .ruff_cache wandb
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
