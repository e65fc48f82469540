# Two commands matter: `make demo` and `make test`. Both bootstrap everything they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test fuzz soak bench lint externals clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Apache Kafka (Maven Central), kcat (Debian), the Go client program: fetched once, cached under ~/.cache/strom.
externals: $(STAMP)
	bash tools/setup.sh

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP) externals
	$(PY) -m pytest

# The structure-aware broker fuzzer with many more examples than the suite's short run (a few minutes).
fuzz: $(STAMP)
	STROM_FUZZ_EXAMPLES=25000 $(PY) -m pytest -q tests/integration/test_broker_fuzz_schemas.py

# Tests marked `slow` (large logs, e.g. a Fetch over 2 GiB of records); `make test` skips them.
soak: $(STAMP)
	STROM_SOAK=1 $(PY) -m pytest -q -m slow tests

bench: $(STAMP) externals
	$(PY) -m pip install --quiet -e '.[bench]'
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

# ruff over every Python tree; mypy over src/ (strict for all of strom: pyproject's [tool.mypy]).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench tools examples
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
