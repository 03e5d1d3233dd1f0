# The two commands of the README: `make demo` and `make test` (each sets up first).
VENV ?= .venv
DEMO_OUTPUT ?= radpath-demo

.PHONY: setup setup-test demo test clean
setup:
	@bash scripts/setup.sh

# The tests also run Kaapana's own plugin, which needs a second environment (Python 3.12).
setup-test:
	@RADPATH_KAAPANA_BOX=1 bash scripts/setup.sh

demo: setup
	$(VENV)/bin/radpath demo --output $(DEMO_OUTPUT)

test: setup-test
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(DEMO_OUTPUT) .pytest_cache
