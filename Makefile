# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pytest-xdist workers of `make test` (tests/conftest.py says how the suite splits).
TEST_WORKERS ?= 3

.PHONY: demo test lint system-deps constraints vendor-js

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Install Marteau with the server, dev and monitor extras into the project's virtualenv, and mitmproxy (the
# `record` extra: `marteau record`'s proxy, a program) into a venv of its own, since its
# pins would downgrade the server extra's h11 and cryptography; .venv/bin/mitmdump links to it.
# The install builds the compiled engine (setup.py, mypyc): it is redone when a compiled
# module's source changes (marteau/native.py's COMPILED; until then marteau runs the .py).
MITM_VENV := .venv-mitmproxy
COMPILED_SOURCES := $(shell sed -n 's/^    "\(marteau\.[a-z_.]*\)",$$/\1/p' marteau/native.py | tr . / | sed 's/$$/.py/')
$(VENV)/.installed: setup.cfg pyproject.toml setup.py marteau/native.py $(COMPILED_SOURCES) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server,dev,monitor]'
	test -x $(MITM_VENV)/bin/python || $(PYTHON) -m venv $(MITM_VENV)
	$(MITM_VENV)/bin/pip install --quiet 'mitmproxy>=11.0'
	ln -sf ../../$(MITM_VENV)/bin/mitmdump $(BIN)/mitmdump
	touch $@

# Debian packages the tests drive for real (Chromium for the browser tests, PostgreSQL
# for the service tests' second database: tests/postgres.py starts a private cluster,
# nftables for the job users' egress firewall, stress-ng to keep both cores busy
# in the start barrier test, sudo for the test nodes' users: job isolation; Prometheus, a
# real server for the monitor's Prometheus source; gcc, and Python's headers when $(PYTHON)
# has none, for the compiled engine's build).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  for pkg in chromium gcc git nftables openssl openssh-server postgresql prometheus stress-ng sudo; do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	  $(PYTHON) -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	    || dpkg -s python3-dev >/dev/null 2>&1 || missing="$$missing python3-dev"; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

# The node wheelhouse's pinned versions (marteau/orchestration/node-constraints.txt): run
# after changing install_requires; tests/test_packaging.py fails until then.
constraints: $(VENV)/.installed
	$(BIN)/python -m marteau.orchestration.constraints

# The report's chart library, committed in marteau/report/static/ (so that pip, the node
# wheelhouse and CI need neither npm nor a network): `make vendor-js` refreshes it from the npm
# package at the pinned version, refuses a tarball whose sha512 is not the pinned one, and
# records the files' sha256 (tests/test_report_interactive.py checks the committed files).
UPLOT_VERSION := 1.6.32
UPLOT_INTEGRITY := sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
UPLOT_DIR := marteau/report/static
vendor-js:
	rm -rf .vendor-js && mkdir .vendor-js
	cd .vendor-js && npm pack --silent uplot@$(UPLOT_VERSION) >/dev/null
	test "sha512-$$(openssl dgst -sha512 -binary .vendor-js/uplot-$(UPLOT_VERSION).tgz | base64 -w0)" = "$(UPLOT_INTEGRITY)"
	tar -xzf .vendor-js/uplot-$(UPLOT_VERSION).tgz -C .vendor-js
	cp .vendor-js/package/dist/uPlot.iife.min.js .vendor-js/package/dist/uPlot.min.css $(UPLOT_DIR)/
	cp .vendor-js/package/LICENSE $(UPLOT_DIR)/uPlot.LICENSE
	cd $(UPLOT_DIR) && sha256sum uPlot.iife.min.js uPlot.min.css uPlot.LICENSE > uPlot.sha256
	rm -rf .vendor-js

# Start the demo target on 127.0.0.1 and `marteau run` the demo test against it (this machine is the only node).
demo: $(VENV)/.installed
	$(BIN)/python examples/demo/run_demo.py

lint: $(VENV)/.installed
	$(BIN)/ruff check marteau funkload webunit tests bench examples
	$(BIN)/ruff format --check marteau funkload webunit tests bench examples
	$(BIN)/mypy
	$(BIN)/ansible-lint --offline --nocolor playbooks roles
	$(BIN)/lint-imports --no-cache

# Install everything and run the whole test suite (what CI runs) on the compiled engine,
# then the tests of what the compiled modules run (the engine, the FunkLoad API, the result
# files and their golden files, the bench) again on the pure one (MARTEAU_PURE=1).
PURE_TESTS := tests/test_http_client.py tests/test_hub.py tests/test_recorder.py \
	tests/test_allowed_hosts.py tests/test_funkload_browser.py tests/test_funkload_testcase.py \
	tests/test_funkload_forms.py tests/test_funkload_utils.py tests/test_fl_run_test.py \
	tests/test_fl_run_test_options.py tests/test_results_compact.py tests/test_results_xml.py \
	tests/test_bench_command.py tests/test_bench_schedule.py tests/test_fuse.py \
	tests/test_open_model.py tests/test_max_users.py tests/test_credentials.py
test: system-deps $(VENV)/.installed lint
	$(BIN)/pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadgroup
	MARTEAU_PURE=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PURE_TESTS)
