# Two commands on a fresh machine: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup browser fuse run demo test bench bench-explore redis lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# The main job: the default gate (every scenario against the robust queue), then the
# incident reproduced on the legacy design, the fix that shipped, and the robust queue.
run: setup
	$(PY) -m harness run --target robust --scenario all
	$(PY) -m harness reproduce incident

demo: setup
	$(PY) -m persistence.demo

# The HTML report's browser test needs Debian's chromium: installed here when we are root
# with apt-get; anywhere else the test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      >/dev/null || echo "make browser: chromium could not be installed; the browser test will skip"; \
	  else echo "make browser: not root or no apt-get; the browser test will skip"; fi; }

# `--layer fuse` needs libfuse 3 and fusermount3 (Debian's fuse3), /dev/fuse and root:
# installed here when we are root with apt-get; anywhere else its tests skip and say why.
fuse:
	@command -v fusermount3 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 \
	      >/dev/null) || echo "make fuse: fuse3 could not be installed; the FUSE tests will skip"; \
	  else echo "make fuse: not root or no apt-get; the FUSE layer's tests will skip"; fi; }

# One pytest worker more than there are cores: many tests spend their time waiting
# (real processes, the 30 s idle-phase test), and the spare worker fills that time.
JOBS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

test: setup browser fuse
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(JOBS)

bench: setup fuse
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_explore.py
	$(PY) benchmarks/bench_fuse.py

# Crash states per second of `harness explore` (writes reports/bench-explore.json).
bench-explore: setup
	$(PY) benchmarks/bench_explore.py
	$(PY) benchmarks/bench_fuse.py

# A redis-server for the shared-database test (tests/harness/test_distributed.py skips
# without one). Debian/Ubuntu CI images: needs root or sudo.
redis:
	command -v redis-server >/dev/null || (apt-get update -q && apt-get install -y -q redis-server)

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
