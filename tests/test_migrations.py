"""Data migrations: what existing rows become when the schema grows."""

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from authsvc import create_app
from authsvc.extensions import db
from tests import conftest

KEY_ROW = (
    "INSERT INTO api_keys (id, name, digest, display, owner_id, enabled, meta, created_at,"
    " created_via) VALUES (:id, 'k', :id, 'sk-…', 'usr_1', true, '{}', '2026-01-01', :via)"
)


def test_existing_keys_get_scopes_and_pairing_keys_only_api(tmp_path):
    app = create_app(conftest.base_config(f"sqlite:///{tmp_path / 'old.sqlite3'}"))
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
        scopes = dict(db.session.execute(text("SELECT id, scopes FROM api_keys")).all())
        db.engine.dispose()
    assert scopes == {
        "key_p": '["api"]',
        "key_m": '["api", "manage"]',
        "key_a": '["api", "manage"]',
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
