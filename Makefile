# One-command set-up: every target below creates .venv if needed and installs
# what it needs. Re-running is quick: the install step is skipped while
# pyproject.toml is unchanged (the stamp file records the last install).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch for chapter 6: the CPU build by default (on the course machines this
# version is on local disk; an unpinned torch would pull a multi-GB CUDA build).
TORCH ?= torch==2.13.0

.PHONY: help setup book check test lab exercises bench grade clean

help:
	@echo "make book       build the HTML book into _build/html"
	@echo "make check      lint (ruff), kflib's doctests and the fast tests (~1 min)"
	@echo "make test       run every test (kflib, book, exercises, browser)"
	@echo "make lab        open JupyterLab on the exercises"
	@echo "make exercises  regenerate exercises/ from solutions/ (nbgrader)"
	@echo "make bench      time kflib beside statsmodels, filterpy, pykalman; the"
	@echo "                learned filters against the KF; the book build (~25 min)"
	@echo "make grade      grade every assignment with submissions (grading/)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install --quiet '$(TORCH)'
	$(BIN)/python -m pip install --quiet -e '.[book,grading,dev,dl,fast]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --path-output . --builder html -W -n --keep-going

# For use while working: skips the tests marked slow (nbgrader, the built
# book, the browser, the sandbox).
check: $(STAMP)
	$(BIN)/ruff check kflib grader tests bench tools
	$(BIN)/python -m pytest --doctest-modules kflib -q -p no:cacheprovider
	$(BIN)/python -m pytest -m "not slow" -q -p no:cacheprovider

# Two pytest workers (pytest-xdist); tests that share a session fixture or that grade
# a class run in one group each (the book build; nbgrader; the grading runs), so the
# book is built once and no two grading runs compete for the same worker.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=exercises

exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet filterpy pykalman numba
	$(BIN)/python bench/run.py
	$(BIN)/python bench/learned.py
	$(BIN)/python bench/book.py

grade: $(STAMP)
	$(BIN)/python -m grader

clean:
	rm -rf _build
