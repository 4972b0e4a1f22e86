# The two commands of the README: `make demo` and `make test`. Each creates a
# local virtual environment (.venv) on first use and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench-env clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jaxtt demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist worksteal -q $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
