.PHONY: bench soak

# Throughput and latency of authentication and pairing (see bench/bench_auth.py).
bench:
	.venv/bin/python -m bench.bench_auth

# 60 s of mixed traffic on PostgreSQL, 4 workers, Redis; 0 5xx and 0 lost keys or exit 1
# (see bench/soak.py). AUTHSVC_SOAK_DATABASE_URL=postgresql+psycopg://… make soak
soak:
	.venv/bin/python -m bench.soak
