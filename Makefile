.PHONY: bench fuzz

# Throughput and latency of authentication and pairing (see bench/bench_auth.py).
bench:
	.venv/bin/python -m bench.bench_auth

# A longer schemathesis run over the OpenAPI document than the test suite's (tests/test_fuzz.py).
fuzz:
	AUTHSVC_FUZZ_EXAMPLES=$${AUTHSVC_FUZZ_EXAMPLES:-300} .venv/bin/python -m pytest tests/test_fuzz.py -q
