"""The server's life: a cold start on an empty database with two workers, and a clean stop."""

from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from bench.http import reset_schema
from tests.test_server import BIN, all_at_once, host_headers, run_server

CONCURRENT = 16


@pytest.fixture(params=["empty", "migrated"])
def start_database(request, database_url: str, make_app, tmp_path: Path) -> str:
    """The session's migrated database, or an empty one: a new SQLite file, or the PostgreSQL
    test schema dropped. ``authsvc serve`` migrates it; ``make_app`` empties the tables after."""
    make_app()
    if request.param == "migrated":
        return database_url
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    reset_schema(database_url)
    return database_url


def serve_command(port: int) -> list[str]:
    """``authsvc serve`` with two workers: it migrates and bootstraps, then forks."""
    return [str(BIN / "authsvc"), "serve", "--workers", "2", "--port", str(port)]


def first_contact(base: str, index: int) -> requests.Response:
    """What apps and the host send at once: health, pairing, the host's login and lists."""
    if index % 4 == 0:
        return requests.get(f"{base}/health", timeout=60)
    if index % 4 == 1:
        return requests.post(
            f"{base}/v1/auth/challenges", json={"app_name": f"App {index}"}, timeout=60
        )
    path = "/v1/pairing/challenges" if index % 4 == 2 else "/v1/api-keys"
    return requests.get(f"{base}{path}", headers=host_headers(base), timeout=60)


def transactions_left_open(database_url: str) -> int:
    """Connections to this PostgreSQL database sitting idle inside a transaction."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        count = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%'"
            )
        )
    engine.dispose()
    return int(count or 0)


def test_cold_start_with_two_workers_answers_everything(start_database, tmp_path):
    with run_server(start_database, tmp_path, serve_command) as base:
        responses = all_at_once(CONCURRENT, lambda i: first_contact(base, i))
        assert all(r.status_code < 500 for r in responses), [r.text for r in responses]
        assert {r.status_code for r in responses} <= {200, 201, 429}, [r.text for r in responses]
        if start_database.startswith("postgresql"):
            assert transactions_left_open(start_database) == 0
    (log,) = tmp_path.glob("server-*.log")
    output = log.read_text()
    assert "Traceback" not in output, output
    assert "Shutting down: Master" in output, output
    assert "rate limits are counted in each of the 2 workers on its own" in output
    # Threaded workers by default (gthread, answering its own refusals in the JSON shape).
    assert "Booting worker" in output and "authsvc.worker.JsonErrorsWorker" in output
