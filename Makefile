# mer_lightning: `make train` then `make test` on a fresh clone (each installs what it needs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# face: dlib-bin + face-recognition-models (data.face=dlib; ~105 MB download, ~15 s to install);
# `make install EXTRAS=dev` leaves it out (the face tests are then skipped, saying why)
EXTRAS ?= dev,face
comma := ,
# one stamp per set of extras: changing EXTRAS installs what is missing
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

# offline-safe defaults: no hub retries, no update checks, W&B never blocks
export HF_HUB_OFFLINE ?= 1
export NO_ALBUMENTATIONS_UPDATE ?= 1
export PYTHONUNBUFFERED ?= 1

.PHONY: install train test test-fast bench lint format clean

install: $(STAMP)

# re-runs only when pyproject.toml changes (quick and idempotent otherwise)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

train: install
	$(PY) -m mer_lightning.train $(ARGS)

test: install
	$(PY) -m pytest -q -n 2 $(ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" -x $(ARGS)

# benchmarks print tables measured side by side in one run (not tests: nothing asserts a time)
# readers: full-sized SAMM / CASME II trees read and validated (seconds)
# data: cache vs JPEG decoding, preprocessing throughput, a training epoch (a few minutes on CPU)
# models: training clips/s of the model presets (CPU here; `--device cuda` on a GPU)
# recipes: pooled LOSO UF1 and wall time of each model preset beside the linear flow baseline, on the
#   realistic embedded data in the CASME II and SAMM layouts (the longest part: about an hour on 2 CPU
#   cores, timm x 2 layouts most of it; `ARGS` goes to bench_data only: run bench_recipes.py --help)
# parallel: one LOSO protocol sequential vs runner.parallel=2, wall-time ratio, identical predictions
# spotting: the embedded long videos (CAS(ME)^2 and SAMM-LV layouts), LOSO: F1 micro / macro / overall of
#   flow_peaks and softnet, STRS, the feature pass's frames/s, peak memory on the longest video
bench: install
	$(PY) benchmarks/bench_readers.py
	$(PY) benchmarks/bench_data.py $(ARGS)
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_recipes.py
	$(PY) benchmarks/bench_parallel.py
	$(PY) benchmarks/bench_spotting.py

lint: install
	$(PY) -m ruff check mer_lightning tests benchmarks

format: install
	$(PY) -m ruff format mer_lightning tests benchmarks
	$(PY) -m ruff check --fix mer_lightning tests benchmarks

clean:
	rm -rf outputs .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
