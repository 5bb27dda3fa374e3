"""authsvc over HTTP, as a user runs it: ``python -m bench.http`` (``make bench``).

For each ``--keys`` count (default 100, then 100 000) it seeds keys through the modules
(``keys.create_key``) into a temporary instance folder, starts ``authsvc serve --workers N`` on a
free loopback port, drives each scenario with wrk (2 threads, 16 connections, ``--duration``
seconds), runs a pairing loop from Python threads, reads each worker's RSS, and stops the
server. It prints one table for all runs; ratios compare with the public ``GET /`` of the same
run. wrk and the pairing client run on the same machine as the server and compete for its cores.

SQLite in the temporary folder by default. ``--database URL`` (PostgreSQL) WIPES THAT DATABASE:
the benchmark drops and recreates its ``public`` schema first. Give it a database of its own.
Rate limits count in the instance's own store (a SQLite file shared by the workers), as
``authsvc serve`` does by default; ``--redis URL`` keeps them in Redis, under a key prefix of
this run's own. One key has a ``rate_limit`` (too high to refuse anything): its row next to the
plain key's shows what counting costs on the hot path.
"""

import argparse
import json
import os
import platform
import re
import secrets
import shutil
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
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, func, make_url, select, text

from authsvc import create_app, keys, tokens, users
from authsvc.config import DEFAULTS, RENAMED
from authsvc.extensions import db
from authsvc.models import ApiKey
from tests.services import reset_schema

BIN = Path(sys.executable).parent
WRK_THREADS = 2
WRK_CONNECTIONS = 16
PAIR_THREADS = 8
WARM_UP = 1  # seconds of discarded traffic per scenario
BATCH = 1000
# Limits high enough never to refuse the benchmark's own traffic.
LIMITS = {
    "AUTHSVC_CHALLENGE_RATE_LIMIT": "1000000 per minute",
    "AUTHSVC_MAX_PENDING_PER_CLIENT": "100000",
    "AUTHSVC_MAX_PENDING_TOTAL": "100000",
}
BASELINE = "public GET /"
# Counted on every request, never reached: a billion a minute.
HIGH_RATE_LIMIT = {"requests": 1_000_000_000, "per_seconds": 60}
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
TIME = r"([\d.]+)(us|ms|s|m|h)"


@dataclass
class Scenario:
    name: str
    method: str
    path: str
    expected: int  # the status every request should get
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass
class Figures:
    """One row of the table."""

    name: str
    per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    expected: int = 200


@dataclass
class Run:
    keys: int
    seed_seconds: float
    rows: list[Figures]
    rss_mib: list[float]
    load: float  # 1-minute load average when the measurement began

    def figure(self, name: str) -> Figures | None:
        """The row of a scenario; of one measured twice (the baseline), the faster."""
        rows = [row for row in self.rows if row.name == name or row.name.startswith(f"{name} (")]
        return max(rows, key=lambda row: row.per_second, default=None)


def say(message: str) -> None:
    """Progress, on stderr, so that stdout holds only the table."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_wrk() -> str:
    """wrk's path; installed with apt-get when missing and root, else exit 2."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        say("wrk is missing: install the Debian package (sudo apt-get install -y wrk)")
        sys.exit(2)
    say("wrk is missing: apt-get install -y wrk")
    if subprocess.run(["apt-get", "install", "-y", "wrk"], check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        say("could not install wrk")
        sys.exit(2)
    return found


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


def fixture_keys(app: Flask) -> dict[str, str]:
    """The measured keys (one with a rate limit), the verifying caller's key (all the owner's:
    an admin in single-user mode, so it has verify_keys) and a well-formed key that does not
    exist."""
    with app.app_context():
        owner = users.get_owner()
        _, measured = keys.create_key(owner, "bench measured", "cli")
        _, limited = keys.create_key(owner, "bench limited", "cli", rate_limit=HIGH_RATE_LIMIT)
        _, verifier = keys.create_key(owner, "bench verifier", "cli")
        db.session.commit()
        unknown = tokens.generate(keys.key_prefix())
        prefix = keys.key_prefix()
        db.session.remove()
        db.engine.dispose()
    return {
        "valid": measured,
        "limited": limited,
        "verifier": verifier,
        "unknown": unknown,
        "malformed": prefix + "A" * tokens.RANDOM_LENGTH + "0" * tokens.CHECKSUM_LENGTH,
    }


def seed(app: Flask, count: int) -> float:
    """Add keys through ``keys.create_key`` until the table holds ``count``; seconds taken."""
    started = time.perf_counter()
    with app.app_context():
        have = db.session.scalar(select(func.count()).select_from(ApiKey)) or 0
        missing = count - have
        if missing > 0:
            say(f"seeding {missing:,} keys ({have:,} already)")
        owner = users.get_owner()
        for index in range(max(missing, 0)):
            keys.create_key(owner, f"bench {have + index}", "cli")
            if (index + 1) % BATCH == 0:
                db.session.commit()
                if (index + 1) % (BATCH * 10) == 0:
                    say(f"  {index + 1:,} / {missing:,}")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    elapsed = time.perf_counter() - started
    if missing > 0:
        say(f"seeded {missing:,} keys in {elapsed:.1f} s ({missing / elapsed:,.0f} keys/s)")
    return elapsed


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


def scenarios(fixtures: dict[str, str]) -> list[Scenario]:
    def bearer(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    valid = bearer(fixtures["valid"])
    forwarded = {**valid, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/app/x"}
    return [
        Scenario(BASELINE, "GET", "/", 200),
        Scenario("GET /v1/auth, valid key", "GET", "/v1/auth", 200, valid),
        Scenario(
            "GET /v1/auth, valid key with a rate_limit",
            "GET",
            "/v1/auth",
            200,
            bearer(fixtures["limited"]),
        ),
        Scenario(
            "GET /v1/auth, malformed key", "GET", "/v1/auth", 401, bearer(fixtures["malformed"])
        ),
        Scenario("GET /v1/auth, unknown key", "GET", "/v1/auth", 401, bearer(fixtures["unknown"])),
        Scenario("forward-auth GET /v1/auth/forward", "GET", "/v1/auth/forward", 200, forwarded),
        Scenario(
            "POST /v1/keys/verify",
            "POST",
            "/v1/keys/verify",
            200,
            bearer(fixtures["verifier"]),
            {"key": fixtures["valid"]},
        ),
    ]


def check(base: str, scenario: Scenario) -> None:
    """One request first: the scenario measures what it says it does."""
    answer = requests.request(
        scenario.method, base + scenario.path, headers=scenario.headers, json=scenario.body
    )
    if answer.status_code != scenario.expected:
        raise SystemExit(
            f"{scenario.name}: expected {scenario.expected}, got {answer.status_code}:"
            f" {answer.text[:300]}"
        )
    if scenario.body is not None and answer.json().get("valid") is not True:
        raise SystemExit(f"{scenario.name}: the key did not verify: {answer.text[:300]}")


def milliseconds(value: str, unit: str) -> float:
    return float(value) * UNITS[unit]


def parse_wrk(name: str, output: str, expected: int) -> Figures:
    """req/s, p50, p99, counts from ``wrk --latency`` output."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"{name}: cannot read wrk's output ({pattern}):\n{output}")
        return match

    p50, p99 = find(rf"^\s*50%\s+{TIME}\s*$"), find(rf"^\s*99%\s+{TIME}\s*$")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Figures(
        name=name,
        per_second=float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=milliseconds(p50.group(1), p50.group(2)),
        p99_ms=milliseconds(p99.group(1), p99.group(2)),
        requests=int(find(r"(\d+) requests in").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        expected=expected,
    )


def run_wrk(
    wrk: str, base: str, scenario: Scenario, duration: int, scratch: Path, warm_up: bool = False
) -> Figures:
    command = [wrk, f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{duration}s", "--latency"]
    for name, value in scenario.headers.items():
        command += ["-H", f"{name}: {value}"]
    if scenario.body is not None:
        script = scratch / "post.lua"
        script.write_text(
            f'wrk.method = "{scenario.method}"\n'
            f"wrk.body = [[{json.dumps(scenario.body)}]]\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        command += ["-s", str(script)]
    command.append(base + scenario.path)
    say(f"wrk {duration} s: {scenario.name}{' (warm-up, not counted)' if warm_up else ''}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed on {scenario.name}:\n{done.stdout}{done.stderr}")
    return parse_wrk(scenario.name, done.stdout, scenario.expected)


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
        name=f"pairing round trip ({PAIR_THREADS} Python threads), pairs/s",
        per_second=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies),
        p99_ms=percentile(latencies, 0.99),
        requests=len(latencies),
        non_2xx=failures[0],
        socket_errors=0,
        expected=201,
    )


def children(pid: int) -> list[int]:
    """The gunicorn master's children: its workers."""
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    if listing.exists():
        return [int(child) for child in listing.read_text().split()]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if re.search(rf"^PPid:\s+{pid}$", status, re.MULTILINE):
                found.append(int(entry.name))
    return sorted(found)


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")


def measure(
    wrk: str,
    app: Flask,
    count: int,
    fixtures: dict[str, str],
    args: argparse.Namespace,
    instance: Path,
    environment: dict[str, str],
) -> Run:
    seconds = seed(app, count)
    load = os.getloadavg()[0]
    with running_server(instance, environment, args.workers) as (base, process):
        chosen = scenarios(fixtures)
        for scenario in chosen:
            check(base, scenario)
            # Warm both workers (imports, caches, compiled statements) before counting.
            run_wrk(wrk, base, scenario, WARM_UP, instance, warm_up=True)
        rows = [run_wrk(wrk, base, scenario, args.duration, instance) for scenario in chosen]
        # The baseline again, last: a slow first run must not flatter the ratios.
        again = replace(chosen[0], name=f"{chosen[0].name} (again, last)")
        rows.append(run_wrk(wrk, base, again, args.duration, instance))
        rows.append(pairing(base, environment["AUTHSVC_DATABASE_URL"], args.duration))
        rss = [rss_mib(worker) for worker in children(process.pid)]
    return Run(count, seconds, rows, rss, load)


def machine() -> str:
    model = "unknown CPU"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    return f"{cores} cores (nproc), {model}, Linux {platform.release()}"


def ratio(run: Run, row: Figures) -> str:
    baseline = run.figure(BASELINE)
    if row.name.startswith("pairing") or baseline is None or not baseline.per_second:
        return "—"
    return f"{row.per_second / baseline.per_second:.2f}×"


def status_note(row: Figures) -> str:
    if row.expected == 200 or row.non_2xx == 0:
        return f"{row.non_2xx:,}"
    return f"{row.non_2xx:,} ({row.expected} expected)"


def table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    headers = ["keys", "scenario", "req/s", "p50 ms", "p99 ms", "× GET /", "non-2xx", "sock err"]
    rows = [
        [
            f"{run.keys:,}",
            row.name,
            f"{row.per_second:,.0f}",
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            ratio(run, row),
            status_note(row),
            f"{row.socket_errors:,}",
        ]
        for run in runs
        for row in run.rows
    ]
    return headers, rows


def render(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    numeric = {0, 2, 3, 4, 5, 6, 7}
    if markdown:
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append(
            "|" + "|".join("---:" if i in numeric else "---" for i in range(len(headers))) + "|"
        )
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def targets(runs: list[Run], sqlite: bool) -> list[str]:
    """Issue 10's targets, against this run's figures."""
    notes = []
    auth = "GET /v1/auth, valid key"
    ratios = []
    for run in runs:
        row, baseline = run.figure(auth), run.figure(BASELINE)
        if row and baseline:
            ratios.append((run.keys, row.per_second / baseline.per_second))
    if ratios:
        text_ = ", ".join(f"{r:.2f}× ({k:,} keys)" for k, r in ratios)
        notes.append(
            f"authenticated ≥ 0.85× GET /: {text_} — {verdict(min(r for _, r in ratios) >= 0.85)}"
        )
    if len(runs) > 1:
        small, large = runs[0].figure(auth), runs[-1].figure(auth)
        if small and large:
            flat = large.per_second / small.per_second
            notes.append(
                f"{runs[-1].keys:,} keys vs {runs[0].keys:,} (GET /v1/auth req/s) ≥ 0.95×:"
                f" {flat:.2f}× — {verdict(flat >= 0.95)}"
            )
    forward = [run.figure("forward-auth GET /v1/auth/forward") for run in runs]
    worst = max((row.p99_ms for row in forward if row), default=None)
    if worst is not None:
        notes.append(f"forward-auth p99 < 5 ms: worst {worst:.2f} ms — {verdict(worst < 5)}")
    pairs = [row for run in runs for row in run.rows if row.name.startswith("pairing")]
    if pairs and sqlite:
        slowest = min(row.per_second for row in pairs)
        notes.append(
            f"pairing ≥ 200 pairs/s on SQLite: slowest {slowest:.0f}/s — {verdict(slowest >= 200)}"
        )
    rss = [value for run in runs for value in run.rss_mib]
    if rss:
        notes.append(
            f"RSS per worker ≤ 60 MiB: largest {max(rss):.1f} MiB — {verdict(max(rss) <= 60)}"
        )
    return notes


def footer(runs: list[Run], args: argparse.Namespace, database: str) -> list[str]:
    lines = [
        f"RSS per worker after the {run.keys:,}-key run: "
        + ", ".join(f"{value:.1f} MiB" for value in run.rss_mib)
        for run in runs
    ]
    lines += [
        "seeding through keys.create_key, topping up to each count: "
        + ", ".join(f"{run.keys:,} keys {run.seed_seconds:.1f} s" for run in runs),
        "1-minute load average as each run began (includes this benchmark's own earlier work): "
        + ", ".join(f"{run.load:.2f} ({run.keys:,} keys)" for run in runs),
        f"machine: {machine()}; wrk and the pairing client run on the same machine as the server",
        f"database: {database}; rate limits: "
        f"{args.redis or 'the instance store (SQLite file shared by the workers)'}",
        f"server: authsvc serve --workers {args.workers}; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}"
        f" -d{args.duration}s --latency, loopback",
        f"date: {datetime.now().astimezone().isoformat(timespec='seconds')}",
        *(f"target: {note}" for note in targets(runs, database.startswith("SQLite"))),
    ]
    return lines


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
        help="keys in the table (repeat; default 100 and 100000)",
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
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-") as directory:
        instance = Path(directory)
        database_url = args.database or f"sqlite:///{instance / 'authsvc.sqlite3'}"
        environment = server_environment(instance, database_url, args.redis)
        os.environ.clear()
        os.environ.update(environment)  # the seeding app reads the server's configuration
        if args.database:
            say(f"wiping {describe(database_url, True)} (DROP SCHEMA public CASCADE)")
            reset_schema(database_url)
        app = migrated_app()
        fixtures = fixture_keys(app)
        runs = [measure(wrk, app, count, fixtures, args, instance, environment) for count in counts]
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
