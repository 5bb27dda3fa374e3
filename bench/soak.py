"""Soak test: ``python -m bench.soak`` (``make soak``) — mixed traffic against a real server.

Starts ``authsvc serve --workers 4`` on a loopback port, on the PostgreSQL database named by
``--database`` (or ``AUTHSVC_SOAK_DATABASE_URL``), with rate limits in Redis under a key prefix
of its own, and drives it for ``--duration`` seconds (default 60) from ``--clients`` threads
with pairing, key use, creation, rotation, revocation and listing. It prints the requests made,
the statuses, the 5xx count (must be 0), the keys issued against the keys stored, and latency
percentiles; it exits 1 if a request failed with 5xx or an issued key is missing. It adds rows
to the database (keys, users, audit events) and removes none.
"""

import argparse
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

BIN = Path(sys.executable).parent
WORKERS = 4
ACTIONS = {  # weight of each action in the mix
    "use key": 50,
    "pair": 10,
    "create key": 10,
    "rotate key": 8,
    "revoke key": 6,
    "list keys": 10,
    "bad key": 6,
}
EXPECTED = {  # statuses each action may answer without anything being wrong
    "use key": {200, 401},  # 401 once a key was revoked meanwhile
    "pair": {200, 201, 429},  # 429: the pending cap per client address (all are loopback)
    "create key": {201},
    "rotate key": {201, 409},  # 409 when another thread rotated or revoked it first
    "revoke key": {204},
    "list keys": {200},
    "bad key": {401},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(database_url: str, redis_url: str, instance: Path) -> Iterator[str]:
    """``authsvc serve --workers 4`` on a free loopback port, stopped afterwards."""
    port = free_port()
    (instance / "config.py").write_text(
        f"RATELIMIT_STORAGE_OPTIONS = {{'key_prefix': 'authsvc-soak-{secrets.token_hex(4)}'}}\n"
    )
    env = {
        **os.environ,
        "AUTHSVC_DATABASE_URL": database_url,
        "AUTHSVC_RATELIMIT_STORAGE_URI": redis_url,
        "AUTHSVC_INSTANCE_PATH": str(instance),
        "AUTHSVC_CHALLENGE_RATE_LIMIT": "1000000 per minute",
        "JWT_SECRET": secrets.token_urlsafe(24),
    }
    command = [str(BIN / "authsvc"), "serve", "--workers", str(WORKERS), "--port", str(port)]
    log = instance / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                if process.poll() is not None:
                    break
                try:
                    if requests.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            else:
                raise SystemExit(f"the server did not come up:\n{log.read_text()}")
            if process.poll() is not None:
                raise SystemExit(f"the server stopped:\n{log.read_text()}")
            yield base
        finally:
            process.terminate()
            process.wait(timeout=60)


class Soak:
    """The shared state of the client threads: live keys, issued ids, statuses, latencies."""

    def __init__(self, base: str, host: dict[str, str]) -> None:
        self.base = base
        self.host = host
        self.lock = threading.Lock()
        self.keys: dict[str, str] = {}  # key id -> secret, keys believed live
        self.issued: set[str] = set()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.server_errors: list[str] = []

    def call(self, action: str, method: str, path: str, **kwargs: object) -> requests.Response:
        """One timed request, recorded under ``action``."""
        started = time.perf_counter()
        response = requests.request(method, f"{self.base}{path}", timeout=60, **kwargs)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        with self.lock:
            self.statuses[(action, response.status_code)] += 1
            self.latencies[action].append(elapsed)
            if response.status_code >= 500:
                self.server_errors.append(f"{action} {method} {path}: {response.text[:200]}")
        return response

    def remember(self, answer: requests.Response) -> None:
        """Keep a key that an answer issued."""
        body = answer.json()
        key_id, secret = body.get("key_id") or body["id"], body["api_key"]
        with self.lock:
            self.keys[key_id] = secret
            self.issued.add(key_id)

    def some_key(self) -> tuple[str, str] | None:
        with self.lock:
            return random.choice(list(self.keys.items())) if self.keys else None

    def forget(self, key_id: str) -> None:
        with self.lock:
            self.keys.pop(key_id, None)

    def pair(self) -> None:
        created = self.call("pair", "POST", "/v1/auth/challenges", json={"app_name": "Soak"})
        if created.status_code != 201:
            return
        challenge_id = created.json()["challenge_id"]
        listed = self.call("pair", "GET", "/v1/pairing/challenges?limit=1000", headers=self.host)
        code = next(
            (c["code"] for c in listed.json()["data"] if c["challenge_id"] == challenge_id), None
        )
        if code is None:
            return
        body = {"challenge_id": challenge_id, "code": code}
        redeemed = self.call("pair", "POST", "/v1/auth/api_keys", json=body)
        if redeemed.status_code == 201:
            self.remember(redeemed)

    def step(self, action: str) -> None:
        """Run one action of the mix."""
        if action == "pair":
            self.pair()
        elif action == "create key":
            answer = self.call(
                action, "POST", "/v1/api-keys", json={"name": "soak"}, headers=self.host
            )
            if answer.status_code == 201:
                self.remember(answer)
        elif action == "list keys":
            self.call(action, "GET", "/v1/api-keys?limit=20", headers=self.host)
        elif action == "bad key":
            bad = {"Authorization": "Bearer sk-" + "A" * 46}
            self.call(action, "GET", "/v1/auth", headers=bad)
        else:
            picked = self.some_key()
            if picked is None:
                return
            key_id, secret = picked
            if action == "use key":
                bearer = {"Authorization": f"Bearer {secret}"}
                if self.call(action, "GET", "/v1/auth", headers=bearer).status_code == 401:
                    self.forget(key_id)
            elif action == "rotate key":
                grace = {"grace_seconds": random.choice([0, 0, 30])}
                path = f"/v1/api-keys/{key_id}/rotate"
                answer = self.call(action, "POST", path, json=grace, headers=self.host)
                if answer.status_code == 201:
                    self.remember(answer)
                if answer.status_code != 201 or grace["grace_seconds"] == 0:
                    self.forget(key_id)
            elif action == "revoke key":
                self.call(action, "DELETE", f"/v1/api-keys/{key_id}", headers=self.host)
                self.forget(key_id)

    def run_client(self, until: float, seed: int) -> None:
        chooser = random.Random(seed)
        names, weights = list(ACTIONS), list(ACTIONS.values())
        while time.monotonic() < until:
            action = chooser.choices(names, weights)[0]
            try:
                self.step(action)
            except (requests.RequestException, ValueError, KeyError) as error:
                with self.lock:
                    self.errors.append(f"{action}: {error!r}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def stored_key_ids(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        ids = set(connection.scalars(text("SELECT id FROM api_keys")))
    engine.dispose()
    return ids


def report(soak: Soak, elapsed: float, stored: set[str]) -> bool:
    """Print the figures; True when nothing went wrong."""
    everything = [value for values in soak.latencies.values() for value in values]
    total = len(everything)
    print(f"requests: {total} in {elapsed:.1f} s ({total / elapsed:.0f}/s)")
    print(f"{'action':<12} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses")
    for action in ACTIONS:
        values = soak.latencies.get(action, [])
        if not values:
            continue
        statuses = {s: n for (a, s), n in sorted(soak.statuses.items()) if a == action}
        print(
            f"{action:<12} {len(values):>8} {percentile(values, 0.5):>8.1f}"
            f" {percentile(values, 0.95):>8.1f} {percentile(values, 0.99):>8.1f}  {statuses}"
        )
    print(
        f"{'all':<12} {total:>8} {percentile(everything, 0.5):>8.1f}"
        f" {percentile(everything, 0.95):>8.1f} {percentile(everything, 0.99):>8.1f}"
        f"  max {max(everything) * 1000:.0f} ms"
    )
    unexpected = sum(
        n for (action, status), n in soak.statuses.items() if status not in EXPECTED[action]
    )
    lost = soak.issued - stored
    print(f"5xx: {len(soak.server_errors)}; other unexpected statuses: {unexpected}")
    print(f"client errors (timeouts, bad bodies): {len(soak.errors)}")
    print(
        f"keys issued: {len(soak.issued)}; stored: {len(soak.issued & stored)}; lost: {len(lost)}"
    )
    for line in (soak.server_errors + soak.errors)[:10]:
        print("  ", line)
    return not soak.server_errors and not lost and not soak.errors and not unexpected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("AUTHSVC_SOAK_DATABASE_URL"))
    parser.add_argument(
        "--redis", default=os.environ.get("AUTHSVC_SOAK_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    args = parser.parse_args()
    if not args.database or not args.database.startswith("postgresql"):
        raise SystemExit("give a PostgreSQL URL: --database or AUTHSVC_SOAK_DATABASE_URL")
    if not 1 <= args.duration <= 600:
        raise SystemExit("--duration must lie between 1 and 600 seconds")
    with (
        tempfile.TemporaryDirectory() as directory,
        running_server(args.database, args.redis, Path(directory)) as base,
    ):
        token = (Path(directory) / "owner_token").read_text().strip()
        login = requests.post(f"{base}/v1/session", json={"password": token}, timeout=30)
        login.raise_for_status()
        soak = Soak(base, {"Authorization": f"Bearer {login.json()['token']}"})
        print(
            f"soak: {args.clients} clients for {args.duration:.0f} s"
            f" against {base} ({WORKERS} workers)"
        )
        started = time.monotonic()
        until = started + args.duration
        threads = [
            threading.Thread(target=soak.run_client, args=(until, seed))
            for seed in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    ok = report(soak, elapsed, stored_key_ids(args.database))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
