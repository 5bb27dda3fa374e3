"""AUTHSVC_INVALIDATION=notify: workers hear the key counters move instead of reading them.

Against 2 gunicorn workers on PostgreSQL; changes are made by SQL on a connection of the
test's own, so that only the database's triggers and NOTIFY can tell the workers.
"""

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, create_engine, text

from authsvc import create_app, invalidation, keys, users
from authsvc.extensions import db
from tests.conftest import base_config, bearer
from tests.test_server import run_server

ROUNDS = 24  # fresh connections per check, spread over both workers
POLLS = 500  # checks before a change counts as never heard


def answers(url: str, headers: dict[str, str]) -> set[int]:
    return {requests.get(url, headers=headers, timeout=30).status_code for _ in range(ROUNDS)}


def listeners(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": invalidation.APPLICATION_NAME},
            )
        )


def made_key(app: Flask) -> tuple[str, dict[str, str]]:
    with app.app_context():
        key, secret = keys.create_key(users.get_owner(), "heard", "cli")
        db.session.commit()
        return key.id, bearer(secret)


@pytest.mark.parametrize(
    ("value", "message"),
    [("notify", "needs PostgreSQL"), ("sometimes", "must be read or notify")],
)
def test_notify_needs_postgresql_and_the_mode_a_known_one(tmp_path, value, message):
    url = f"sqlite:///{tmp_path / 'authsvc.sqlite3'}"
    with pytest.raises(RuntimeError, match=message):
        create_app(base_config(url, AUTHSVC_INVALIDATION=value))


def test_every_worker_hears_a_revocation_and_knows_a_new_key_at_once(
    make_app: Any, database_url: str, tmp_path: Path
):
    if not database_url.startswith("postgresql"):
        pytest.skip("notify mode is PostgreSQL's LISTEN/NOTIFY")
    app = make_app()
    key_id, key = made_key(app)
    outside = create_engine(database_url)
    try:
        with run_server(database_url, tmp_path, AUTHSVC_INVALIDATION="notify") as base:
            whoami = f"{base}/v1/auth"
            assert answers(whoami, key) == {200}  # cached in both workers
            for _ in range(POLLS):  # each worker's listener connects after its first request
                if listeners(outside) == 2:
                    break
                time.sleep(0.01)
            assert listeners(outside) == 2
            with outside.begin() as connection:
                connection.execute(
                    text("UPDATE api_keys SET revoked_at = :now WHERE id = :id"),
                    {"now": datetime.now(), "id": key_id},
                )
            for _ in range(POLLS):
                if answers(whoami, key) == {401}:
                    break
            else:
                pytest.fail("a worker never heard of the revocation")
            _, new = made_key(app)
            assert answers(whoami, new) == {200}  # a new key: no wait at all
    finally:
        outside.dispose()
