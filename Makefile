# The two commands README.md starts with. Each does its own set-up.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup proto check bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup
	bash scripts/setup
	touch $@

proto: setup
	$(PY) scripts/genproto.py

demo: setup
	bash scripts/demo

test: setup
	bash scripts/check

# make bench [SUITES="compare runtime faults scale overlay"]: a table, and bench/results/*.json
bench: setup
	$(PY) -m bench $(SUITES)

clean:
	rm -rf $(VENV) build *.egg-info
