"""What counting usage costs the key check: ``python -m bench.usage_cost``.

The same valid-key request through the Flask test client, with the usage and metrics count on
(as served: in-memory counters, a flush thread writing every few seconds) and off (the one
``usage.record`` call replaced by nothing), in alternating rounds so drift hits both alike.
"""

import argparse
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from authsvc import usage
from authsvc.extensions import db
from bench.bench_auth import build_app, measure, pair, report


@contextmanager
def counting(on: bool) -> Iterator[None]:
    """Counting as served, or switched off for the duration."""
    record: Callable[..., Any] = usage.record
    if not on:
        usage.record = lambda *_: None  # type: ignore[assignment]
    try:
        yield
    finally:
        usage.record = record  # type: ignore[assignment]


def run(database_url: str, requests: int, rounds: int) -> None:
    app = build_app(database_url)
    app.config["AUTHSVC_USAGE_FLUSH_INTERVAL"] = 1  # the flush thread works during the run
    client = app.test_client()
    valid = {"Authorization": f"Bearer {pair(app, client)}"}

    def authenticate(_: int) -> None:
        response = client.get("/v1/auth", headers=valid)
        assert response.status_code == 200, response.json

    for _ in range(200):  # warm caches and compiled statements
        authenticate(0)
    figures: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(rounds):
        for on in (False, True):
            with counting(on):
                figures[on].append(measure(requests, authenticate))
    print(f"usage counting on the hot path — database {app.config['SQLALCHEMY_DATABASE_URI']}")
    medians = {}
    for on in (False, True):
        rows = figures[on]
        median = {
            name: statistics.median(row[name] for row in rows)
            for name in ("per_second", "p50_us", "p99_us")
        }
        medians[on] = median
        label = f"GET /v1/auth, counting {'on' if on else 'off'} (median of {rounds})"
        report(label, {"count": requests, **median})
    change = medians[True]["per_second"] / medians[False]["per_second"] - 1
    print(f"throughput with counting on: {change:+.1%} against counting off (target: within 5 %)")
    with app.app_context():
        usage.flush()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each")
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    if args.database:
        run(args.database, args.requests, args.rounds)
        return
    with tempfile.TemporaryDirectory() as directory:
        run(f"sqlite:///{Path(directory) / 'bench.sqlite3'}", args.requests, args.rounds)


if __name__ == "__main__":
    main()
