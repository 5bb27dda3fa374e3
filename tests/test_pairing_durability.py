"""What a pairing commits, how durably, and the SQLite writers' turn (authsvc/database.py)."""

import fcntl
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from authsvc import database
from authsvc.extensions import db
from tests.conftest import pair


def durability(dbapi_connection: Any, dialect: str) -> str:
    """Whether the connection's commits are synced: SQLite's synchronous, PostgreSQL's
    synchronous_commit, as the connection sees it now."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SHOW synchronous_commit" if dialect == "postgresql" else "PRAGMA synchronous")
    value = str(cursor.fetchone()[0])
    cursor.close()
    return {"0": "off", "1": "normal", "2": "full", "on": "full"}.get(value, value)


@pytest.fixture
def commits(app: Flask) -> Iterator[list[str]]:
    """The durability of each commit the app makes, in order."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def before_commit(connection: Any) -> None:
        seen.append(durability(connection.connection.dbapi_connection, engine.dialect.name))

    event.listen(engine, "commit", before_commit)
    yield seen
    event.remove(engine, "commit", before_commit)


def test_only_the_challenge_is_committed_without_a_sync(app, client, commits):
    created = client.post("/v1/auth/challenges", json={"app_name": "Durable"})
    assert created.status_code == 201
    relaxed = "off" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else "normal"
    assert commits == [relaxed]
    commits.clear()
    pair(client, "Durable")  # the challenge again, then the key with its audit rows
    assert commits[0] == relaxed
    assert commits[1:] and set(commits[1:]) == {"full"}


def test_a_connection_syncs_again_after_a_challenge(app, client):
    assert client.post("/v1/auth/challenges", json={"app_name": "Durable"}).status_code == 201
    with app.app_context():
        connection = db.engine.raw_connection()
        try:
            assert durability(connection.dbapi_connection, db.engine.dialect.name) == "full"
        finally:
            connection.close()


def sqlite_path(app: Flask) -> str:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite's writers only")
        return os.path.abspath(str(db.engine.url.database))


def test_the_writers_turn_is_given_back_after_each_transaction(app, client):
    turn = database.writer_turn(sqlite_path(app))
    pair(client, "Turns")
    unknown = {"challenge_id": "unknown", "code": "0000"}
    assert client.post("/v1/auth/api_keys", json=unknown).status_code == 404  # rolled back
    assert not turn.threads.locked()
    other = os.open(turn.path, os.O_RDWR)
    try:  # another process's writer could take it now
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)


def test_a_writer_goes_on_when_the_turn_is_held_too_long(app, client):
    turn = database.writer_turn(sqlite_path(app))
    client.get("/health")
    holder = os.open(turn.path, os.O_RDWR | os.O_CREAT)
    try:  # held elsewhere, and never given back: the writer waits on SQLite's lock instead
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert client.post("/v1/auth/challenges", json={"app_name": "Late"}).status_code == 201
    finally:
        os.close(holder)
    assert not turn.threads.locked()
