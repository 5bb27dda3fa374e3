"""Usage limits: how many requests a key may still make, refilled each day or month.

What is left is one row per key outside ``api_keys`` (see ``KeyUsageLimit``); the refill
itself is on the key (``ApiKey.usage_limit``), so the key cache knows whether to take one.
Each request takes one with a single conditional UPDATE: concurrent requests in every worker
and on every host never take more than there is. A refill is due at 00:00 UTC or on the first
of the month; the first request after it (or the periodic purge, whichever comes first) sets
``remaining`` back to the refill's amount.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, or_, select, update

from . import ratelimits
from .clock import epoch, utcnow
from .errors import ApiError
from .extensions import db
from .models import ApiKey, KeyUsageLimit

EXHAUSTED = "api key usage exhausted"
# Without a refill nothing comes back: a client is told to wait a day, then ask again.
NO_REFILL_RETRY = timedelta(days=1)


def period_start(refill: dict[str, Any] | None, now: datetime) -> datetime | None:
    """The start of the refill period ``now`` lies in (None without refill)."""
    if refill is None:
        return None
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if refill["interval"] == "day" else day.replace(day=1)


def next_refill(refill: dict[str, Any] | None, now: datetime) -> datetime:
    """When the next refill is due (or when to ask again, without refill)."""
    start = period_start(refill, now)
    if refill is None or start is None:
        return now + NO_REFILL_RETRY
    if refill["interval"] == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def due_period(
    refill: dict[str, Any] | None, started: datetime | None, now: datetime
) -> datetime | None:
    """The period a refill is due for (what was left belongs to an earlier one), or None."""
    start = period_start(refill, now)
    if start is None or (started is not None and started >= start):
        return None
    return start


def set_limit(key: ApiKey, limit: dict[str, Any] | None) -> None:
    """Give ``key`` this limit (or none), within the current transaction."""
    db.session.execute(delete(KeyUsageLimit).where(KeyUsageLimit.key_id == key.id))
    key.usage_limit = None if limit is None else {"refill": limit["refill"]}
    if limit is not None:
        db.session.add(
            KeyUsageLimit(
                key_id=key.id,
                remaining=limit["remaining"],
                period_start=period_start(limit["refill"], utcnow()),
            )
        )


def carry_over(old: ApiKey, new: ApiKey) -> None:
    """A rotated key keeps what is left of the old one's limit (rotating refills nothing)."""
    if old.usage_limit is None:
        return
    left = db.session.get(KeyUsageLimit, old.id)
    new.usage_limit = old.usage_limit
    db.session.add(
        KeyUsageLimit(
            key_id=new.id,
            remaining=left.remaining if left else 0,
            period_start=left.period_start if left else None,
        )
    )


def take(key: ApiKey) -> int:
    """Take one request from the key's limit and commit; 429 when none is left."""
    assert key.usage_limit is not None
    refill = key.usage_limit["refill"]
    now = utcnow()
    row = KeyUsageLimit
    statement = update(row).where(row.key_id == key.id)
    start = period_start(refill, now)
    if refill is None or start is None:
        statement = statement.where(row.remaining > 0).values(remaining=row.remaining - 1)
    else:
        # A refill due is taken in the same statement: of concurrent requests one refills.
        due = or_(row.period_start.is_(None), row.period_start < start)
        statement = statement.where(or_(row.remaining > 0, due)).values(
            remaining=case((due, refill["amount"] - 1), else_=row.remaining - 1),
            period_start=start,
        )
    remaining = db.session.scalar(
        statement.returning(row.remaining).execution_options(synchronize_session=False)
    )
    db.session.commit()
    if remaining is None:
        raise exhausted(refill, now)
    return int(remaining)


def exhausted(refill: dict[str, Any] | None, now: datetime) -> ApiError:
    """The 429 of a used-up key, with the rate-limit headers up to its next refill."""
    return ratelimits.refusal(
        refill["amount"] if refill else 0, epoch(next_refill(refill, now)), EXHAUSTED
    )


def describe(key: ApiKey) -> dict[str, Any] | None:
    """The key's ``usage_limit`` as clients see it, a refill that is due counted as done."""
    if key.usage_limit is None:
        return None
    refill = key.usage_limit["refill"]
    left = db.session.get(KeyUsageLimit, key.id, populate_existing=True)
    remaining = left.remaining if left else 0
    if refill is not None and left is not None and due_period(refill, left.period_start, utcnow()):
        remaining = refill["amount"]
    return {"remaining": remaining, "refill": refill}


def refill_due(now: datetime) -> int:
    """Refill every limit whose period has ended (the periodic purge); return how many."""
    refilled = 0
    rows = db.session.execute(
        select(ApiKey.id, ApiKey.usage_limit, KeyUsageLimit.period_start).join(
            KeyUsageLimit, KeyUsageLimit.key_id == ApiKey.id
        )
    )
    for key_id, limit, started in rows.all():
        refill = (limit or {}).get("refill")
        start = due_period(refill, started, now)
        if refill is None or start is None:
            continue
        result = db.session.execute(
            update(KeyUsageLimit)
            .where(
                KeyUsageLimit.key_id == key_id,
                or_(KeyUsageLimit.period_start.is_(None), KeyUsageLimit.period_start < start),
            )
            .values(remaining=refill["amount"], period_start=start)
            .execution_options(synchronize_session=False)
        )
        refilled += result.rowcount  # type: ignore[attr-defined]
    return refilled
