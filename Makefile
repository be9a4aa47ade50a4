# Quick start: `make demo` runs the main job on embedded synthetic data, `make test` runs the tests.
# Both create .venv and install what they need on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: demo test test-fast fuzz test-py310 test-aarch64 lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[cpu,dev]'  # GPU machines: '.[gpu,dev]', never both
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m anymodal.demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not fuzz" --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not serve" --durations=15

# The long robustness runs: 20,000 generated requests per model family through Runtime.predict
# (counts printed) and the exporter killed at 20 random points over an existing bundle
fuzz: $(STAMP)
	$(BIN)/python -m pytest -q -m fuzz -s --durations=15

# The torch-free runtime on JetPack 6's Python (3.10) and on arm64 (Debian root filesystem under
# qemu-user, cached in ~/.cache/anymodal): torch-free tests + every graph's outputs equal to this
# machine's. Exit status 77 from run.py = the target cannot be prepared here (reason printed): skipped.
test-py310 test-aarch64: test-%: $(STAMP)
	@$(BIN)/python tests/portable/run.py --target $*; rc=$$?; 	  if [ $$rc -eq 77 ]; then echo "test-$*: skipped (see the reason above)"; else exit $$rc; fi

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
