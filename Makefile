# The two commands of the README: `make demo` and `make test` (each sets up first).
VENV ?= .venv
DEMO_OUTPUT ?= radpath-demo

.PHONY: setup demo test clean
setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/radpath demo --output $(DEMO_OUTPUT)

test: setup
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(DEMO_OUTPUT) .pytest_cache
