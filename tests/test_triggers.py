"""Changes made by SQL outside authsvc count too, and unknown keys cost no query.

The database's triggers bump the key cache's generation and number every new digest; each
app here stands for a worker with a cache and a digest set of its own, and each SQL statement
runs on an engine of its own, as an operator's ``psql`` or ``sqlite3`` session would.
"""

import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, inspect, text

from authsvc import keycache, keys, tokens, users
from authsvc.digestset import DigestSet
from authsvc.extensions import db
from tests.conftest import bearer
from tests.test_bearer import counting_queries

PREFIX = "sk-"
# Columns whose change decides nothing: a key's last use, and its number.
UNWATCHED = {"last_used_at", "last_used_ip", "serial"}
# Changes to the other tables a decision reads, in an order that makes each possible.
OTHER_CHANGES = [
    "INSERT INTO organizations (id, name, description, created_at)"
    " VALUES ('org_sql', 'by sql', '', CURRENT_TIMESTAMP)",
    "INSERT INTO organization_members (organization_id, user_id) VALUES ('org_sql', :owner)",
    "DELETE FROM organization_members WHERE organization_id = 'org_sql'",
    "UPDATE organizations SET description = 'changed' WHERE id = 'org_sql'",
    "DELETE FROM organizations WHERE id = 'org_sql'",
    "INSERT INTO groups (id, name, permissions, created_at)"
    " VALUES ('grp_sql', 'by sql', '{}', CURRENT_TIMESTAMP)",
    "INSERT INTO group_members (group_id, user_id) VALUES ('grp_sql', :owner)",
    "UPDATE groups SET permissions = '{\"api_keys\": false}' WHERE id = 'grp_sql'",
    "DELETE FROM group_members WHERE group_id = 'grp_sql'",
    "DELETE FROM groups WHERE id = 'grp_sql'",
    "INSERT INTO settings (name, value) VALUES ('by_sql', 'true')",
    "UPDATE settings SET value = 'false' WHERE name = 'by_sql'",
    "DELETE FROM settings WHERE name = 'by_sql'",
    "UPDATE users SET suspended = suspended WHERE id = :owner",
]


@pytest.fixture
def outside(database_url: str) -> Iterator[Engine]:
    """An engine of the operator's own."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def run(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


def counter(engine: Engine, name: str) -> int:
    with engine.connect() as connection:
        value = connection.scalar(text("SELECT value FROM counters WHERE name = :n"), {"n": name})
    return int(value or 0)


def made_key(app: Flask) -> tuple[str, str]:
    """(id, secret) of a new key of the owner's."""
    with app.app_context():
        key, secret = keys.create_key(users.get_owner(), "made", "cli")
        db.session.commit()
        return key.id, secret


def test_a_change_to_any_deciding_column_of_a_key_bumps_the_generation(app, outside):
    """A column added to api_keys without a new trigger fails here."""
    key_id, _ = made_key(app)
    columns = [column["name"] for column in inspect(outside).get_columns("api_keys")]
    for column in columns:
        before = counter(outside, keycache.GENERATION)
        run(outside, f"UPDATE api_keys SET {column} = {column} WHERE id = :id", id=key_id)
        bumped = counter(outside, keycache.GENERATION) > before
        assert bumped == (column not in UNWATCHED), column


def test_a_change_to_the_other_tables_a_decision_reads_bumps_the_generation(app, outside):
    with app.app_context():
        owner = users.get_owner().id
    for statement in OTHER_CHANGES:
        before = counter(outside, keycache.GENERATION)
        run(outside, statement, owner=owner)
        assert counter(outside, keycache.GENERATION) > before, statement


def test_a_revocation_by_sql_is_refused_on_the_next_request(app, outside):
    key_id, secret = made_key(app)
    client = app.test_client()
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200  # cached
    run(
        outside,
        "UPDATE api_keys SET revoked_at = :now WHERE id = :id",
        now=datetime.now(),
        id=key_id,
    )
    answer = client.get("/v1/auth", headers=bearer(secret))
    assert (answer.status_code, answer.json["message"]) == (401, "api key revoked")


def test_unknown_keys_cost_the_counters_read_only(app):
    made_key(app)
    client = app.test_client()
    first = client.get("/v1/auth", headers=bearer(tokens.generate(PREFIX)))
    assert first.status_code == 401  # this one built the worker's digest set
    with counting_queries(app) as statements:
        for _ in range(5):
            answer = client.get("/v1/auth", headers=bearer(tokens.generate(PREFIX)))
            assert answer.json["message"] == "invalid api key"
    assert statements == [keycache.PROBE] * 5


def test_a_key_made_in_another_worker_or_by_sql_is_known_at_once(make_app, outside):
    here, there = make_app(), make_app()
    client = here.test_client()
    assert client.get("/v1/auth", headers=bearer(made_key(here)[1])).status_code == 200
    # Both digest sets are built before the new keys exist.
    for app in (here, there):
        app.test_client().get("/v1/auth", headers=bearer(tokens.generate(PREFIX)))
    _, secret = made_key(there)
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200
    by_sql = tokens.generate(PREFIX)
    with here.app_context():
        owner_id = users.get_owner().id
    run(
        outside,
        "INSERT INTO api_keys (id, name, digest, display, owner_id, enabled, meta, scopes,"
        " created_at, created_via) VALUES ('key_sql', 'by sql', :digest, 'sql', :owner, :yes,"
        " '{}', '[\"api\"]', :now, 'cli')",
        digest=tokens.digest(by_sql),
        owner=owner_id,
        yes=True,
        now=datetime.now(),
    )
    assert client.get("/v1/auth", headers=bearer(by_sql)).status_code == 200


def test_a_digest_changed_by_sql_is_known_at_once(app, outside):
    """The new digest is numbered like a new key, though its row is not new."""
    key_id, _ = made_key(app)
    client = app.test_client()
    client.get("/v1/auth", headers=bearer(tokens.generate(PREFIX)))  # the digest set is built
    replaced = tokens.generate(PREFIX)
    run(
        outside,
        "UPDATE api_keys SET digest = :digest WHERE id = :id",
        digest=tokens.digest(replaced),
        id=key_id,
    )
    assert client.get("/v1/auth", headers=bearer(replaced)).status_code == 200


def test_the_digest_set_never_misses_a_digest_it_holds():
    digests = DigestSet(capacity=20_000)
    held = [tokens.digest(secrets.token_hex(16)) for _ in range(20_000)]
    for digest in held:
        digests.add(digest)
    assert all(digest in digests for digest in held)
    others = [tokens.digest(secrets.token_hex(16)) for _ in range(20_000)]
    assert sum(digest in digests for digest in others) < 20_000 * 0.03  # about 1 %
    assert digests.capacity >= 20_000 and not digests.full
