.PHONY: bench

# Throughput and latency of authentication and pairing (see bench/bench_auth.py).
bench:
	.venv/bin/python -m bench.bench_auth
