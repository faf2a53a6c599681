# Two entry points, each of which sets itself up first:
#   make pipeline   create .venv, install, run the DVC pipeline (dvc repro)
#   make test       create .venv, install, run the test suite
# DATASET=fashion_mnist (or any data.dataset value) runs the pipeline as
# `dvc exp run -S data.dataset=...` instead of plain `dvc repro`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup pipeline test

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

pipeline: $(STAMP)
ifdef DATASET
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc exp run -S data.dataset=$(DATASET)
else
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
endif

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q
