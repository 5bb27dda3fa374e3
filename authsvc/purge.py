"""Deleting rows nobody needs any more, so tables do not grow without bound.

``authsvc purge`` runs it on demand; the server runs it after a response at most once per
``AUTHSVC_PURGE_INTERVAL`` seconds in each process.
"""

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Response, current_app
from sqlalchemy import delete, or_
from sqlalchemy.exc import SQLAlchemyError

from . import usage_limits
from .clock import utcnow
from .extensions import db
from .models import AuditEvent, AuthSession, Challenge, KeyUsage

log = logging.getLogger(__name__)
CHALLENGE_GRACE = timedelta(hours=1)
SESSION_GRACE = timedelta(days=1)
POSITIVE_SETTINGS = ("AUTHSVC_AUDIT_RETENTION_DAYS", "AUTHSVC_PURGE_INTERVAL")


def purge(now: datetime | None = None) -> dict[str, int]:
    """Delete what has served its time, commit, and return how many rows went per table.

    - challenges that expired more than an hour ago: the grace hour keeps a challenge long
      enough that an app retrying its exchange still gets 410 "challenge expired", not 404;
    - audit events and hourly key usage older than ``AUTHSVC_AUDIT_RETENTION_DAYS`` days;
    - sessions that expired or were ended more than a day ago;

    and refills the usage limits whose period has ended, before any request does.
    """
    now = now or utcnow()
    retention = timedelta(days=current_app.config["AUTHSVC_AUDIT_RETENTION_DAYS"])
    session_cutoff = now - SESSION_GRACE
    statements = {
        "challenges": delete(Challenge).where(Challenge.expires_at < now - CHALLENGE_GRACE),
        "audit_events": delete(AuditEvent).where(AuditEvent.created_at < now - retention),
        "key_usage": delete(KeyUsage).where(KeyUsage.hour < now - retention),
        "sessions": delete(AuthSession).where(
            or_(AuthSession.expires_at < session_cutoff, AuthSession.ended_at < session_cutoff)
        ),
    }
    counts: dict[str, int] = {}
    for table, statement in statements.items():
        counts[table] = db.session.execute(statement).rowcount  # type: ignore[attr-defined]
    usage_limits.refill_due(now)
    db.session.commit()
    return counts


class Schedule:
    """When this process last purged; the lock lets one thread purge while others skip."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: datetime | None = None


def purge_when_due(response: Response) -> Response:
    """After a response is built: purge if the interval has passed; never change the response."""
    schedule: Schedule = current_app.extensions["authsvc.purge"]
    if not schedule.lock.acquire(blocking=False):
        return response  # another thread of this process is purging right now
    try:
        now = utcnow()
        interval = timedelta(seconds=current_app.config["AUTHSVC_PURGE_INTERVAL"])
        if schedule.last is not None and now < schedule.last + interval:
            return response
        # Recorded before trying, so a failing database is retried once per interval, not
        # on every request.
        schedule.last = now
        try:
            # The response is built: anything still uncommitted would be discarded at
            # teardown, and must not ride along on the purge's commit.
            db.session.rollback()
            log.info("purged %s", purge(now))
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("periodic purge failed; retrying in %s", interval)
    finally:
        schedule.lock.release()
    return response


def check_settings(config: dict[str, Any]) -> None:
    """A retention or interval that is not a positive integer refuses to start."""
    for name in POSITIVE_SETTINGS:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RuntimeError(f"{name} must be a positive integer, not {value!r}")


def init_app(app: Flask) -> None:
    """Check the settings and schedule the periodic purge."""
    check_settings(app.config)
    app.extensions["authsvc.purge"] = Schedule()
    app.after_request(purge_when_due)
