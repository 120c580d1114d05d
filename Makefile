# Two commands do everything on a fresh machine (set-up included, idempotent):
#   make lab    JupyterLab on notebooks/quickstart.ipynb
#   make test   the whole test suite (ruff, mypy, JS tests + typecheck, pytest incl. e2e)
.PHONY: setup lab test e2e bench wheel clean

SHELL := /bin/bash
LAB_PORT ?= 8888

setup:
	bash scripts/setup.sh

lab: setup
	bash scripts/lab.sh --port=$(LAB_PORT)

test: setup
	bash scripts/test.sh

# Only the end-to-end browser tests (no lint/type steps).
e2e: setup
	.venv/bin/python -m pytest tests/e2e

# Browser latency benchmark (click -> overlay, hover updates/s).
bench: setup
	.venv/bin/python benchmarks/bench_widget.py

# Build the wheel (with the JS bundle inside) into dist/ and check its contents.
wheel: setup
	bash scripts/check_wheel.sh

clean:
	rm -rf dist build test-artifacts .pytest_cache .mypy_cache .ruff_cache sam_widget/static/widget.js*
