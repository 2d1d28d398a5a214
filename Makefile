# Two commands do all the set-up: `make run` (server on 127.0.0.1:8888) and `make test`.
# Python comes from a venv this Makefile creates (.venv), unless JUPYTER_MCP_PYTHON names one.

VENV        := .venv
VENV_PY     := $(VENV)/bin/python
KERNEL_PY   := $(if $(JUPYTER_MCP_PYTHON),$(JUPYTER_MCP_PYTHON),$(VENV_PY))
KERNEL_DEPS := $(VENV)/.kernel-deps
TEST_DEPS   := $(VENV)/.test-deps
NODE_DEPS   := node_modules/.package-lock.json
PORT        ?= 8888
HOST        ?= 127.0.0.1

.PHONY: run test test-rust test-clients check-leftovers bench lint fmt clean

run: $(if $(JUPYTER_MCP_PYTHON),,$(KERNEL_DEPS))
	cargo run --release -- --port $(PORT) --host $(HOST) --working-dir ./notebooks --python $(KERNEL_PY)

$(KERNEL_DEPS): requirements-kernel.txt
	test -x $(VENV_PY) || python3 -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r requirements-kernel.txt
	touch $@

$(TEST_DEPS): $(KERNEL_DEPS) requirements-test.txt
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# Every test: Rust unit and integration tests (real ipykernel), then the real MCP clients
# (Python SDK, MCP Inspector CLI, the conformance suite), then a check that no kernel was left.
test: $(TEST_DEPS) $(NODE_DEPS)
	cargo build --locked
	JUPYTER_MCP_TEST_PYTHON=$(abspath $(VENV_PY)) cargo nextest run --locked --no-fail-fast
	$(VENV_PY) -m pytest -q tests/clients
	scripts/check-leftovers

test-rust: $(TEST_DEPS)
	JUPYTER_MCP_TEST_PYTHON=$(abspath $(VENV_PY)) cargo nextest run --locked

test-clients: $(TEST_DEPS) $(NODE_DEPS)
	cargo build --locked
	$(VENV_PY) -m pytest -q tests/clients

check-leftovers:
	scripts/check-leftovers

# Latency and memory against raw jupyter_client on the same ipykernel; figures go to the README.
bench: $(TEST_DEPS)
	cargo build --release --locked
	$(VENV_PY) bench/bench.py

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) node_modules
