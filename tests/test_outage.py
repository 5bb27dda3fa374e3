"""Database failures answer 503 in the error shape within a bounded time, and service resumes.

The bounds are client timeouts and attempt counts, not measured durations: a call that hangs
fails with a timeout; nothing here times how fast an answer came.
"""

import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask_migrate import upgrade
from sqlalchemy import event
from sqlalchemy.engine import make_url

from authsvc import create_app
from authsvc.database import CONNECT_TIMEOUT
from authsvc.extensions import db
from tests import conftest
from tests.conftest import bearer, host_client
from tests.relay import Relay
from tests.test_server import all_at_once, host_headers, run_server

# Seconds for a 503 while PostgreSQL cannot be reached: with the default sslmode=prefer psycopg
# makes two attempts (TLS, then plain), each bounded by the connect timeout.
OUTAGE_BOUND = 2 * CONNECT_TIMEOUT + 5
RECOVERY_ATTEMPTS = 40  # × (the calls + 0.5 s): every call succeeds again once it can
WRITERS = 16  # concurrent writes, more than the 2 workers' 4 threads each
GENEROUS_PAIRING = {
    "AUTHSVC_CHALLENGE_RATE_LIMIT": "1000 per minute",
    "AUTHSVC_MAX_PENDING_PER_CLIENT": "1000",
}


def calls(
    base: str, headers: dict[str, str], secret: str
) -> dict[str, Callable[[], requests.Response]]:
    """One call of each kind: host management, pairing, key use; each gives up (and so fails
    its test) after ``OUTAGE_BOUND`` seconds without an answer."""
    return {
        "list keys": lambda: requests.get(
            f"{base}/v1/api-keys", headers=headers, timeout=OUTAGE_BOUND
        ),
        "pair": lambda: requests.post(
            f"{base}/v1/auth/challenges", json={"app_name": "Outage"}, timeout=OUTAGE_BOUND
        ),
        "use key": lambda: requests.get(
            f"{base}/v1/auth", headers=bearer(secret), timeout=OUTAGE_BOUND
        ),
    }


def assert_unavailable(name: str, call: Callable[[], requests.Response]) -> None:
    """The call answers 503 with Retry-After, in the error shape (before its timeout)."""
    response = call()
    assert response.status_code == 503, (name, response.text)
    assert response.json()["code"] == "service_unavailable", (name, response.text)
    assert response.headers["Anytype-Version"] == "2025-11-08"
    assert int(response.headers["Retry-After"]) >= 1


def await_recovery(named: dict[str, Callable[[], requests.Response]]) -> None:
    """Every call succeeds again within a bounded number of rounds."""
    for _ in range(RECOVERY_ATTEMPTS):
        statuses = {name: call().status_code for name, call in named.items()}
        if all(status < 300 for status in statuses.values()):
            return
        assert all(status in {503, 200, 201} for status in statuses.values()), statuses
        time.sleep(0.5)
    pytest.fail(f"service did not resume: {statuses}")


@pytest.mark.parametrize("outage", ["cut", "stall"])
def test_postgresql_outage_answers_503_then_recovers(database_url, make_app, tmp_path, outage):
    if not database_url.startswith("postgresql"):
        pytest.skip("the relay stands between the app and PostgreSQL")
    make_app()  # empties the tables afterwards
    url = make_url(database_url)
    with Relay((url.host or "127.0.0.1", url.port or 5432)) as relay:
        relayed = url.set(port=relay.port).render_as_string(hide_password=False)
        with run_server(relayed, tmp_path) as base:
            headers = host_headers(base)
            created = requests.post(f"{base}/v1/api-keys", json={"name": "o"}, headers=headers)
            assert created.status_code == 201, created.text
            named = calls(base, headers, created.json()["api_key"])
            assert all(call().status_code < 300 for call in named.values())

            getattr(relay, outage)()
            for name, call in named.items():
                assert_unavailable(name, call)
            health = requests.get(f"{base}/health", timeout=60)
            assert (health.status_code, health.json()["database"]) == (503, "unreachable")

            relay.restore()
            await_recovery(named)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """A migrated SQLite database of this test's own, in a folder of its own, closed again."""
    path = tmp_path / "database" / "own.sqlite3"
    path.parent.mkdir()
    app = create_app(conftest.base_config(f"sqlite:///{path}"))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return path


def assert_503(response) -> None:
    assert response.status_code == 503, response.json
    assert response.json["code"] == "service_unavailable"
    assert response.json["message"] == "database unreachable"
    assert int(response.headers["Retry-After"]) >= 1


def test_sqlite_locked_beyond_the_busy_timeout(sqlite_file):
    options = {"connect_args": {"timeout": 0.2}}
    app = create_app(
        conftest.base_config(f"sqlite:///{sqlite_file}", SQLALCHEMY_ENGINE_OPTIONS=options)
    )
    client = host_client(app)
    holder = sqlite3.connect(sqlite_file)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        assert_503(client.post("/v1/auth/challenges", json={"app_name": "Locked"}))
        assert_503(client.post("/v1/api-keys", json={"name": "locked"}))
    finally:
        holder.rollback()
        holder.close()
    assert client.post("/v1/auth/challenges", json={"app_name": "Free"}).status_code == 201
    with app.app_context():
        db.engine.dispose()


def test_sqlite_read_only(sqlite_file):
    app = create_app(conftest.base_config(f"sqlite:///file:{sqlite_file}?mode=ro&uri=true"))
    try:
        assert_503(app.test_client().post("/v1/auth/challenges", json={"app_name": "RO"}))
    finally:
        with app.app_context():
            db.engine.dispose()


def test_sqlite_disk_full(sqlite_file):
    app = create_app(conftest.base_config(f"sqlite:///{sqlite_file}"))
    client = host_client(app)

    def no_room_to_grow(connection, _record) -> None:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages + 2}")

    with app.app_context():
        event.listen(db.engine, "connect", no_room_to_grow)
        db.engine.dispose()  # the login's pooled connection has no cap yet
    body = {"name": "big", "meta": {"pad": "x" * 4000}}
    statuses = [client.post("/v1/api-keys", json=body).status_code for _ in range(20)]
    with app.app_context():
        db.engine.dispose()
    assert 503 in statuses, statuses
    assert set(statuses) <= {201, 503}, statuses


def test_an_outage_between_the_answer_and_the_teardown_keeps_the_answer(make_app, database_url):
    """PostgreSQL goes away after a request's last query, before its session is closed: the
    rollback then fails on the lost connection, which loses nothing (the server rolls back by
    itself), and the answer made stands, in the JSON shape with the version header."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the relay stands between the app and PostgreSQL")
    make_app()  # empties the tables afterwards
    url = make_url(database_url)
    with Relay((url.host or "127.0.0.1", url.port or 5432)) as relay:
        relayed = url.set(port=relay.port).render_as_string(hide_password=False)
        app = create_app(conftest.base_config(relayed))
        outage = threading.Event()

        @app.after_request
        def cut_when_asked(response):
            if outage.is_set():
                relay.cut()
            return response

        try:
            client = host_client(app)
            outage.set()
            listed = client.get("/v1/api-keys")
            assert listed.status_code == 200, listed.text
            assert listed.json["data"] == []
            assert listed.headers["Anytype-Version"] == "2025-11-08"
            outage.clear()
            relay.restore()
            assert client.get("/v1/api-keys").status_code == 200
        finally:
            with app.app_context():
                db.engine.dispose()


def set_immutable(paths: list[Path], on: bool) -> None:
    """``chattr +i``/``-i``: even root may then not write, create or delete (file modes do not
    stop root, who runs the tests). The -shm file stays writable: it is mapped in memory."""
    command = ["chattr", "+i" if on else "-i", *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make files immutable here: {done.stderr.strip()}")


def test_sqlite_writes_resume_by_themselves_after_a_read_only_spell(sqlite_file, tmp_path):
    """The server starts while its database and folder are read-only, so its workers open
    connections that cannot write; then they turn writable under the running server: writes
    answer 503 meanwhile (never 500), then all succeed, with no restart."""
    if shutil.which("chattr") is None or os.geteuid() != 0:
        pytest.skip("chattr and root are needed to make a file read-only for root")
    holder = sqlite3.connect(sqlite_file)  # keeps the -wal and -shm files in place
    holder.execute("SELECT count(*) FROM challenges").fetchone()
    frozen = [sqlite_file, sqlite_file.with_name(f"{sqlite_file.name}-wal"), sqlite_file.parent]
    set_immutable(frozen, True)
    try:
        with run_server(f"sqlite:///{sqlite_file}", tmp_path, **GENEROUS_PAIRING) as base:

            def write(_: int = 0) -> requests.Response:
                body = {"app_name": "Read-only spell"}
                return requests.post(f"{base}/v1/auth/challenges", json=body, timeout=60)

            during = [r.status_code for r in all_at_once(WRITERS, write)]
            set_immutable(frozen, False)
            after = [r.status_code for r in all_at_once(WRITERS, write)]
            after += [write().status_code for _ in range(WRITERS)]
    finally:
        set_immutable(frozen, False)
        holder.close()
    assert set(during) == {503}, during
    assert set(after) == {201}, after
