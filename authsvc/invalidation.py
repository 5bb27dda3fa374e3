"""How a worker learns that the key counters moved: ``AUTHSVC_INVALIDATION``.

``read`` (the default) reads them on every request: a change counts on the very next request,
in every worker and on every host. ``notify`` (PostgreSQL only) saves that round trip: a
thread per worker LISTENs on a channel that a trigger on the counters NOTIFYs at each commit,
and requests use what it last heard. A change then reaches every worker a few milliseconds
after its commit rather than before the next request (``make bench`` measures the bound).
While the listener is not connected, requests read the counters as in ``read`` mode.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import make_url

CHANNEL = "authsvc_counters"
APPLICATION_NAME = "authsvc listener"  # how the listeners show in pg_stat_activity
MODES = ("read", "notify")
RETRY_SECONDS = 1.0
# libpq's keepalives: a server gone without a word is noticed within about 11 s.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
logger = logging.getLogger(__name__)

Counters = tuple[int | None, int | None]


def mode(app: Flask) -> str:
    """The configured mode; a RuntimeError names what is wrong with it."""
    chosen = str(app.config["AUTHSVC_INVALIDATION"]).strip().lower()
    if chosen not in MODES:
        raise RuntimeError(f"AUTHSVC_INVALIDATION must be read or notify, not {chosen!r}")
    backend = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name()
    if chosen == "notify" and backend != "postgresql":
        raise RuntimeError("AUTHSVC_INVALIDATION=notify needs PostgreSQL (LISTEN/NOTIFY)")
    return chosen


class Listener:
    """A thread of the worker's own, LISTENing for counter changes on a connection of its own.

    ``heard`` holds the counters as of the last notification, or None while not connected. It
    starts on the first request of the process that uses it (never before a fork).
    """

    def __init__(self, database_url: str, read: Callable[[Any], Counters]) -> None:
        self.conninfo = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self.read = read
        self.heard: Counters | None = None
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def counters(self) -> Counters | None:
        """What the listener last heard; None while it cannot vouch for it."""
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(target=self.run, daemon=True)
                    self.thread.start()
        return self.heard

    def run(self) -> None:
        import psycopg  # only PostgreSQL installs have it, and only this mode needs it

        while True:
            try:
                self.listen(psycopg)
            except psycopg.Error as error:
                if self.heard is not None:
                    logger.warning(
                        "key counters: listener lost (%s); reading on each request", error
                    )
                self.heard = None
                time.sleep(RETRY_SECONDS)

    def listen(self, psycopg: Any) -> None:
        """LISTEN first, then read: no change can fall between the two. TCP keepalives end
        the wait (an error, then reading on each request) when the server silently goes."""
        with psycopg.connect(
            self.conninfo, autocommit=True, application_name=APPLICATION_NAME, **KEEPALIVES
        ) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            generation, keys = self.read(connection)
            self.heard = (generation, keys)
            for note in connection.notifies():
                name, _, value = note.payload.partition(":")
                if name == "generation":
                    generation = int(value)
                elif name == "keys":
                    keys = int(value)
                self.heard = (generation, keys)
