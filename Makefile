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

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info
