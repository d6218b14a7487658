# Every target that runs ffbench depends on the venv, so each one does its own set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNS ?= runs
EPOCHS ?=
SEEDS ?=
# Runs at once for `make reproduce`: one per core on a CPU (each with one thread), 1 on a GPU.
JOBS ?= $(shell $(BIN)/python -c 'import os, torch; print(1 if torch.cuda.is_available() else os.cpu_count())')
# The reading of the notes (`ffbench readings`): code reproduces the paper's table, text follows
# the printed equations; ROW and TOWARD are what `make ablation` flips, one switch at a time.
READING ?= code
ROW ?= adj_FFA0_1
TOWARD ?= text
EPOCHS_FLAG := $(if $(EPOCHS),--epochs $(EPOCHS))
SEEDS_FLAG := $(if $(SEEDS),--seeds $(SEEDS))

.PHONY: setup data test reproduce ablation beyond depth table report clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(BIN)/ffbench data

test: data
	$(BIN)/ruff check ffbench tests
	$(BIN)/ruff format --check ffbench tests
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# All ten rows of the notes' table at full length under READING (EPOCHS=20 for a short look,
# SEEDS=3 for mean ± std, READING=text for the printed equations).
reproduce: data
	$(BIN)/ffbench run --paper --reading $(READING) --jobs $(JOBS) --eval-every 20 $(EPOCHS_FLAG) $(SEEDS_FLAG) --runs-dir $(RUNS)
	$(BIN)/ffbench table --runs-dir $(RUNS)

# ROW under READING, and once with each switch flipped to TOWARD's choice (15 full runs for adj_FFA0_1).
ablation: data
	$(BIN)/ffbench ablate $(ROW) --reading $(READING) --toward $(TOWARD) --jobs $(JOBS) --eval-every 20 $(EPOCHS_FLAG) $(SEEDS_FLAG) --runs-dir $(RUNS)
	$(BIN)/ffbench table --runs-dir $(RUNS) --ablation $(ROW)
	$(BIN)/ffbench figure ablation $(ROW) --reading $(READING) --runs-dir $(RUNS)

# The rows beyond the notes, each with SEEDS seeds (default 3): FF_best's recipe choices on
# validation (30 epochs each, JOBS at a time), FF_best alone on every thread (its time is part of
# its result), then the forward-gradient rows' rates on validation (their 400 epochs, rates 1e-4
# to 3e-2) and the three rows at the chosen rates, JOBS at a time.
BEYOND_SEEDS := --seeds $(if $(SEEDS),$(SEEDS),3)
beyond: data
	$(BIN)/ffbench study ff_best_recipe --jobs $(JOBS) --eval-every 10 --runs-dir $(RUNS)
	$(BIN)/ffbench table --study ff_best_recipe --runs-dir $(RUNS)
	$(BIN)/ffbench run FF_best --eval-every 10 $(BEYOND_SEEDS) --runs-dir $(RUNS)
	$(BIN)/ffbench study fg_rates --jobs $(JOBS) --eval-every 20 --runs-dir $(RUNS)
	$(BIN)/ffbench table --study fg_rates --runs-dir $(RUNS)
	$(BIN)/ffbench run FG_weight FG_activity FG_local --jobs $(JOBS) --eval-every 20 $(EPOCHS_FLAG) $(BEYOND_SEEDS) --runs-dir $(RUNS)
	$(BIN)/ffbench table --runs-dir $(RUNS)

# The depth study (README, "Forward gradients as the network deepens"): the rates on validation
# first (depth_rates, one seed), then backprop and the four forward gradients at L = 1, 2, 4, 8
# (and one wide point) with SEEDS seeds (default 3), its table and its figure.
DEPTH_SEEDS := $(if $(SEEDS),$(SEEDS),3)
depth: data
	$(BIN)/ffbench study depth_rates --jobs $(JOBS) --eval-every 5 --runs-dir $(RUNS)
	$(BIN)/ffbench table --study depth_rates --runs-dir $(RUNS)
	$(BIN)/ffbench study depth --seeds $(DEPTH_SEEDS) --jobs $(JOBS) --eval-every 5 --runs-dir $(RUNS)
	$(BIN)/ffbench table --study depth --runs-dir $(RUNS)
	$(BIN)/ffbench figure depth --runs-dir $(RUNS)

table: setup
	$(BIN)/ffbench table --runs-dir $(RUNS)

# The report of a runs directory from its files alone (report.md, report.html, report/), by
# default the committed one of runs/reference (tests/test_report.py holds it to the runs).
# The README's headline table is the committed report's, written by the same command.
REPORT ?= runs/reference
report: setup
	$(BIN)/ffbench report --runs-dir $(REPORT) $(if $(filter runs/reference,$(REPORT)),--readme README.md)

# Removes the venv and caches; run directories are results and are kept.
clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
