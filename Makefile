# The two commands of the README:
#   make demo   ingest a demo GitOps repo, its logs and a traced pipeline; serve API + UI on 127.0.0.1
#               (port 8000; another with make demo PORT=8001)
#   make test   install what the tests need (as root: Debian packages, Neo4j jars) and run them all
.PHONY: demo test lint fmt typecheck unit bench fuzz setup venv clean

PY := .venv/bin/python
PYTEST_ARGS ?=
PORT ?= 8000

venv:
	scripts/bootstrap

setup: venv
	scripts/setup-system

demo: venv
	@if [ "$$(id -u)" = 0 ]; then scripts/setup-ebpf .venv >/dev/null 2>&1 || true; fi
	.venv/bin/liubai demo --dir .demo --port $(PORT)

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

fmt: venv
	.venv/bin/ruff format .
	.venv/bin/ruff check --select I --fix .

test: setup lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest -q tests/unit tests/contract -k "not neo4j"

bench: venv
	$(PY) bench/run_all.py

fuzz: venv
	LIUBAI_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -m fuzz tests/fuzz --hypothesis-show-statistics

clean:
	rm -rf .venv .demo tests/artifacts bench/results
