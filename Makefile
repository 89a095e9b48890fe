# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Install Marteau with every extra into the project's virtualenv.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[all]'
	touch $@

# Debian packages the tests drive for real (Chromium for the browser tests, PostgreSQL
# for the service tests' second database: tests/postgres.py starts a private cluster,
# nftables for the job users' egress firewall, stress-ng to keep both cores busy
# in the start barrier test, sudo for the test nodes' users: job isolation).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  for pkg in chromium git nftables openssl openssh-server postgresql stress-ng sudo; do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

# Start the demo target on 127.0.0.1 and `marteau run` the demo test against it (this machine is the only node).
demo: $(VENV)/.installed
	$(BIN)/python examples/demo/run_demo.py

lint: $(VENV)/.installed
	$(BIN)/ruff check marteau funkload webunit tests bench examples
	$(BIN)/ruff format --check marteau funkload webunit tests bench examples
	$(BIN)/ansible-lint --offline --nocolor playbooks roles

# Install everything and run the whole test suite (what CI runs).
test: system-deps $(VENV)/.installed lint
	$(BIN)/pytest -q --durations=15
