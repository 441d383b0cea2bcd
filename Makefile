# Set-up is self-contained: every target creates .venv when it is missing.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: demo test bench lint install clean interop bench-peers

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first, pinned: that version is the local CPU build; an unpinned torch pulls CUDA wheels.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev,qlora]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tunewise demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@for b in bench/*.py; do [ "$$b" = bench/interop.py ] && continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

# LLaMA-Factory and Axolotl in their own virtual environments (.interop/): each export validated and run 2 steps
interop: $(STAMP)
	$(BIN)/python bench/interop.py

# the peers' environments for bench/train_throughput.py are the interop ones
bench-peers: interop

lint: $(STAMP)
	$(BIN)/ruff check advisor trainer tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
