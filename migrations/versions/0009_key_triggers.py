"""key triggers: the database itself counts every change that decides on a key, and numbers keys

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:00:00

Two counters, kept by triggers so that a change made by SQL outside authsvc (an operator's
``UPDATE api_keys SET revoked_at = ...``) is seen like one made through it:
- ``generation``, bumped by every change to a row a key's decision reads;
- ``keys``, bumped by every new digest, whose value the key's ``serial`` takes: each worker's
  set of all digests reads only the keys numbered after the last it saw.

Recording a key's use (``last_used_at``, ``last_used_ip``) and numbering it (``serial``) decide
nothing. A migration that adds a column to ``api_keys`` must add it to the update trigger
(tests/test_triggers.py fails until it does); on SQLite a batch ``ALTER`` of a watched table
recreates it without its triggers, so such a migration must create them again.

On PostgreSQL a third trigger NOTIFYs each committed counter value, for workers that listen
instead of reading the counters on every request (``AUTHSVC_INVALIDATION=notify``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Tables whose new rows change no decision already made (a new key, a new user).
INSERTS_DECIDE_NOTHING = {"api_keys", "users"}
WATCHED = (
    "api_keys",
    "users",
    "groups",
    "group_members",
    "organizations",
    "organization_members",
    "settings",
)
UNWATCHED_KEY_COLUMNS = {"last_used_at", "last_used_ip", "serial"}
CHANNEL = "authsvc_counters"  # authsvc.invalidation.CHANNEL, fixed here as migrations are
BUMP = "UPDATE counters SET value = value + 1 WHERE name = 'generation'"


def events(table: str) -> list[tuple[str, str]]:
    """(name suffix, trigger event) of the changes to ``table`` that bump the generation."""
    if table == "api_keys":
        columns = [
            column["name"]
            for column in sa.inspect(op.get_bind()).get_columns("api_keys")
            if column["name"] not in UNWATCHED_KEY_COLUMNS
        ]
        update = f"UPDATE OF {', '.join(columns)}"
    else:
        update = "UPDATE"
    found = [("update", update), ("delete", "DELETE")]
    if table not in INSERTS_DECIDE_NOTHING:
        found.append(("insert", "INSERT"))
    return found


def upgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("serial", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_api_keys_serial", ["serial"], unique=False)
    op.execute(
        "UPDATE api_keys SET serial = numbered.n FROM (SELECT id, row_number() OVER"
        " (ORDER BY created_at, id) AS n FROM api_keys) AS numbered"
        " WHERE api_keys.id = numbered.id"
    )
    op.execute("DELETE FROM counters WHERE name = 'keys'")
    op.execute(
        "INSERT INTO counters (name, value) SELECT 'keys', COALESCE(MAX(serial), 0) FROM api_keys"
    )
    if op.get_bind().dialect.name == "postgresql":
        create_postgresql_triggers()
    else:
        create_sqlite_triggers()


def create_sqlite_triggers():
    for table in WATCHED:
        for suffix, event in events(table):
            op.execute(
                f"CREATE TRIGGER authsvc_generation_{table}_{suffix} AFTER {event} ON {table}"
                f" BEGIN {BUMP}; END"
            )
    number = (
        "BEGIN INSERT OR IGNORE INTO counters (name, value) VALUES ('keys', 0);"
        " UPDATE counters SET value = value + 1 WHERE name = 'keys';"
        " UPDATE api_keys SET serial = (SELECT value FROM counters WHERE name = 'keys')"
        " WHERE id = NEW.id; END"
    )
    op.execute(f"CREATE TRIGGER authsvc_keys_insert AFTER INSERT ON api_keys {number}")
    op.execute(f"CREATE TRIGGER authsvc_keys_digest AFTER UPDATE OF digest ON api_keys {number}")


def create_postgresql_triggers():
    op.execute(
        "CREATE FUNCTION authsvc_bump_generation() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN {BUMP}; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE FUNCTION authsvc_number_key() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " INSERT INTO counters (name, value) VALUES ('keys', 1) ON CONFLICT (name)"
        " DO UPDATE SET value = counters.value + 1 RETURNING value INTO NEW.serial;"
        " RETURN NEW; END $$"
    )
    for table in WATCHED:
        for suffix, event in events(table):
            op.execute(
                f"CREATE TRIGGER authsvc_generation_{table}_{suffix} AFTER {event} ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION authsvc_bump_generation()"
            )
    op.execute(
        "CREATE TRIGGER authsvc_keys BEFORE INSERT OR UPDATE OF digest ON api_keys"
        " FOR EACH ROW EXECUTE FUNCTION authsvc_number_key()"
    )
    # For AUTHSVC_INVALIDATION=notify: each committed value of either counter, to listeners.
    op.execute(
        "CREATE FUNCTION authsvc_notify_counter() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" PERFORM pg_notify('{CHANNEL}', NEW.name || ':' || NEW.value); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER authsvc_counters_notify AFTER INSERT OR UPDATE ON counters FOR EACH ROW"
        " WHEN (NEW.name IN ('generation', 'keys')) EXECUTE FUNCTION authsvc_notify_counter()"
    )


def downgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        for suffix, _ in events(table):
            on = f" ON {table}" if postgresql else ""
            op.execute(f"DROP TRIGGER authsvc_generation_{table}_{suffix}{on}")
    if postgresql:
        op.execute("DROP TRIGGER authsvc_counters_notify ON counters")
        op.execute("DROP FUNCTION authsvc_notify_counter()")
        op.execute("DROP TRIGGER authsvc_keys ON api_keys")
        op.execute("DROP FUNCTION authsvc_number_key()")
        op.execute("DROP FUNCTION authsvc_bump_generation()")
    else:
        op.execute("DROP TRIGGER authsvc_keys_insert")
        op.execute("DROP TRIGGER authsvc_keys_digest")
    op.execute("DELETE FROM counters WHERE name = 'keys'")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_serial")
        batch_op.drop_column("serial")
