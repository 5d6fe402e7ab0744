# senti_lit — every target installs what it needs first, so each works alone on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install train test test-slow test-all bench bench-data tensorboard clean

install: $(STAMP)

# Idempotent: re-runs only when the dependency files change. torch goes first and pinned,
# because letting pip resolve it from the other packages pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,serve]'
	touch $(STAMP)

train: install  ## the default job: data=demo model=mini_bert trainer=default (ARGS="key=value ..." to override)
	$(BIN)/python -m senti_lit.train $(ARGS)

test: install   ## the default test suite: tests marked slow excluded (pyproject addopts -m 'not slow')
	$(BIN)/python -m pytest $(ARGS)

test-slow: install  ## only the tests marked slow
	$(BIN)/python -m pytest -m slow $(ARGS) || [ $$? -eq 5 ]  # 5: no slow test collected

test-all: install  ## the whole suite, slow tests included (what CI runs: .ci/run)
	$(BIN)/python -m pytest -m '' $(ARGS)

BENCH ?= quick
bench: install  ## accuracy rows on ../shared/data -> benchmarks/results/ + BENCHMARKS.md (BENCH=full: all seeds, full data)
	$(BIN)/python benchmarks/bench.py --mode $(BENCH) $(ARGS)

bench-data: install  ## readers over ../shared/data + the data pipeline at 120k-1M rows -> benchmarks/results/ + BENCHMARKS.md
	$(BIN)/python benchmarks/data_bench.py $(ARGS)

tensorboard: install
	$(BIN)/tensorboard --logdir logs

clean:
	rm -rf logs/*/ .pytest_cache
