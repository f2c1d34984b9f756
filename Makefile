# sidrec: two commands on a fresh machine.
#   make demo   create .venv if missing, install the pinned stack, run the pipeline on MovieLens 1M,
#               then serve the pushed models and rank one real user over REST
#   make test   create .venv if missing, install, run the whole test suite (e2e runs included)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUTPUT ?= sidrec_output
DATASET ?= ml-1m
# Keras 2 for TFRS, before anything imports TensorFlow (DESIGN.md §3).
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test test-fast test-random bench install clean

# The stamp is rebuilt when the lock or setup.py changes; otherwise install is a no-op.
$(VENV)/.sidrec-installed: requirements.lock setup.py pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "sidrec needs Python 3.11 (the only Python tfx 1.21 supports); found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

install: $(VENV)/.sidrec-installed

demo: install
	$(VENV)/bin/sidrec run --dataset $(DATASET) --output $(OUTPUT)
	$(VENV)/bin/sidrec serve-demo --dataset $(DATASET) --output $(OUTPUT)

# The 25 slowest tests are listed at the end: the suite's time budget (README) is watched there.
# TEST_WORKERS pytest-xdist workers (one per core of the 2-core CI machine; each end-to-end run
# holds a TensorFlow process of 1-3 GB, so not one per core of a large machine).
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --durations=25

# Everything but the end-to-end LocalDagRunner runs.
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) -m "not e2e"

# The whole suite in a random order (pytest-random-order, shuffled within each module): the
# tests must not depend on the order they run in. The seed is printed at the top.
test-random: install
	$(PY) -m pytest -q -p no:cacheprovider --random-order

# Throughput benchmarks (print figures and ratios against the targets; not part of `make test`).
bench: install
	$(PY) benchmarks/encoder_throughput.py
	$(PY) benchmarks/codebook_throughput.py --max-items 100000
	$(PY) benchmarks/spm_segmentation.py
	$(PY) benchmarks/trainer_throughput.py
	$(PY) benchmarks/tfx_trainer_throughput.py
	$(PY) benchmarks/stage_costs.py
	# The serving benchmarks read the models and data `make demo` wrote to $(OUTPUT).
	$(PY) benchmarks/serving_latency.py --serving-dir $(OUTPUT)/serving --data-dir $(OUTPUT)/data
	$(PY) benchmarks/serving_load.py --serving-dir $(OUTPUT)/serving --data-dir $(OUTPUT)/data
	$(PY) benchmarks/serving_version_switch.py --serving-dir $(OUTPUT)/serving --data-dir $(OUTPUT)/data

clean:
	rm -rf $(OUTPUT) build *.egg-info
