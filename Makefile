# advlab: `make course` runs and renders the whole course, `make test` checks it.
# Both create .venv and install advlab (editable, with its dev extra) on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.advlab-installed
CELL_TIMEOUT ?= 600
export ADVLAB_PROFILE ?= quick

.PHONY: install course test lint unit notebooks lab refresh robustness bench clean

# torchattacks is a test oracle only; it pins an old `requests`, so it goes in without deps
# (it needs only torch, numpy, scipy and tqdm, all already installed).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps 'torchattacks>=3.5'
	@touch $(STAMP)

install: $(STAMP)

course: install
	$(PY) tools/course.py run --html build

test: install
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint unit notebooks && \
	echo "make test: $$(( $$(date +%s) - start )) s"

lint: install
	$(VENV)/bin/ruff check $(wildcard lib tests tools benchmarks notebooks conftest.py)

unit: install
	$(PY) -m pytest tests -q --durations=10

notebooks: install
	$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) notebooks -q

lab: install
	$(VENV)/bin/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

refresh: install
	$(PY) tools/course.py run --inplace

# Every notebook under other course seeds (default 1 and 2), one thread each, side by side, fresh
# data folders: `make robustness SEEDS="3 4" ONLY="02 10"` for other seeds or a subset.
robustness: install
	$(PY) tools/robustness.py $(if $(SEEDS),--seeds $(SEEDS),) $(ONLY)

bench: install
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf build

# Small generator checkpoints for notebooks 11-14 (CPU minutes; one thread, so two runs can share
# a 2-core machine): written to data/pretrained/ with each run's config and log (JSON).
.PHONY: pretrained
pretrained: install
	OMP_NUM_THREADS=1 $(PY) tools/pretrain_gans.py
