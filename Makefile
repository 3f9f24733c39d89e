# Fresh-machine entry points (README): `make demo` and `make test`.
# Python packages install into ./.venv from requirements.lock (versions seen working
# together). `make test` also needs Java 17 + Maven (the Kafka broker comes from Maven
# Central jars) and Debian's chromium (browser tests); it installs chromium with apt-get
# when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench system-deps

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

demo: setup
	$(VENV)/bin/jiahe demo

# Browser tests need Debian's chromium (+ a CJK font for legible screenshots); the codec
# tests publish with Debian's kcat (librdkafka), a client independent of the project.
system-deps:
	@command -v java >/dev/null || { echo "Java 17+ is required (Kafka broker)" >&2; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is required (Kafka broker jars)" >&2; exit 1; }
	@command -v chromium >/dev/null || { \
	  echo "installing chromium with apt-get (browser tests)"; \
	  apt-get install -y -q chromium fonts-wqy-microhei >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium fonts-wqy-microhei >/dev/null; }; }
	@command -v kcat >/dev/null || { \
	  echo "installing kcat with apt-get (Kafka codec tests)"; \
	  apt-get install -y -q kcat >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q kcat >/dev/null; }; }

# A missing browser or kcat fails their tests instead of skipping them.
test: setup system-deps
	JIAHE_REQUIRE_BROWSER=1 JIAHE_REQUIRE_KCAT=1 $(PY) -m pytest -q

# ruff; the layer contracts (pyproject.toml [tool.importlinter]); types.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy events privacy rules projections streams access alerts sdk app api cli bench devtools

bench: setup
	$(VENV)/bin/jiahe bench
