# Set-up is self-contained: every target creates .venv when it is missing.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: demo test bench lint install clean interop bench-peers browser

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

# tests/test_audit_html.py looks at the HTML report in a headless Chromium: Debian's package, installed where this
# runs as root with apt-get (CI does); elsewhere that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && echo "installing chromium (apt-get) ..." && \
	  apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1; } || \
	echo "note: no Chromium here; the HTML report's browser test will be skipped (apt-get install chromium)"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@for b in bench/*.py; do [ "$$b" = bench/interop.py ] && continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

# LLaMA-Factory and Axolotl in their own virtual environments (.interop/): each export validated and run 2 steps
interop: $(STAMP)
	$(BIN)/python bench/interop.py

# the peers' environments for bench/train_throughput.py are the interop ones
bench-peers: interop

lint: $(STAMP)
	$(BIN)/ruff check core advisor trainer tests bench scripts

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
