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
# selection: the matrix the defaults are chosen on: pooled LOSO UF1 of every model preset x selection
#   mode (refit / last / val) beside the converged linear reference, on the realistic embedded data at
#   two sizes, from each photograph, in the CASME II and SAMM layouts (the longest part: hours on 2 CPU
#   cores; `ARGS` goes to bench_data only: run bench_selection.py --help for a subset)
# optimistic: honest vs the papers' best-test-epoch figure for ststnet and cnn_bilstm
# parallel: one LOSO protocol sequential vs runner.parallel=2, wall-time ratio, identical predictions
# precomputed: reading and caching 1,000 stored PNG / .npy clips, and the export round trip (raw layout vs
#   its PNG and .npy exports read back by data=precomputed: pooled LOSO UF1, identical predictions)
# pack: LOSO sequential vs runner.parallel=2 vs runner.pack=K (and both), wall / CPU time, pooled UF1 and
#   whether the predictions are the sequential ones (CASME II layout, 10 folds; a 68-subject set of 28 px
#   flow inputs, 68 folds; ststnet and cnn_bilstm: about an hour on 2 CPU cores, most of it sequential)
# spotting: the embedded long videos (CAS(ME)^2 and SAMM-LV layouts), LOSO: F1 micro / macro / overall of
#   flow_peaks and softnet, STRS, the feature pass's frames/s, peak memory on the longest video
bench: install
	$(PY) benchmarks/bench_readers.py
	$(PY) benchmarks/bench_data.py $(ARGS)
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_selection.py --jobs 2
	$(PY) benchmarks/bench_optimistic.py
	$(PY) benchmarks/bench_parallel.py
	$(PY) benchmarks/bench_precomputed.py
	$(PY) benchmarks/bench_pack.py
	$(PY) benchmarks/bench_spotting.py

lint: install
	$(PY) -m ruff check mer_lightning tests benchmarks

format: install
	$(PY) -m ruff format mer_lightning tests benchmarks
	$(PY) -m ruff check --fix mer_lightning tests benchmarks

clean:
	rm -rf outputs .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
