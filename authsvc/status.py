"""The instance at a glance, for ``authsvc status``: mode, database, pairing and keys."""

from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, not_, or_, select, true

from . import counters, keys, pairing, settings, users
from .clock import utcnow
from .extensions import db
from .models import ApiKey, Counter


def count_keys(condition: ColumnElement[bool]) -> int:
    return int(db.session.scalar(select(func.count()).select_from(ApiKey).where(condition)) or 0)


def key_counts() -> dict[str, int]:
    """Keys by state; each key counts in one state besides the total."""
    active = keys.is_active_clause()
    unexpired = or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > utcnow())
    return {
        "total": count_keys(true()),
        "active": count_keys(and_(active, unexpired, ApiKey.enabled.is_(True))),
        "disabled": count_keys(and_(active, unexpired, ApiKey.enabled.is_(False))),
        "expired": count_keys(and_(active, not_(unexpired))),
        "revoked": count_keys(not_(active)),
    }


def instance_status() -> dict[str, Any]:
    """What a host asks first: which mode, which database, can apps pair, how many keys."""
    values = settings.current()
    failures = db.session.get(Counter, counters.PAIRING_FAILURES)
    spent = failures.value if failures is not None else 0
    budget = current_app.config["AUTHSVC_PAIRING_FAILURE_BUDGET"]
    pending = select(func.count()).select_from(pairing.pending_query(utcnow()).subquery())
    return {
        "mode": "multi-user" if users.is_multi_user() else "single-user",
        "database": db.engine.url.render_as_string(hide_password=True),
        "pairing_enabled": values["pairing_enabled"],
        # Locked: turned off by the failure budget, not by the host (SPEC §4).
        "pairing_locked": not values["pairing_enabled"] and spent >= budget,
        "pairing_failures": spent,
        "pairing_failure_budget": budget,
        "pending_challenges": int(db.session.scalar(pending) or 0),
        "keys": key_counts(),
    }
