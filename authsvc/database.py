"""Database engine settings, the end of a request's session, and the health probe."""

import logging
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session

from . import drivers
from .errors import ApiError
from .extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")
# A session of its own, or the request's scoped ``db.session``.
AnySession = Session | scoped_session[Any]
CONNECT_TIMEOUT = 5  # seconds
STATEMENT_TIMEOUT = 15
SQLITE_BUSY_TIMEOUT = 10
SQLITE_READONLY = 8  # the primary result code of every "attempt to write a readonly database"


def engine_options(uri: str) -> dict[str, Any]:
    """Bounded waits: a request fails within seconds (503) instead of hanging on the database.

    SQLite waits for the write lock up to its busy timeout. PostgreSQL gives up connecting
    after ``CONNECT_TIMEOUT`` seconds, cancels statements (lock waits included) after
    ``STATEMENT_TIMEOUT``, notices a silent peer through TCP keepalives, and tests pooled
    connections before use, so service resumes by itself once the database is back.
    """
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    return {
        "pool_pre_ping": True,
        "pool_timeout": CONNECT_TIMEOUT,
        "connect_args": {
            "connect_timeout": CONNECT_TIMEOUT,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT * 1000}",
            "keepalives_idle": CONNECT_TIMEOUT,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": STATEMENT_TIMEOUT * 1000,
        },
    }


@event.listens_for(Engine, "connect")
def enable_sqlite_foreign_keys(connection: Any, _record: Any) -> None:
    """SQLite enforces foreign keys only when asked, per connection."""
    if type(connection).__module__.startswith("sqlite3"):
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


@event.listens_for(Engine, "handle_error")
def reopen_read_only_sqlite(context: ExceptionContext) -> None:
    """A SQLite connection opened while its file could not be written stays read-only for
    good, even once the file is writable again. Such a failure counts as a lost connection:
    this one and the others pooled with it are dropped, the next request opens afresh, and
    writes resume by themselves as soon as they can."""
    code = getattr(context.original_exception, "sqlite_errorcode", 0)
    if code & 0xFF == SQLITE_READONLY:
        context.is_disconnect = True


def get_or_404(model: type[T], object_id: str, what: str) -> T:
    """The row of ``model`` with this primary key, or 404 ``<what> not found``."""
    row = db.session.get(model, object_id)
    if row is None:
        raise ApiError(404, f"{what} not found")
    return row


def serialize(name: str) -> None:
    """Hold a lock until the current transaction ends, so check-then-insert cannot race.

    PostgreSQL takes a transaction-scoped advisory lock; SQLite takes its database write
    lock, which any write statement does, even one that matches no row.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
    else:
        db.session.execute(text("UPDATE settings SET name = name WHERE 0 = 1"))


def lock(row: Any) -> None:
    """Lock ``row`` until the current transaction ends and reload it (read, check, write).

    PostgreSQL locks the row (``SELECT ... FOR UPDATE``); SQLite takes its write lock.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        serialize("row")
    db.session.refresh(row, with_for_update=True)


def is_reachable() -> bool:
    """Whether a trivial query succeeds."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return False
    return True


def close_session(_error: BaseException | None = None) -> None:
    """End the request's session, whatever became of its connection.

    A rollback that fails because the connection was lost loses nothing (the server rolls
    back by itself), and the answer is made already: it stands, and the connection is
    dropped. (Flask-SQLAlchemy's own teardown would let the failure escape Flask: an HTML 500.)
    """
    try:
        db.session.close()
    except SQLAlchemyError as error:
        log.warning("database connection lost at the end of a request: %s", error)
        db.session.close()


def init_app(app: Flask) -> None:
    """Set engine options before the engine is created; close sessions safely."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    drivers.require_driver(uri)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(uri))
    db.init_app(app)
    app.teardown_appcontext(close_session)  # registered after, so it runs before db's own
