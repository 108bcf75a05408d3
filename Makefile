# BondWatch — every target sets itself up: a virtual environment, the project and its
# pinned dependencies, and a Mosquitto broker binary from the distribution's packages.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Re-install when the dependency pins change.
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml 2>/dev/null | cut -c1-12)
RAPIDOCR := rapidocr-onnxruntime==1.4.4
PYTEST_ARGS ?=

.PHONY: setup venv broker test-services demo test hil accuracy lint bench format clean

setup: venv broker test-services

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or 3.12"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' || \
	  { echo "error: BondWatch needs Python 3.11 or 3.12 (found $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { echo "error: the venv module is missing (Debian: apt-get install python3-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[truck,gate,server,demo,dev]"
	@# The checkout itself on the path, so that `demo` and `devtools` (development packages,
	@# not in the wheel) are importable by `bondwatch-demo` from any directory.
	$(PY) -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "bondwatch-checkout.pth").write_text(str(pathlib.Path.cwd()) + "\n")'
	@# rapidocr requires the GUI build of OpenCV; the headless build is already installed.
	$(PY) -m pip install --quiet --no-deps $(RAPIDOCR)
	$(PY) -c 'import cv2, rapidocr_onnxruntime, aiomqtt, fastapi, shapely' || { echo "error: the environment is incomplete"; exit 1; }
	rm -f $(VENV)/.installed-*
	touch $@

# Mosquitto: install the distribution's package when it is missing and we are root.
broker:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing mosquitto from the distribution's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	else \
	  echo "error: Mosquitto is not installed. Install it with: sudo apt-get install mosquitto (Debian/Ubuntu)"; \
	  echo "       or: sudo dnf install mosquitto (Fedora/RHEL), then run make again"; exit 1; \
	fi

# The storage tests start their own PostgreSQL from the distribution's server package
# (or use BONDWATCH_TEST_POSTGRES_URL).
test-services:
	@if [ -n "$$BONDWATCH_TEST_POSTGRES_URL" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	    || command -v initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing the PostgreSQL server from the distribution's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
	  echo "error: PostgreSQL server binaries are missing. Install them: sudo apt-get install postgresql"; \
	  echo "       or point the tests at a server: BONDWATCH_TEST_POSTGRES_URL=postgresql+psycopg://user@host/db"; exit 1; \
	fi

# The demo falls back to an embedded broker when Mosquitto cannot be had.
demo: venv console-assets
	@$(MAKE) --no-print-directory broker || echo "note: no Mosquitto; the demo uses its embedded broker"
	$(VENV)/bin/bondwatch-demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

hil: setup
	$(PY) -m pytest tests/hil $(PYTEST_ARGS)

# The accuracy suite: every labelled photo, read in place from $$BONDWATCH_DATA (default
# ../shared/data beside the repository; tests/data/README.md says why they are not copied).
accuracy: setup
	$(PY) -m pytest -m shared_data tests/devices/ocr $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# --- console assets ---
# The console's map library (Leaflet and its cluster plugin, pinned in
# server/console/vendor/package-lock.json) from the npm registry, served by the server itself;
# and the distribution's headless Chromium for the browser tests (never a downloaded one).
CONSOLE_VENDOR := server/console/vendor
.PHONY: console-assets console-browser
setup: console-assets console-browser
console-assets: $(CONSOLE_VENDOR)/node_modules/.package-lock.json

$(CONSOLE_VENDOR)/node_modules/.package-lock.json: $(CONSOLE_VENDOR)/package.json $(CONSOLE_VENDOR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing npm from the distribution's packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	  else echo "error: npm is missing. Install it: sudo apt-get install npm"; exit 1; fi; }
	npm ci --prefix $(CONSOLE_VENDOR) --no-audit --no-fund --ignore-scripts
	touch $@

console-browser:
	@if [ -x /usr/bin/chromium ] || [ -n "$$BONDWATCH_CHROMIUM" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium from the distribution's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null; \
	else \
	  echo "error: Chromium is missing. Install it: sudo apt-get install chromium chromium-driver fonts-wqy-microhei"; exit 1; \
	fi
# --- end console assets ---

# --- telemetry test server ---
# The telemetry tests write through the InfluxDB v2 API to a real VictoriaMetrics
# (Debian's `victoria-metrics` implements /api/v2/write); installed when missing and root.
.PHONY: telemetry-server
setup: telemetry-server
telemetry-server:
	@if command -v victoria-metrics >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing victoria-metrics from the distribution's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics >/dev/null; \
	else \
	  echo "error: VictoriaMetrics is missing (telemetry tests). Install it: sudo apt-get install victoria-metrics"; exit 1; \
	fi
