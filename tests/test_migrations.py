"""Data migrations: what existing rows become when the schema grows."""

import json
from collections.abc import Iterator

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from authsvc import create_app
from authsvc.extensions import db
from tests import conftest

KEY_ROW = (
    "INSERT INTO api_keys (id, name, digest, display, owner_id, enabled, meta, created_at,"
    " created_via) VALUES (:id, 'k', :id, 'sk-…', 'usr_1', true, '{}', '2026-01-01', :via)"
)


@pytest.fixture(params=conftest.BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database of the test's own: the session's migrated one is never touched."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    assert conftest.POSTGRES_URL is not None
    shared = make_url(conftest.POSTGRES_URL)
    # Named after the shared database, so suites run against different ones never collide.
    name = f"{shared.database}_migration_test"
    drop = text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server = create_engine(shared, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(drop)
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield shared.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(drop)
        server.dispose()


def as_json(value):
    """A JSON column's value as stored: SQLite answers the text, PostgreSQL the parsed value."""
    return json.loads(value) if isinstance(value, str) else value


def test_existing_keys_get_scopes_and_pairing_keys_only_api(empty_database_url):
    app = create_app(conftest.base_config(empty_database_url))
    with app.app_context():
        upgrade(revision="0001")
        db.session.execute(
            text(
                "INSERT INTO users (id, username, role, is_owner, suspended, created_at)"
                " VALUES ('usr_1', 'owner', 'admin', true, false, '2026-01-01')"
            )
        )
        for key_id, via in [("key_p", "pairing"), ("key_m", "manual"), ("key_a", "admin")]:
            db.session.execute(text(KEY_ROW), {"id": key_id, "via": via})
        db.session.commit()
        upgrade()
        rows = db.session.execute(text("SELECT id, scopes FROM api_keys")).all()
        db.session.commit()
        db.engine.dispose()
    assert {key_id: as_json(scopes) for key_id, scopes in rows} == {
        "key_p": ["api"],
        "key_m": ["api", "manage"],
        "key_a": ["api", "manage"],
    }


def index_names(table: str) -> set[str]:
    return {index["name"] for index in inspect(db.engine).get_indexes(table)}


def test_0003_adds_the_generation_counter_once_and_downgrade_removes_it(tmp_path):
    app = create_app(conftest.base_config(f"sqlite:///{tmp_path / 'old.sqlite3'}"))
    generation = text("SELECT value FROM counters WHERE name = 'generation'")
    with app.app_context():
        upgrade(revision="0002")
        db.session.execute(text("INSERT INTO counters (name, value) VALUES ('generation', 7)"))
        db.session.commit()
        upgrade(revision="0003")
        kept = db.session.scalars(generation).all()
        db.session.commit()
        downgrade(revision="0002")
        after_downgrade = db.session.scalars(generation).all(), index_names("api_keys")
        db.session.commit()
        upgrade(revision="0003")
        fresh = db.session.scalars(generation).all(), index_names("api_keys")
        db.engine.dispose()
    assert kept == [7]
    assert after_downgrade == ([], {"ix_api_keys_owner_id"})
    assert fresh == ([0], {"ix_api_keys_owner_id_created_at"})


def test_0005_makes_existing_challenges_code_challenges_and_downgrades(empty_database_url):
    app = create_app(conftest.base_config(empty_database_url))
    kinds = text("SELECT id, kind FROM challenges")
    with app.app_context():
        upgrade(revision="0003")
        db.session.execute(
            text(
                "INSERT INTO challenges (id, app_name, code, state, failed_attempts,"
                " max_attempts, created_at, expires_at) VALUES ('ch_1', 'App', '0482',"
                " 'pending', 0, 5, '2026-01-01', '2026-01-01 00:05:00')"
            )
        )
        db.session.commit()
        upgrade(revision="0005")
        upgraded = db.session.execute(kinds).all()
        db.session.commit()
        downgrade(revision="0003")
        columns = {column["name"] for column in inspect(db.engine).get_columns("challenges")}
        db.engine.dispose()
    assert [tuple(row) for row in upgraded] == [("ch_1", "code")]
    assert "kind" not in columns and "device_code_digest" not in columns
