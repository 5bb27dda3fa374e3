"""Usage per key, hour and outcome: counted in memory beside the key check, written in batches.

The key check calls :func:`record` once per request: a dictionary addition under a lock,
nothing else. A thread in each worker process writes what was counted every
``AUTHSVC_USAGE_FLUSH_INTERVAL`` seconds, and once more when the process exits, as one
upsert into ``key_usage`` (one row per key and hour). A crash loses at most one interval of
counts; counts decide nothing, so no key and no limit is ever lost with them.
"""

import atexit
import logging
import os
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from . import metrics
from .clock import iso, unix_time, utcnow
from .extensions import db
from .models import KeyUsage

log = logging.getLogger(__name__)
OUTCOMES = ("valid", "rate_limited", "usage_exceeded", "forbidden")
GRANULARITIES = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30)}
ROWS_PER_STATEMENT = 1000  # well under SQLite's limit of bound parameters


EPOCH = datetime(1970, 1, 1)
HOUR_SECONDS = 3600


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def current_hour() -> int:
    """Hours since the epoch: a cheap stamp for the hot path."""
    return int(unix_time()) // HOUR_SECONDS


class Tally:
    """One process's counts not yet written, and the thread that writes them."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, int, str]] = Counter()  # key, hour (epoch), outcome
        self.pid: int | None = None  # the process whose flush thread runs

    def add(self, key_id: str, outcome: str) -> None:
        with self.lock:
            self.counts[key_id, current_hour(), outcome] += 1
        if self.pid != os.getpid():
            self.start()

    def start(self) -> None:
        """Start this process's flush thread (a forked worker starts its own); tests flush by
        hand, so their many short-lived apps leave no thread behind."""
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
        if self.app.testing:
            return
        interval = self.app.config["AUTHSVC_USAGE_FLUSH_INTERVAL"]
        threading.Thread(target=self.run, args=(interval,), daemon=True, name="usage").start()
        atexit.register(self.flush)

    def run(self, interval: float) -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            self.flush()

    def flush(self) -> None:
        """Write what was counted; on failure keep it for the next try."""
        with self.lock:
            counts, self.counts = self.counts, Counter()
        if not counts:
            return
        try:
            with self.app.app_context():
                write(counts)
        except SQLAlchemyError:
            log.exception("writing usage counts failed; retrying at the next interval")
            with self.lock:
                self.counts.update(counts)


def write(counts: Counter[tuple[str, int, str]]) -> None:
    """Add ``counts`` to the hourly rows, one upsert per batch of rows; commit."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for (key_id, hour, outcome), count in counts.items():
        hour_start = EPOCH + timedelta(hours=hour)
        row = rows.setdefault(
            (key_id, hour), {"key_id": key_id, "hour": hour_start, **dict.fromkeys(OUTCOMES, 0)}
        )
        row[outcome] += count
    values = list(rows.values())
    with Session(db.engine) as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        for start in range(0, len(values), ROWS_PER_STATEMENT):
            statement = dialect.insert(KeyUsage).values(values[start : start + ROWS_PER_STATEMENT])
            statement = statement.on_conflict_do_update(
                index_elements=[KeyUsage.key_id, KeyUsage.hour],
                set_={
                    name: getattr(KeyUsage, name) + statement.excluded[name] for name in OUTCOMES
                },
            )
            session.execute(statement)
        session.commit()


def tally() -> Tally:
    store: Tally = current_app.extensions["authsvc.usage"]
    return store


def record(key_id: str | None, outcome: str) -> None:
    """Count one key check: its outcome (a verification code, lower case) for the metrics,
    and, for a key that exists, in its usage."""
    metrics.count_verification(outcome)
    if key_id is not None and outcome in OUTCOMES:
        tally().add(key_id, outcome)


def flush() -> None:
    """Write this process's counts now (tests, and the CLI before it reads)."""
    tally().flush()


def start_of(granularity: str, moment: datetime) -> datetime:
    """The start of the hour or day ``moment`` lies in."""
    start = hour_of(moment)
    return start if granularity == "hour" else start.replace(hour=0)


def report(key_id: str, granularity: str, since: datetime | None) -> dict[str, Any]:
    """The key's counts by hour or by day (rolled up from hours), oldest first, and in total."""
    if since is None:
        since = utcnow() - DEFAULT_SPAN[granularity]
    rows = db.session.scalars(
        select(KeyUsage)
        .where(KeyUsage.key_id == key_id, KeyUsage.hour >= start_of(granularity, since))
        .order_by(KeyUsage.hour)
    )
    buckets: dict[datetime, dict[str, int]] = {}
    for row in rows:
        bucket = buckets.setdefault(start_of(granularity, row.hour), dict.fromkeys(OUTCOMES, 0))
        for name in OUTCOMES:
            bucket[name] += getattr(row, name)
    total = {name: sum(bucket[name] for bucket in buckets.values()) for name in OUTCOMES}
    return {
        "data": [{"start": iso(start), **counts} for start, counts in buckets.items()],
        "total": total,
    }


def init_app(app: Flask) -> None:
    """Check the interval and give the app its tally."""
    interval = app.config["AUTHSVC_USAGE_FLUSH_INTERVAL"]
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise RuntimeError(
            f"AUTHSVC_USAGE_FLUSH_INTERVAL must be a positive number, not {interval!r}"
        )
    app.extensions["authsvc.usage"] = Tally(app)
