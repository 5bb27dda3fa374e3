"""Database engine settings, the end of a request's session, and the health probe."""

import fcntl
import logging
import os
import threading
import time
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.pool import Pool

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
TURN_WAIT = 2  # seconds a writer queues for its turn before it waits on SQLite's lock instead
TURN_POLL = 0.0002  # seconds between two tries at another process's turn
TURN_KEY = "authsvc_writer_turn"  # where a connection keeps the turn it holds
RELAXED_KEY = "authsvc_relaxed"  # set on a SQLite connection whose next commit is not synced


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
    """SQLite enforces foreign keys only when asked, per connection; every commit is synced
    to disk (WAL, ``synchronous=FULL``) unless :func:`relax_durability` says otherwise."""
    if type(connection).__module__.startswith("sqlite3"):
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
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


class WriterTurn:
    """Writers of one SQLite file queue here for its write lock instead of polling it.

    SQLite's busy handler sleeps 1, 2, 5, 10… up to 100 ms between tries, so writers that
    collide mostly sleep while the lock is free. Threads of a process queue on a lock, one
    of them at a time for the processes' turn: an exclusive ``flock`` on a file beside the
    database (never the database file: closing a descriptor of it would drop SQLite's own
    locks), tried every ``TURN_POLL``. The turn is an optimisation only: a writer that cannot
    have it within ``TURN_WAIT`` (a writer outside authsvc holds the lock), or cannot open the
    file, waits on SQLite's lock as before.
    """

    def __init__(self, path: str) -> None:
        self.path = f"{path}-writer"
        self.threads = threading.Lock()
        self.opened: tuple[int, int] | None = None  # (pid, descriptor): never a parent's

    def descriptor(self) -> int:
        """This process's descriptor of the turn file."""
        if self.opened is None or self.opened[0] != os.getpid():
            self.opened = (os.getpid(), os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        return self.opened[1]

    def take(self) -> bool:
        """Wait for the turn, at most ``TURN_WAIT`` seconds; whether it was had."""
        if not self.threads.acquire(timeout=TURN_WAIT):
            return False
        deadline = time.monotonic() + TURN_WAIT
        try:
            descriptor = self.descriptor()
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(TURN_POLL)
        except OSError as error:
            log.debug("no writer turn for %s: %s", self.path, error)
        self.threads.release()
        return False

    def give_back(self) -> None:
        """End the turn: the next writer goes."""
        if self.opened is not None:
            fcntl.flock(self.opened[1], fcntl.LOCK_UN)
        self.threads.release()


TURNS: dict[str, WriterTurn] = {}
TURNS_LOCK = threading.Lock()


def writer_turn(path: str) -> WriterTurn:
    """The one turn of this database file in this process."""
    with TURNS_LOCK:
        return TURNS.setdefault(path, WriterTurn(path))


def take_turn() -> None:
    """Before the transaction's first write on a SQLite file: queue for its write lock.

    A connection that writes already (it holds the lock) or holds the turn goes on; the turn
    is given back when the connection returns to the pool, at the transaction's end.
    """
    connection = db.session.connection()
    path = connection.engine.url.database
    if not path or path == ":memory:" or TURN_KEY in connection.info:
        return
    if getattr(connection.connection.dbapi_connection, "in_transaction", True):
        return
    turn = writer_turn(os.path.abspath(path))
    if turn.take():
        connection.info[TURN_KEY] = turn


def relax_durability() -> None:
    """Before the transaction's first write: its commit need not reach the disk at once.

    For rows whose loss to a power cut is harmless (a pairing challenge: the app asks again).
    Such a commit is atomic and ordered as any other, and durable with the next synced commit
    (SQLite WAL: ``synchronous=NORMAL`` for this transaction, then FULL again, whose fsync of
    the log covers it; PostgreSQL: ``synchronous_commit`` off for this transaction). A
    transaction that writes already keeps its durability.
    """
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        return
    if getattr(connection.connection.dbapi_connection, "in_transaction", True):
        return
    connection.exec_driver_sql("PRAGMA synchronous=NORMAL")
    connection.info[RELAXED_KEY] = True


@event.listens_for(Pool, "checkin")
def end_transaction(dbapi_connection: Any, record: Any) -> None:
    """The transaction is over: the next writer's turn, and synced commits again."""
    if record is None:
        return
    turn = record.info.pop(TURN_KEY, None)
    if turn is not None:
        turn.give_back()
    if record.info.pop(RELAXED_KEY, False) and dbapi_connection is not None:
        dbapi_connection.execute("PRAGMA synchronous=FULL")


def serialize(name: str) -> None:
    """Hold a lock until the current transaction ends, so check-then-insert cannot race.

    PostgreSQL takes a transaction-scoped advisory lock; SQLite takes its database write
    lock, which any write statement does, even one that matches no row, after its turn.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
    else:
        take_turn()
        db.session.execute(text("UPDATE settings SET name = name WHERE 0 = 1"))


def get_locked_or_404(model: type[T], object_id: str, what: str) -> T:
    """:func:`get_or_404`, the row locked until the current transaction ends (one read).

    PostgreSQL locks the row (``SELECT ... FOR UPDATE``); SQLite takes its write lock first.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        serialize("row")
    row = db.session.get(model, object_id, with_for_update=True)
    if row is None:
        raise ApiError(404, f"{what} not found")
    return row


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
