"""The instance's own counter store: a small SQLite file in the instance folder.

A ``limits`` storage (scheme ``sqlite``), so every worker process of the instance counts in
the one file: a limit of 10 is 10 for the instance, never 10 per worker. Each increment is
one upsert, atomic on its own. The file holds nothing that must survive a crash, so it is
tuned for counting (WAL, ``synchronous=OFF``); it is private to the account (mode 0600).
"""

import contextlib
import os
import sqlite3
import threading
import time
from typing import Any
from urllib.parse import urlparse

from limits.storage import Storage

from . import files
from .clock import unix_time
from .files import FILE_MODE

FILE_NAME = "limits.sqlite3"
BUSY_TIMEOUT = 10  # seconds a counter waits for another process's write (as the database)
SETUP_RETRY = 0.005  # seconds between tries of the set-up that SQLite refuses without waiting
PURGE_EVERY = 1000  # increments between deletions of expired counters
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters ("
    "key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID"
)
# A window that has ended starts again from this increment.
INCREMENT = """
INSERT INTO counters (key, count, expires_at) VALUES (:key, max(:amount, 0), :expires_at)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN expires_at <= :now THEN max(:amount, 0) ELSE max(count + :amount, 0) END,
    expires_at = CASE WHEN expires_at <= :now THEN :expires_at ELSE expires_at END
RETURNING count
"""


def instance_uri(instance_path: str) -> str:
    """The store's URI for an instance folder."""
    return f"sqlite:///{os.path.join(instance_path, FILE_NAME)}"


def create_private(path: str) -> None:
    """Create the file 0600 if it is missing, and make it 0600 if it is not.

    An existing file is never opened here: closing any descriptor of a file drops every POSIX
    lock this process holds on it, which would pull the locks from under the SQLite
    connections of the process's other threads (a lost count, or "disk I/O error").
    """
    if not os.path.exists(path):
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))
    files.make_private(path)


def open_counters(path: str) -> sqlite3.Connection:
    """A connection to the counter file, in WAL mode and with its table.

    Connections opened at once on a new file (a server's workers, a process's threads) race
    to switch it to WAL; SQLite answers the losers "database is locked" at once, without its
    busy wait, so the set-up is tried again until ``BUSY_TIMEOUT``.
    """
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(SCHEMA)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                connection.close()
                raise
            time.sleep(SETUP_RETRY)
        else:
            return connection


class SQLiteStorage(Storage):
    """Fixed-window counters in a SQLite file shared by the processes of one host."""

    STORAGE_SCHEME = ["sqlite"]  # noqa: RUF012 (limits registers storages by this list)

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = urlparse(uri).path
        self.local = threading.local()
        self.increments = 0

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error, OSError)  # OSError: the file cannot be made

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened in this process (never one inherited by a fork).

        The file is made on first use (a command that counts nothing leaves none), private
        even under a loose umask or when an earlier version made it.
        """
        opened: tuple[int, sqlite3.Connection] | None = getattr(self.local, "opened", None)
        if opened is None or opened[0] != os.getpid():
            create_private(self.path)
            opened = (os.getpid(), open_counters(self.path))
            self.local.opened = opened
        return opened[1]

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` (negative to give back) to the window's count; return the count."""
        now = unix_time()
        values = {"key": key, "amount": amount, "now": now, "expires_at": now + expiry}
        count = self.connection().execute(INCREMENT, values).fetchone()[0]
        self.increments += 1
        if self.increments % PURGE_EVERY == 0:
            self.connection().execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
        return int(count)

    def get(self, key: str) -> int:
        row = (
            self.connection()
            .execute(
                "SELECT count FROM counters WHERE key = ? AND expires_at > ?", (key, unix_time())
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        now = unix_time()
        row = (
            self.connection()
            .execute("SELECT expires_at FROM counters WHERE key = ? AND expires_at > ?", (key, now))
            .fetchone()
        )
        return float(row[0]) if row else now

    def check(self) -> bool:
        try:
            self.connection().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self.connection().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self.connection().execute("DELETE FROM counters WHERE key = ?", (key,))
