"""authsvc over HTTP, as a user runs it: ``python -m bench.http`` (``make bench``).

For each ``--keys`` count (default 100, then 100 000) it seeds keys in bulk into a temporary
instance folder (bench/seeding.py), starts ``authsvc serve --workers N`` on a free loopback
port, drives each scenario with wrk (bench/scenarios.py; 2 threads, 16 connections, forward-auth
also at 4, ``--duration`` seconds), runs a pairing loop from Python threads, reads each
worker's PSS and RSS, and stops the server. It prints one table for all runs, then issue 21's
targets (bench/results.py); ratios compare with the public ``GET /`` of the same run, the
faster of its two rounds. wrk and the pairing client run on the same machine as the server and
compete for its cores.

SQLite in the temporary folder by default. ``--database URL`` (PostgreSQL) WIPES THAT DATABASE:
the benchmark drops and recreates its ``public`` schema first. Give it a database of its own.
Rate limits count in the instance's own store (a SQLite file shared by the workers), as
``authsvc serve`` does by default; ``--redis URL`` keeps them in Redis, under a key prefix of
this run's own. One key has a ``rate_limit`` (too high to refuse anything): its row next to the
plain key's shows what counting costs on the hot path.
"""

import argparse
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import requests
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, make_url, text

from authsvc import create_app
from authsvc.config import DEFAULTS, RENAMED
from authsvc.extensions import db
from tests.services import reset_schema

from .output import say
from .pss import pss_mib, rss_mib, workers
from .results import Run, memory_lines, render, table, targets
from .scenarios import FEW_CONNECTIONS, PAIR_THREADS, PAIRING, fixture_keys, scenarios
from .seeding import seed
from .wrk import WRK_CONNECTIONS, WRK_THREADS, Figures, check, find_wrk, run_wrk

BIN = Path(sys.executable).parent
WARM_UP = 1  # seconds of discarded traffic per scenario
# Limits high enough never to refuse the benchmark's own traffic.
LIMITS = {
    "AUTHSVC_CHALLENGE_RATE_LIMIT": "1000000 per minute",
    "AUTHSVC_MAX_PENDING_PER_CLIENT": "100000",
    "AUTHSVC_MAX_PENDING_TOTAL": "100000",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(instance: Path, database_url: str, redis_url: str | None) -> dict[str, str]:
    """The variables the seeding app and the server share; a developer's own settings dropped."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in DEFAULTS and name not in RENAMED
    }
    environment.update(
        {
            "AUTHSVC_INSTANCE_PATH": str(instance),
            "AUTHSVC_DATABASE_URL": database_url,
            **LIMITS,
        }
    )
    if redis_url:
        environment["AUTHSVC_RATELIMIT_STORAGE_URI"] = redis_url
        prefix = f"authsvc-bench-{secrets.token_hex(4)}"
        (instance / "config.py").write_text(
            f"RATELIMIT_STORAGE_OPTIONS = {{'key_prefix': {prefix!r}}}\n"
        )
    return environment


def migrated_app() -> Flask:
    app = create_app()
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return app


@contextmanager
def running_server(
    instance: Path, environment: dict[str, str], workers: int
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``authsvc serve`` on a free loopback port until /health answers 200; SIGTERM after."""
    port = free_port()
    command = [
        str(BIN / "authsvc"),
        *("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
    ]
    log = instance / "server.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=output)
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"the server stopped:\n{log.read_text()[-3000:]}")
                try:
                    if requests.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"the server did not come up:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
            yield base, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@dataclass
class Instance:
    """A temporary instance folder with its database and the keys the scenarios use."""

    folder: Path
    environment: dict[str, str]
    app: Flask
    fixtures: dict[str, str]

    @property
    def database_url(self) -> str:
        return self.environment["AUTHSVC_DATABASE_URL"]


@contextmanager
def prepared(database_url: str | None, redis_url: str | None) -> Iterator[Instance]:
    """An instance on ``database_url`` (WIPED first) or on SQLite in its folder, migrated,
    with the fixture keys; this process's environment becomes the server's. Removed after."""
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-") as directory:
        folder = Path(directory)
        url = database_url or f"sqlite:///{folder / 'authsvc.sqlite3'}"
        environment = server_environment(folder, url, redis_url)
        os.environ.clear()
        os.environ.update(environment)  # the seeding app reads the server's configuration
        if database_url:
            say(f"wiping {describe(url, True)} (DROP SCHEMA public CASCADE)")
            reset_schema(url)
        app = migrated_app()
        yield Instance(folder, environment, app, fixture_keys(app, folder))


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def pairing(base: str, database_url: str, duration: int) -> Figures:
    """Create a challenge, read its code as the person looking at the screen would (from the
    database), redeem it: from PAIR_THREADS threads with keep-alive sessions."""
    engine = create_engine(database_url, pool_size=PAIR_THREADS)
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                created = session.post(f"{base}/v1/auth/challenges", json={"app_name": "Bench"})
                if created.status_code != 201:
                    with lock:
                        failures[0] += 1
                    continue
                challenge_id = created.json()["challenge_id"]
                with engine.connect() as connection:
                    code = connection.scalar(
                        text("SELECT code FROM challenges WHERE id = :id"), {"id": challenge_id}
                    )
                body = {"challenge_id": challenge_id, "code": code}
                redeemed = session.post(f"{base}/v1/auth/api_keys", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if redeemed.status_code == 201:
                        latencies.append(elapsed)
                    else:
                        failures[0] += 1

    say(f"pairing {duration} s from {PAIR_THREADS} Python threads")
    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(PAIR_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    engine.dispose()
    latencies.sort()
    if not latencies:
        raise SystemExit(f"pairing: no round trip succeeded ({failures[0]} failures)")
    return Figures(
        name=PAIRING,
        per_second=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies),
        p99_ms=percentile(latencies, 0.99),
        requests=len(latencies),
        non_2xx=failures[0],
        socket_errors=0,
        expected=201,
    )


def measure(wrk: str, instance: Instance, count: int, args: argparse.Namespace) -> Run:
    """Seed up to ``count`` keys, then every scenario, the baseline again and pairing."""
    seconds = seed(instance.app, count)
    load = os.getloadavg()[0]
    with running_server(instance.folder, instance.environment, args.workers) as (base, process):
        chosen = scenarios(instance.fixtures)
        for scenario in chosen:
            check(base, scenario)
            # Warm every worker (imports, caches, compiled statements) before counting.
            run_wrk(wrk, base, scenario, WARM_UP, instance.folder, warm_up=True)
        rows = [run_wrk(wrk, base, scenario, args.duration, instance.folder) for scenario in chosen]
        # The baseline again, last: a slow first run must not flatter the ratios.
        again = replace(chosen[0], name=f"{chosen[0].name} (again, last)")
        rows.append(run_wrk(wrk, base, again, args.duration, instance.folder))
        rows.append(pairing(base, instance.database_url, args.duration))
        pids = workers(process.pid)
        pss, rss = [pss_mib(pid) for pid in pids], [rss_mib(pid) for pid in pids]
    return Run(count, seconds, rows, pss, rss, load)


def machine() -> str:
    model = "unknown CPU"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    return f"{cores} cores (nproc), {model}, Linux {platform.release()}"


def footer(runs: list[Run], args: argparse.Namespace, database: str) -> list[str]:
    sqlite = database.startswith("SQLite")
    bulk = "batched INSERTs" if sqlite else "COPY"
    return [
        *memory_lines(runs),
        f"seeding in bulk ({bulk}), topping up to each count: "
        + ", ".join(f"{run.keys:,} keys {run.seed_seconds:.1f} s" for run in runs),
        "1-minute load average as each run began (includes this benchmark's own earlier work): "
        + ", ".join(f"{run.load:.2f} ({run.keys:,} keys)" for run in runs),
        f"machine: {machine()}; wrk and the pairing client run on the same machine as the server",
        f"database: {database}; rate limits: "
        f"{args.redis or 'the instance store (SQLite file shared by the workers)'}",
        f"server: authsvc serve --workers {args.workers}; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}"
        f" (forward-auth also -c{FEW_CONNECTIONS}) -d{args.duration}s --latency, loopback",
        f"date: {datetime.now().astimezone().isoformat(timespec='seconds')}",
        *(f"target: {note}" for note in targets(runs, sqlite, args.workers)),
    ]


def describe(database_url: str, given: bool) -> str:
    if not given:
        return "SQLite (file in the temporary instance folder)"
    url = make_url(database_url)
    return f"{url.get_backend_name()} {url.render_as_string(hide_password=True)}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="--database WIPES the database it is given."
    )
    parser.add_argument(
        "--keys",
        type=int,
        action="append",
        help="keys in the table (repeat; default 100 and 100000; PostgreSQL: up to millions)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario [10]")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers [2]")
    parser.add_argument("--database", help="PostgreSQL URL; ITS SCHEMA public IS DROPPED FIRST")
    parser.add_argument("--redis", help="rate-limit storage, e.g. redis://127.0.0.1:6379/15")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    counts = sorted(set(args.keys or [100, 100_000]))
    if args.duration < 1 or args.workers < 1 or counts[0] < 2:
        parser.error("--duration and --workers must be ≥ 1, --keys ≥ 2")
    wrk = find_wrk()
    # SIGTERM unwinds like Ctrl-C: the server is stopped and the folder removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with prepared(args.database, args.redis) as instance:
        runs = [measure(wrk, instance, count, args) for count in counts]
        database_url = instance.database_url
    headers, rows = table(runs)
    notes = footer(runs, args, describe(database_url, bool(args.database)))
    if args.markdown:
        print(render(headers, rows, markdown=True))
        print()
        print("\n".join(f"- {note}" for note in notes))
    else:
        print(render(headers, rows, markdown=False))
        print("\n".join(notes))


if __name__ == "__main__":
    main()
