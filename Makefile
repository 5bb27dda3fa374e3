.PHONY: bench bench-inprocess bench-micro profile fuzz soak

VENV := .venv
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check
# Extra arguments for bench/http.py, e.g. make bench BENCH_ARGS="--duration 5 --markdown".
BENCH_ARGS ?=
# Key counts of the PostgreSQL part (the SQLite part keeps bench/http.py's: 100 and 100 000).
BENCH_PG_KEYS ?= --keys 100 --keys 1000000
# Extra arguments for bench/profile.py, e.g. make profile PROFILE_ARGS="--only forward".
PROFILE_ARGS ?=

# A fresh clone: the virtualenv and authsvc in it (as scripts/serve does).
$(PYTHON):
	python3 -m venv $(VENV)

$(VENV)/bin/authsvc: | $(PYTHON)
	@echo "make: installing authsvc and its dependencies into $(VENV)" >&2
	$(PIP) -e '.[postgres,redis]'

$(VENV)/bin/pytest-benchmark: | $(VENV)/bin/authsvc
	@echo "make: installing the test extra into $(VENV)" >&2
	$(PIP) -e '.[test,postgres,redis]'

$(VENV)/bin/py-spy: | $(VENV)/bin/authsvc
	@echo "make: installing py-spy into $(VENV)" >&2
	$(PIP) py-spy

# authsvc serve under wrk: one table and issue 21's targets (see bench/http.py). SQLite with
# 2 workers, 100 and 100 000 keys; then, if AUTHSVC_BENCH_DATABASE_URL is set, PostgreSQL with
# 4 workers and Redis, 100 and 1 000 000 keys (seeded with COPY: about half a minute). That
# database is WIPED (its public schema is dropped): give it one of its own. Then the key check
# in one process with usage counting on and off (bench/usage_cost.py), and on PostgreSQL how long
# a revocation takes to reach every worker with AUTHSVC_INVALIDATION=notify (bench/invalidation.py).
bench: $(VENV)/bin/authsvc
	$(PYTHON) -m bench.http $(BENCH_ARGS)
	$(PYTHON) -m bench.usage_cost
	@if [ -n "$$AUTHSVC_BENCH_DATABASE_URL" ]; then \
		echo "$(PYTHON) -m bench.http --database \$$AUTHSVC_BENCH_DATABASE_URL --workers 4 --redis redis://127.0.0.1:6379/15 $(BENCH_PG_KEYS) $(BENCH_ARGS)"; \
		$(PYTHON) -m bench.http --database "$$AUTHSVC_BENCH_DATABASE_URL" --workers 4 \
			--redis redis://127.0.0.1:6379/15 $(BENCH_PG_KEYS) $(BENCH_ARGS); \
		echo "$(PYTHON) -m bench.invalidation --database \$$AUTHSVC_BENCH_DATABASE_URL"; \
		$(PYTHON) -m bench.invalidation --database "$$AUTHSVC_BENCH_DATABASE_URL"; \
	fi

# Authentication and pairing in one process through the Flask test client: our code and the
# database without HTTP or gunicorn (see bench/bench_auth.py).
bench-inprocess: $(VENV)/bin/authsvc
	$(PYTHON) -m bench.bench_auth

# pytest-benchmark: the key parser and the key check (bench/test_micro.py, not in the suite).
bench-micro: $(VENV)/bin/pytest-benchmark
	$(PYTHON) -m pytest bench/test_micro.py --benchmark-only -p no:cacheprovider

# Where one worker's time goes, per scenario: py-spy samples authsvc serve --workers 1 while
# wrk drives it (see bench/profile.py). SQLite; --database URL (WIPED) for PostgreSQL.
profile: $(VENV)/bin/py-spy
	$(PYTHON) -m bench.profile $(PROFILE_ARGS)

# 60 s of mixed traffic on PostgreSQL, 4 workers, Redis; 0 5xx and 0 lost keys or exit 1
# (see bench/soak.py). It adds rows to the database: by default authsvc_soak on the local
# server, created when missing; AUTHSVC_SOAK_DATABASE_URL=postgresql+psycopg://… picks another.
SOAK_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/authsvc_soak
soak: $(VENV)/bin/authsvc
	@psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'authsvc_soak'" \
		| grep -q 1 || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE authsvc_soak" \
		|| [ -n "$$AUTHSVC_SOAK_DATABASE_URL" ]
	AUTHSVC_SOAK_DATABASE_URL=$${AUTHSVC_SOAK_DATABASE_URL:-$(SOAK_DATABASE_URL)} $(PYTHON) -m bench.soak

# A longer schemathesis run over the OpenAPI document than the test suite's (tests/test_fuzz.py).
fuzz:
	AUTHSVC_FUZZ_EXAMPLES=$${AUTHSVC_FUZZ_EXAMPLES:-300} .venv/bin/python -m pytest tests/test_fuzz.py -q
