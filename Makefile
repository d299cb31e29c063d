# All set-up happens here: `make test` and `make taxonomy` work on a fresh clone.
#
# Interpreter: CPython 3.11 is the supported and CI-tested one (the pinned stack below resolves
# there, and the CPU torch wheel used by the optional converter tests is built for it).
# Override with `make PYTHON=/path/to/python3.12 test` to try 3.12 or 3.13.
PYTHON ?= $(shell ./tools/find_python.sh)
VENV := .venv
PY := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
# Extras the test run needs: the Beam path, the omnidata-tools agreement test and the
# visualpriors converter test run in CI; the web app (and its browser tests) and the video
# writer are tested too.
TEST_EXTRAS := test,beam,omnidata,torch,web,video
STAMP := $(VENV)/.installed-test

.PHONY: venv browser test test-all lint lock clean taxonomy bench

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@test -n "$(PYTHON)" || { echo "No CPython 3.11-3.13 found; set PYTHON=..." >&2; exit 1; }
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[$(TEST_EXTRAS)]'
	touch $@

venv: $(STAMP)

# The browser tests drive Debian's chromium + chromium-driver; install them when missing.
browser:
	./tools/install_browser.sh

# Test files run in parallel processes (pytest-xdist), at most 4, each file in one process so its
# module fixtures are built once: compiling and subprocess start-up leave a core idle much of the
# time, so two processes on 2 cores take about two thirds of one's time (BUILD_NOTES.md,
# "Interpreter and dependency versions").
PYTEST_PARALLEL ?= -n auto --maxprocesses 4 --dist loadfile
test: $(STAMP) browser
	$(PY) -m pytest -m "not slow" -q $(PYTEST_PARALLEL)

test-all: $(STAMP) browser
	$(PY) -m pytest -q $(PYTEST_PARALLEL)

# The whole pipeline on the synthetic world (render -> dataset -> task bank -> representations ->
# transfers -> affinities -> BIP -> figures); resumable: a rerun skips finished stages.
TAXONOMY_WORKDIR ?= out/taxonomy
# A packaged config NAME[:arg] or a config file's path.py[:arg]; a smoke run:
# `make taxonomy TAXONOMY_CONFIG=taxonomy:tiny`.
TAXONOMY_CONFIG ?= taxonomy
taxonomy: $(STAMP)
	$(VENV)/bin/taskonomy taxonomy --config $(TAXONOMY_CONFIG) --workdir $(TAXONOMY_WORKDIR)

# Every benchmark beside its baseline, one table (out/bench/suite.{md,json}); about 20 minutes
# on 2 idle cores. `make bench BENCH_ARGS=--quick` is a few-minute smoke run; add
# `--taxonomy-workdir out/taxonomy` to report a finished `make taxonomy` run by stage.
BENCH_OUT ?= out/bench
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m benchmarks --out $(BENCH_OUT) $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Re-pin every dependency from a fresh resolve (run after changing setup.cfg).
lock:
	rm -rf /tmp/taskonomy-lock && $(PYTHON) -m venv /tmp/taskonomy-lock
	/tmp/taskonomy-lock/bin/pip install -q --upgrade pip
	/tmp/taskonomy-lock/bin/pip install -q '.[$(TEST_EXTRAS)]'
	/tmp/taskonomy-lock/bin/pip freeze --exclude taskonomy-jax > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) build *.egg-info
