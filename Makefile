# HireMeter: `make run` starts the suite, `make test` runs every test. Both install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GEN_STAMP := gen/.stamp
BUF := .tools/node_modules/.bin/buf

.PHONY: run test proto lint up down bench sim migrate demo clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# One path entry: the repo root and gen/ become importable from every entry point and tool.
	@echo "$(CURDIR)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/hiremeter.pth
	@echo "$(CURDIR)/gen" >> $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/hiremeter.pth
	@touch $(STAMP)

proto: $(GEN_STAMP)

$(GEN_STAMP): $(STAMP) $(PROTOS)
	@rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -I protos --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)
	@touch $(GEN_STAMP)

migrate: proto
	$(PY) -m services.common.migrate

run: proto
	$(PY) -m tools.supervisor

sim: proto
	$(PY) -m tools.openai_sim --port $${OPENAI_SIM_PORT:-8099}

test: proto $(BUF)
	$(PY) -m tools.run_tests $(TEST_ARGS)

lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd protos && ../$(BUF) lint

# buf ships inside its npm package; kept under .tools/ (gitignored).
$(BUF):
	npm install --silent --no-save --no-package-lock --prefix .tools @bufbuild/buf@1.75.0 >/dev/null

bench: proto
	$(PY) -m bench $(BENCH_ARGS)

demo: proto
	$(PY) -m tools.demo

up:
	docker compose up -d --build

down:
	docker compose down

clean:
	rm -rf gen var .pytest_cache
