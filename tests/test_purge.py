"""The purge: what goes, what stays, the command, and the server's periodic run."""

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import create_engine, select, text

from authsvc import purge
from authsvc.cli import main
from authsvc.clock import utcnow
from authsvc.extensions import db
from authsvc.models import AuditEvent, AuthSession, Challenge, User, new_id

NOW = datetime(2030, 1, 1, 12, 0, 0)


def add(app: Flask, row: Any) -> Any:
    """Commit one row; return its id."""
    with app.app_context():
        db.session.add(row)
        db.session.commit()
        return row.id


def challenge(expires_at: datetime) -> Challenge:
    return Challenge(
        id=new_id("chl"),
        app_name="x",
        code="1234",
        max_attempts=5,
        created_at=expires_at - timedelta(minutes=5),
        expires_at=expires_at,
    )


def event(created_at: datetime) -> AuditEvent:
    return AuditEvent(type="test.event", created_at=created_at)


def auth_session(user_id: str, expires_at: datetime, ended_at: datetime | None = None) -> Any:
    return AuthSession(user_id=user_id, expires_at=expires_at, ended_at=ended_at)


def remaining(app: Flask, model: Any) -> set[Any]:
    with app.app_context():
        return set(db.session.scalars(select(model.id)))


def run_purge(app: Flask) -> dict[str, int]:
    with app.app_context():
        return purge.purge()


def test_purge_removes_what_it_should_and_nothing_else(app):
    with freeze_time(NOW):
        fresh = add(app, challenge(NOW + timedelta(minutes=5)))
        in_grace = add(app, challenge(NOW - timedelta(minutes=59)))
        add(app, challenge(NOW - timedelta(minutes=61)))
        recent_event = add(app, event(NOW - timedelta(days=364)))
        add(app, event(NOW - timedelta(days=366)))
        user = add(app, User(username="someone"))
        tomorrow = NOW + timedelta(days=1)
        live = add(app, auth_session(user, tomorrow))
        just_expired = add(app, auth_session(user, NOW - timedelta(hours=23)))
        just_ended = add(app, auth_session(user, tomorrow, NOW - timedelta(hours=23)))
        add(app, auth_session(user, NOW - timedelta(hours=25)))
        add(app, auth_session(user, tomorrow, NOW - timedelta(hours=25)))

        assert run_purge(app) == {"challenges": 1, "audit_events": 1, "key_usage": 0, "sessions": 2}
        assert remaining(app, Challenge) == {fresh, in_grace}
        assert remaining(app, AuditEvent) == {recent_event}
        assert remaining(app, AuthSession) == {live, just_expired, just_ended}
        assert remaining(app, User) == {user}
        assert run_purge(app) == {"challenges": 0, "audit_events": 0, "key_usage": 0, "sessions": 0}


def test_expired_challenge_in_its_grace_hour_still_answers_410(app, anon):
    with freeze_time(NOW) as frozen:
        created = anon.post("/v1/auth/challenges", json={"app_name": "x"})
        frozen.tick(timedelta(seconds=app.config["AUTHSVC_CHALLENGE_TTL"], minutes=59))
        assert run_purge(app)["challenges"] == 0
        exchange = {"challenge_id": created.json["challenge_id"], "code": "0000"}
        late = anon.post("/v1/auth/api_keys", json=exchange)
    assert (late.status_code, late.json["message"]) == (410, "challenge expired")


def test_audit_retention_is_configurable(make_app):
    app = make_app(AUTHSVC_AUDIT_RETENTION_DAYS=30)
    with freeze_time(NOW):
        kept = add(app, event(NOW - timedelta(days=29)))
        add(app, event(NOW - timedelta(days=31)))
        assert run_purge(app)["audit_events"] == 1
    assert remaining(app, AuditEvent) == {kept}


@pytest.mark.parametrize("name", ["AUTHSVC_AUDIT_RETENTION_DAYS", "AUTHSVC_PURGE_INTERVAL"])
@pytest.mark.parametrize("value", [0, -1, True, "365"])
def test_settings_must_be_positive_integers(make_app, name, value):
    with pytest.raises(RuntimeError, match=f"{name} must be a positive integer"):
        make_app(**{name: value})


@pytest.fixture
def cli(monkeypatch, database_url):
    monkeypatch.setenv("AUTHSVC_DATABASE_URL", database_url)
    monkeypatch.setenv("JWT_SECRET", "cli-test-secret-0123456789")
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def test_purge_command(app, cli):
    now = utcnow()
    add(app, challenge(now - timedelta(days=1)))
    add(app, event(now - timedelta(days=400)))
    kept = add(app, event(now))
    result = cli("purge")
    assert result.exit_code == 0, result.output
    assert result.output == "deleted: challenges 1, audit_events 1, key_usage 0, sessions 0\n"
    again = cli("purge", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == {
        "challenges": 0,
        "audit_events": 0,
        "key_usage": 0,
        "sessions": 0,
    }
    assert remaining(app, AuditEvent) == {kept}


def test_server_purges_once_per_interval(make_app):
    app = make_app(AUTHSVC_PURGE_INTERVAL=60)
    client = app.test_client()
    with freeze_time(NOW) as frozen:
        add(app, challenge(NOW - timedelta(hours=2)))
        assert client.get("/").status_code == 200
        assert remaining(app, Challenge) == set()  # the first request of a process purges

        waiting = add(app, challenge(NOW - timedelta(hours=2)))
        frozen.tick(timedelta(seconds=59))
        assert client.get("/").status_code == 200
        assert remaining(app, Challenge) == {waiting}

        frozen.tick(timedelta(seconds=1))
        assert client.get("/").status_code == 200
        assert remaining(app, Challenge) == set()


@contextmanager
def purge_blocked(database_url: str) -> Iterator[None]:
    """Another connection holds the lock the purge's first delete needs."""
    if database_url.startswith("sqlite"):
        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.close()
        return
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("LOCK TABLE challenges IN ACCESS EXCLUSIVE MODE"))
            yield
            connection.rollback()
    finally:
        engine.dispose()


def test_database_error_in_the_periodic_purge_leaves_the_response_alone(
    make_app, database_url, caplog
):
    # Give up on the lock quickly, so the purge fails instead of waiting for it.
    if database_url.startswith("sqlite"):
        options = {"connect_args": {"timeout": 0.1}}
    else:
        options = {"connect_args": {"options": "-c lock_timeout=100"}}
    app = make_app(AUTHSVC_PURGE_INTERVAL=60, SQLALCHEMY_ENGINE_OPTIONS=options)
    client = app.test_client()
    with freeze_time(NOW) as frozen:
        normal = client.get("/")
        stale = add(app, challenge(NOW - timedelta(hours=2)))
        frozen.tick(timedelta(minutes=1))
        with purge_blocked(database_url), caplog.at_level(logging.ERROR, "authsvc.purge"):
            blocked = client.get("/")
        assert (blocked.status_code, blocked.json) == (normal.status_code, normal.json)
        assert "periodic purge failed" in caplog.text
        assert remaining(app, Challenge) == {stale}

        frozen.tick(timedelta(minutes=1))
        assert client.get("/").status_code == 200
        assert remaining(app, Challenge) == set()  # the next interval's purge works
