"""How fast authsvc authenticates and pairs: ``python -m bench.bench_auth``.

Runs in one process through the Flask test client on a fresh SQLite database (or the one given
with ``--database``), so the figures measure our code and the database, not HTTP or gunicorn.
"""

import argparse
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import upgrade

from authsvc import create_app, tokens
from authsvc.extensions import db
from authsvc.models import Challenge

PREFIX = "sk-"
MALFORMED = [
    "sk-short",
    "xx-" + "A" * 46,
    "sk-" + "A" * 40 + "000000",  # right shape, wrong checksum
    "sk-" + "!" * 46,
]


def build_app(database_url: str) -> Flask:
    """A migrated app with limits high enough not to interfere with the measurement."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "JWT_SECRET": "bench-secret-0123456789",
            "RATELIMIT_STORAGE_URI": "memory://",
            "AUTHSVC_CHALLENGE_RATE_LIMIT": "1000000 per minute",
        }
    )
    with app.app_context():
        upgrade()
    return app


def measure(count: int, call: Callable[[int], Any]) -> dict[str, float]:
    """Call ``call(i)`` ``count`` times; throughput and latency percentiles."""
    latencies = []
    started = time.perf_counter()
    for index in range(count):
        before = time.perf_counter_ns()
        call(index)
        latencies.append(time.perf_counter_ns() - before)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "count": count,
        "per_second": count / elapsed,
        "p50_us": statistics.median(latencies) / 1000,
        "p99_us": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1000,
    }


def report(label: str, figures: dict[str, float]) -> None:
    print(
        f"{label:<42} n={figures['count']:>7,.0f}  {figures['per_second']:>12,.0f}/s"
        f"  p50 {figures['p50_us']:>9,.1f} µs  p99 {figures['p99_us']:>9,.1f} µs"
    )


def pair(app: Flask, client: Any) -> str:
    """One pairing round trip: create a challenge, read its code as the host, redeem it."""
    created = client.post("/v1/auth/challenges", json={"app_name": "Bench"})
    assert created.status_code == 201, created.json
    challenge_id = created.json["challenge_id"]
    with app.app_context():
        code = db.session.get(Challenge, challenge_id).code
    redeemed = client.post("/v1/auth/api_keys", json={"challenge_id": challenge_id, "code": code})
    assert redeemed.status_code == 201, redeemed.json
    return str(redeemed.json["api_key"])


def run(database_url: str, requests: int, pairings: int) -> None:
    app = build_app(database_url)
    client = app.test_client()
    api_key = pair(app, client)
    valid = {"Authorization": f"Bearer {api_key}"}

    def authenticate(_: int) -> None:
        response = client.get("/v1/auth", headers=valid)
        assert response.status_code == 200, response.json

    def reject(index: int) -> None:
        bad = {"Authorization": f"Bearer {MALFORMED[index % len(MALFORMED)]}"}
        response = client.get("/v1/auth", headers=bad)
        assert response.status_code == 401, response.json

    print(f"authsvc benchmark — database {app.config['SQLALCHEMY_DATABASE_URI']}")
    for _ in range(50):  # warm caches, the owner row and SQLAlchemy's compiled statements
        authenticate(0)
    report("GET /v1/auth, valid key (test client)", measure(requests, authenticate))
    report("GET /v1/auth, malformed key → 401", measure(requests, reject))
    report(
        "tokens.is_well_formed, valid key",
        measure(requests * 50, lambda _: tokens.is_well_formed(api_key, PREFIX)),
    )
    report(
        "tokens.is_well_formed, malformed key",
        measure(
            requests * 50,
            lambda i: tokens.is_well_formed(MALFORMED[i % len(MALFORMED)], PREFIX),
        ),
    )
    report(
        "pairing round trip (challenge + redeem)", measure(pairings, lambda _: pair(app, client))
    )

    tracemalloc.start()
    for index in range(200):
        authenticate(index)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak RSS of the process: {rss_kib / 1024:.1f} MiB")
    print(f"peak traced allocations, 200 authenticated requests: {traced_peak / 1024:.0f} KiB")
    with app.app_context():
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per HTTP figure")
    parser.add_argument("--pairings", type=int, default=300, help="pairing round trips")
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    if args.database:
        run(args.database, args.requests, args.pairings)
        return
    with tempfile.TemporaryDirectory() as directory:
        run(f"sqlite:///{Path(directory) / 'bench.sqlite3'}", args.requests, args.pairings)


if __name__ == "__main__":
    main()
