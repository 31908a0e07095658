# advlab: `make course` runs and renders the whole course, `make test` checks it.
# Both create .venv and install advlab (editable, with its course, classroom and dev extras) on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.advlab-installed
CELL_TIMEOUT ?= 600
export ADVLAB_PROFILE ?= quick

.PHONY: install course site test lint unit notebooks browser wheel lab refresh robustness bench clean \
	assignments grade student-copies

# torchattacks is a test oracle only; it pins an old `requests`, so it goes in without deps
# (it needs only torch, numpy, scipy and tqdm, all already installed).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[course,classroom,dev]'
	$(PY) -m pip install --quiet --no-deps 'torchattacks>=3.5'
	@touch $(STAMP)

install: $(STAMP)

# Run every notebook (executed copies + runs.json in build/executed/; on 2+ cores Part I beside Part II,
# see tools/course.py), then build the course site
# into build/site/ (open build/site/index.html); the site is built even when a notebook failed,
# to show where, and then the target fails.
course: install
	@rc=0; $(PY) tools/course.py run --save build/executed || rc=$$?; \
	$(PY) tools/site.py --from build/executed --out build/site && exit $$rc

# The course site alone: from build/executed where a notebook was run there, else as committed.
site: install
	$(PY) tools/site.py --from build/executed --out build/site

test: install
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint unit notebooks browser wheel && \
	echo "make test: $$(( $$(date +%s) - start )) s"

lint: install
	$(VENV)/bin/ruff check $(wildcard lib tests tools benchmarks notebooks conftest.py)

unit: install
	$(PY) -m pytest tests -q --durations=10 --ignore=tests/test_browser.py --ignore=tests/test_wheel.py

# JupyterLab and the course site in headless Chromium (skips, saying so, where chromium is absent;
# .ci/run installs it); screenshots land in build/.
browser: install
	$(PY) -m pytest tests/test_browser.py -q -rs

# The wheel as pip would install it: size, shipped generators, notebooks 00 and 14 from a bare folder.
wheel: install
	$(PY) -m pytest tests/test_wheel.py -q -rs

# nbval (--nbval-lax) over every notebook: the committed outputs come from course seed 0; the run
# trains into a temporary data folder; Part I runs beside Part II (tools/course.py).
notebooks: install
	@data=$$(mktemp -d); \
	ADVLAB_SEED=0 ADVLAB_DATA=$$data $(PY) tools/course.py nbval --timeout $(CELL_TIMEOUT); \
		rc=$$?; rm -rf $$data; exit $$rc

# Classroom copies with nbgrader (tools/classroom.py): build/classroom/ gets nbgrader_config.py,
# source/NN_topic/ (the committed, instructor notebooks) and release/NN_topic/ (student copies made
# by `nbgrader generate_assignment`); submissions and the gradebook already there are kept.
assignments: install
	$(PY) tools/classroom.py assignments

# Autograde build/classroom/submitted/<student>/<assignment>/ into the gradebook, then export
# build/classroom/grades.csv.
grade: install
	$(PY) tools/classroom.py grade

# Every student copy run top to bottom, unsolved, in a temporary data folder: only answer and
# check cells may raise (in .ci/run, after make test).
student-copies: install
	@data=$$(mktemp -d); \
	ADVLAB_SEED=0 ADVLAB_DATA=$$data $(PY) tools/classroom.py student-run --timeout $(CELL_TIMEOUT); \
		rc=$$?; rm -rf $$data; exit $$rc

lab: install
	$(VENV)/bin/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

refresh: install
	$(PY) tools/course.py run --inplace

# Every notebook under other course seeds (default 1 and 2), one thread each, side by side, fresh
# data folders: `make robustness SEEDS="3 4" ONLY="02 10"` for other seeds or a subset.
robustness: install
	$(PY) tools/robustness.py $(if $(SEEDS),--seeds $(SEEDS),) $(ONLY)

# Every notebook's full-profile code path at smoke scale: fixture MNIST / CIFAR-10 files in a
# temporary data folder, CPU, one thread, network blocked (`make full-smoke ONLY="02 12"`).
.PHONY: full-smoke
full-smoke: install
	$(PY) tools/full_smoke.py $(ONLY)

bench: install
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf build

# Small generator checkpoints for notebooks 11-14 (CPU minutes; one thread, so two runs can share
# a 2-core machine): written into the package, lib/advlab/gan/weights/, with each run's config and
# log (JSON), so the wheel carries them; then notebook 10's ablation over ten seeds (190 toy runs,
# about half an hour of CPU time, one worker per core) after the 63 tuning runs that chose its
# settings (about 7 CPU minutes), whose samples ship there too; then
# notebook 07's augmentation study (8 recipes x 3 training seeds, about 10 minutes), whose
# numbers ship in lib/advlab/shipped/.
.PHONY: pretrained
pretrained: install
	OMP_NUM_THREADS=1 $(PY) tools/pretrain_gans.py
	OMP_NUM_THREADS=1 $(PY) tools/toy_ablation.py --tuning
	OMP_NUM_THREADS=1 $(PY) tools/toy_ablation.py
	OMP_NUM_THREADS=1 $(PY) tools/augmentation_study.py

# Before tagging a release: advlab.__version__, the top CHANGELOG.md heading and CITATION.cff
# must name the same version and date (tools/release_check.py says which file disagrees).
.PHONY: release-check
release-check: install
	$(PY) tools/release_check.py
