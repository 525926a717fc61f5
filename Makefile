# make demo   Gunicorn (4 workers, 127.0.0.1:8000) serving examples/flask_app.py;
#             edit examples/config.yaml and watch every worker switch.
#             make demo PORT=8001 WORKERS=8 to change the address or count.
# make test   the whole test suite (creates .venv on first use).
# make test-all  the suite on every supported Python found (pyenv or PATH),
#             one .venv-3.X each; PYTHONS="3.10 3.13" picks some.
# make lint   ruff and mypy --strict.
# make docs   the documentation site (mkdocs build --strict) into site/.

PYTHON ?= python3
PORT ?= 8000
WORKERS ?= 4
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: demo test test-all lint docs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $(STAMP)

# The docs group (mkdocs and its plugins) only for make docs.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --group docs
	touch $(DOCS_STAMP)

# exec: Gunicorn replaces the recipe's shell, so a signal sent to the process
# make started (Ctrl-C, kill -INT) reaches Gunicorn's master itself.
demo: $(STAMP)
	exec env HOTCFG_SOURCE=$(CURDIR)/examples/config.yaml \
	$(BIN)/gunicorn -c gunicorn_conf.py --workers $(WORKERS) \
		--bind 127.0.0.1:$(PORT) --no-control-socket --pythonpath examples flask_app:app

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-all:
	PYTHONS="$(PYTHONS)" .ci/test-all

lint: $(STAMP)
	$(BIN)/ruff check hotcfg tests examples benchmarks tools docs gunicorn_conf.py
	$(BIN)/ruff format --check hotcfg
	$(BIN)/mypy

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/propagation.py
	$(BIN)/python benchmarks/integration_overhead.py

clean:
	rm -rf $(VENV) .venv-3.* build dist site .pytest_cache .mypy_cache .ruff_cache
