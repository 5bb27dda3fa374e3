"""How long a revocation takes to reach every worker with ``AUTHSVC_INVALIDATION=notify``:
``python -m bench.invalidation --database URL`` (``make bench``, PostgreSQL part).

``authsvc serve --workers N`` in notify mode on PostgreSQL (THE DATABASE IS WIPED), loaded by
wrk on another valid key the whole time. Each round makes a key and has ``--connections``
keep-alive connections use it (each stays with the worker that accepted it) until every one
was accepted; then it revokes the key by SQL, takes the commit's return as t0, and lets every
connection send until it is refused. The round's delay is the latest send time of a request
still accepted, minus t0 (0 when none was). Prints percentiles over ``--rounds`` revocations.
In the default mode (``read``) that delay is 0 by construction: every request reads the
counters after the commit.
"""

import argparse
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime

import requests
from flask import Flask
from sqlalchemy import create_engine, text

from authsvc import keys, users
from authsvc.extensions import db

from .http import prepared, running_server
from .output import say
from .wrk import find_wrk

LOAD_CONNECTIONS = 4


def new_key(app: Flask) -> tuple[str, str]:
    with app.app_context():
        key, secret = keys.create_key(users.get_owner(), "revoked", "cli")
        db.session.commit()
        return key.id, secret


def one_round(
    base: str, sessions: list[requests.Session], secret: str, revoke: Callable[[], None]
) -> float:
    """Seconds from the revocation's commit to the last request a worker still accepted."""
    headers = {"Authorization": f"Bearer {secret}"}
    accepted = [threading.Event() for _ in sessions]
    revoked = threading.Event()
    started_at = [0.0]
    late: list[float] = []

    def use(index: int, session: requests.Session) -> None:
        while True:
            sent = time.monotonic()
            status = session.get(f"{base}/v1/auth", headers=headers, timeout=30).status_code
            if status == 200:
                accepted[index].set()
                if revoked.is_set() and sent > started_at[0]:
                    late.append(sent - started_at[0])
            elif revoked.is_set() and sent > started_at[0]:
                return

    threads = [threading.Thread(target=use, args=item) for item in enumerate(sessions)]
    for thread in threads:
        thread.start()
    for event in accepted:
        event.wait(30)
    revoke()
    started_at[0] = time.monotonic()
    revoked.set()
    for thread in threads:
        thread.join()
    return max(late, default=0.0)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL; IT IS WIPED")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    wrk = find_wrk()
    with prepared(args.database, None) as instance:
        instance.environment["AUTHSVC_INVALIDATION"] = "notify"
        outside = create_engine(args.database)
        with running_server(instance.folder, instance.environment, args.workers) as (base, _):
            load = subprocess.Popen(
                [
                    wrk,
                    "-t1",
                    f"-c{LOAD_CONNECTIONS}",
                    "-d3600s",
                    f"{base}/v1/auth",
                    "-H",
                    f"Authorization: Bearer {instance.fixtures['valid']}",
                ],
                stdout=subprocess.DEVNULL,
            )
            sessions = [requests.Session() for _ in range(args.connections)]
            delays = []
            try:
                for number in range(args.rounds):
                    key_id, secret = new_key(instance.app)

                    def revoke(key_id: str = key_id) -> None:
                        with outside.begin() as connection:
                            connection.execute(
                                text("UPDATE api_keys SET revoked_at = :now WHERE id = :id"),
                                {"now": datetime.now(), "id": key_id},
                            )

                    delays.append(one_round(base, sessions, secret, revoke))
                    if (number + 1) % 100 == 0:
                        say(f"{number + 1} revocations")
            finally:
                load.terminate()
                load.wait()
        outside.dispose()
    ordered = sorted(delay * 1000 for delay in delays)
    print(
        f"notify mode, {args.workers} workers, {args.connections} connections, wrk -c"
        f"{LOAD_CONNECTIONS} alongside: revocation to the last worker refusing, over"
        f" {len(ordered)} revocations: p50 {percentile(ordered, 0.5):.2f} ms,"
        f" p99 {percentile(ordered, 0.99):.2f} ms, p99.9 {percentile(ordered, 0.999):.2f} ms,"
        f" max {ordered[-1]:.2f} ms; accepted after the commit in"
        f" {sum(delay > 0 for delay in ordered)} of {len(ordered)}"
    )


if __name__ == "__main__":
    main()
