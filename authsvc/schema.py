"""The database's schema before a command runs: migrate a fresh or older database, or say in one
line why not (unreachable, missing, set up by a newer authsvc) — never a traceback."""

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import upgrade
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db

MISSING_DATABASE = "3D000"  # PostgreSQL's invalid_catalog_name


class DatabaseNotReady(Exception):
    """The database cannot be used as it is; the message says what to do, in one line."""


def createdb_command(url: URL) -> str:
    """The ``createdb`` line that creates the database of ``url``."""
    parts = ["createdb"]
    if url.host:
        parts += ["-h", url.host]
    if url.port:
        parts += ["-p", str(url.port)]
    if url.username:
        parts += ["-U", url.username]
    return " ".join([*parts, str(url.database)])


def describe(error: SQLAlchemyError, url: URL) -> str:
    """One line for a database that cannot be opened."""
    reason = str(getattr(error, "orig", None) or error).strip()
    if url.get_backend_name() == "postgresql" and (
        getattr(getattr(error, "orig", None), "sqlstate", None) == MISSING_DATABASE
        or f'database "{url.database}" does not exist' in reason
    ):
        return (
            f"the PostgreSQL database {url.database!r} does not exist: create it with "
            f"`{createdb_command(url)}`, then run the command again"
        )
    last_line = reason.splitlines()[-1] if reason else error.__class__.__name__
    return f"database unreachable ({url.render_as_string(hide_password=True)}): {last_line}"


def applied_revisions() -> set[str]:
    """The revisions the database says it is at (none for a fresh database)."""
    with db.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def prepare_database() -> None:
    """Apply pending migrations; raise DatabaseNotReady when the database cannot be used."""
    url = db.engine.url
    scripts = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
    try:
        applied = applied_revisions()
    except SQLAlchemyError as error:
        raise DatabaseNotReady(describe(error, url)) from error
    if applied == set(scripts.get_heads()):
        return
    known = {script.revision for script in scripts.walk_revisions()}
    if not applied <= known:
        raise DatabaseNotReady(
            f"the database is at revision {', '.join(sorted(applied - known))}, which this "
            "authsvc does not know: a newer version set it up; upgrade authsvc"
        )
    try:
        upgrade()
    except SQLAlchemyError as error:
        raise DatabaseNotReady(f"migrations failed: {describe(error, url)}") from error
