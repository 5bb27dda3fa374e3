"""Data migrations: what existing rows become when the schema grows."""

from flask_migrate import upgrade
from sqlalchemy import text

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
