# Quick start: `make demo` runs the main job on embedded synthetic data, `make test` runs the tests.
# Both create .venv and install what they need on a fresh clone, from the lock file.
#
# Nothing here runs `python -m …` or `python -c …` from the repository root: that would put the
# root on sys.path and make ./kernels, ./runtime … importable under bare names, shadowing real
# packages (Hugging Face's `kernels`). Console scripts and pytest's own script are used instead
# (docs/ARCHITECTURE.md §1).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINKED := $(VENV)/.linked
LOCK := requirements/dev-cpu.lock
PIP_VERSION := 26.3
DEMO_OUT ?= demo-out
# the package folders: adding or removing a module changes a folder's mtime, which relinks the
# strict editable install (it links files, so new modules need a relink)
PKG_DIRS := anymodal runtime runtime/backends runtime/families export kernels train train/data \
            train/models train/families bench serve

.PHONY: demo test test-fast fuzz test-py310 test-aarch64 lint docs lock clean

# the dev/CI environment: exactly the lock (torch is the CPU wheel); GPU machines install
# '.[gpu,dev]' by hand instead, never both onnxruntime builds
$(STAMP): $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q pip==$(PIP_VERSION)
	$(BIN)/pip install -q -r $(LOCK)
	touch $(STAMP)

# strict editable install: a tree of links under build/, so `anymodal.*` resolves for type checkers
# and nothing but that tree joins sys.path (compat mode would add the repository root)
$(LINKED): $(STAMP) pyproject.toml $(PKG_DIRS)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	touch $(LINKED)

demo: $(LINKED)
	$(BIN)/rt-demo --out $(DEMO_OUT)

# One pytest worker per core (pytest-xdist), each test file on one worker so its module-scoped
# fixtures are built once; one OpenMP thread per worker: PyTorch's spinning OpenMP threads of two
# workers on the same cores slow each other many times over (docs/development.md)
WORKERS ?= auto
PARALLEL := -n $(WORKERS) --dist loadfile

test: $(LINKED)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -m "not fuzz" $(PARALLEL) --durations=15

test-fast: $(LINKED)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -m "not slow and not serve" $(PARALLEL) --durations=15

# The long robustness runs: 20,000 generated requests per model family through Runtime.predict
# (counts printed) and the exporter killed at 20 random points over an existing bundle
fuzz: $(LINKED)
	$(BIN)/pytest -q -m fuzz -s --durations=15

# The torch-free runtime on JetPack 6's Python (3.10) and on arm64 (Debian root filesystem under
# qemu-user, cached in ~/.cache/anymodal): torch-free tests + every graph's outputs equal to this
# machine's. Exit status 77 from run.py = the target cannot be prepared here (reason printed): skipped.
test-py310 test-aarch64: test-%: $(LINKED)
	@$(BIN)/python tests/portable/run.py --target $*; rc=$$?; \
	  if [ $$rc -eq 77 ]; then echo "test-$*: skipped (see the reason above)"; else exit $$rc; fi

lint: $(LINKED)
	$(BIN)/ruff check .

# The guide (docs/, nav in mkdocs.yml) as a static site in site/; --strict fails on a broken
# internal link or a page missing from the nav (tests/docs/test_site.py runs the same build)
docs: $(LINKED)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Refresh the lock from pyproject.toml (docs/development.md). --upgrade takes the newest releases
# the pyproject ranges allow; without it pip-tools keeps every pin it can.
LOCK_ARGS ?=
lock:
	$(PY) -m venv .lock-venv
	.lock-venv/bin/pip install -q pip==$(PIP_VERSION) pip-tools==7.7.0
	CUSTOM_COMPILE_COMMAND="make lock" .lock-venv/bin/pip-compile -q $(LOCK_ARGS) --extra cpu --extra dev \
	  --all-build-deps --allow-unsafe --strip-extras --no-emit-find-links --no-emit-index-url \
	  --no-emit-trusted-host -o $(LOCK) pyproject.toml
	# the dev extra names anymodal's own extras, so pip-compile pins the project itself by this
	# checkout's path; the Makefile installs it editable instead, so that entry is dropped
	sed -i -e '/^anymodal @ file:/{N;d;}' $(LOCK)

clean:
	rm -rf $(VENV) .lock-venv $(DEMO_OUT) build site *.egg-info
