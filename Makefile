# Yiwang. Quick start: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
export YIWANG_HOME ?= $(CURDIR)/instance

# The suite runs against real PostgreSQL and Redis; override to point elsewhere.
export YIWANG_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export YIWANG_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: demo demo-reset test bench lint install prepare clean audit screenshots messages

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

prepare:
	bash .ci/prepare

# Ctrl-C stops it; `make demo-reset` deletes the demo's data (./instance) for a fresh start.
demo: install
	YIWANG_LOG_LEVEL=warning PYTHONWARNINGS=ignore $(VENV)/bin/idp init --demo
	YIWANG_LOG_LEVEL=warning PYTHONWARNINGS=ignore $(VENV)/bin/certstore init --demo
	$(PY) -m demo.serve

# Only the default ./instance: a YIWANG_HOME pointed elsewhere is never deleted from here.
demo-reset:
	@if [ "$(YIWANG_HOME)" != "$(CURDIR)/instance" ]; then \
		echo "YIWANG_HOME is $(YIWANG_HOME), not the demo's ./instance: delete it yourself if you mean to"; exit 2; fi
	rm -rf "$(CURDIR)/instance"
	@echo "demo data deleted; make demo starts afresh (new keys, new demo password)"

test: install prepare
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -n 2 -p no:cacheprovider

# Known vulnerabilities in the installed packages fail it; an unreachable advisory database is
# said loudly, not passed silently (YIWANG_AUDIT_REQUIRED=1 makes that fail too). docs/operators.md
audit: install
	$(PY) .ci/audit.py

lint: install
	$(VENV)/bin/ruff check idp certstore signing keys tests demo
	$(VENV)/bin/mypy keys signing
	$(VENV)/bin/lint-imports

# The page strings of both services into the one Chinese catalog (keys/locale/zh_CN/LC_MESSAGES/messages.po):
# new msgids arrive with an empty msgstr to fill in; tests/test_catalog.py fails until they are. docs/citizen-pages.md
messages: install
	$(VENV)/bin/pybabel -q extract -F keys/locale/babel.cfg -k N_ --sort-by-file -o $(VENV)/messages.pot idp certstore keys
	$(VENV)/bin/pybabel -q update -i $(VENV)/messages.pot -d keys/locale -l zh_CN --no-fuzzy-matching --ignore-obsolete

# docs/screenshots from the page tour (every citizen page, phone and desktop, zh-CN and en) and the
# idp's login page test; an ordinary test run writes no screenshot.
screenshots: install prepare
	DOCS_SCREENSHOTS=1 $(VENV)/bin/pytest -p no:cacheprovider -q tests/test_page_tour.py \
		tests/idp/test_e2e_browser.py::test_login_page_in_both_languages

# `make bench BENCH_ARGS="--quick"` for a shorter run, `--only idp,certstore` for some sections.
bench: install prepare
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache
