.PHONY: bench fuzz soak

# Throughput and latency of authentication and pairing (see bench/bench_auth.py).
bench:
	.venv/bin/python -m bench.bench_auth

# 60 s of mixed traffic on PostgreSQL, 4 workers, Redis; 0 5xx and 0 lost keys or exit 1
# (see bench/soak.py). AUTHSVC_SOAK_DATABASE_URL=postgresql+psycopg://… make soak
soak:
	.venv/bin/python -m bench.soak

# A longer schemathesis run over the OpenAPI document than the test suite's (tests/test_fuzz.py).
fuzz:
	AUTHSVC_FUZZ_EXAMPLES=$${AUTHSVC_FUZZ_EXAMPLES:-300} .venv/bin/python -m pytest tests/test_fuzz.py -q
