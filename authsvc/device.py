"""The device flow (RFC 8628): the app shows a user code, a host types it in and decides.

Device authorizations are challenges of kind ``device``: they are issued by
:func:`pairing.issue_challenge` (its caps, TTL, audit and ``pairing_enabled``), denied and
listed like the others, and a wrong user code spends the pairing failure budget.
"""

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from . import audit, counters, keyfields, keys, pairing
from .clock import iso, utcnow
from .errors import ApiError
from .extensions import db
from .models import ApiKey, Challenge, User

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels, so no words (RFC 8628 §6.1)
USER_CODE_LENGTH = 8
INTERVAL = 5  # seconds between polls
SLOW_DOWN = 5  # seconds added to the interval by each poll that comes too soon
SCOPE = "api"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


class DeviceError(Exception):
    """A refusal of the token endpoint, named as RFC 8628 §3.5 names it."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def device_code_digest(device_code: str) -> str:
    """What is stored in place of a device code."""
    return hashlib.sha256(device_code.encode()).hexdigest()


def shown_user_code(user_code: str) -> str:
    """``BCDFGHJK`` as people read it: ``BCDF-GHJK``."""
    half = USER_CODE_LENGTH // 2
    return f"{user_code[:half]}-{user_code[half:]}"


def normalize_user_code(entry: str) -> str:
    """A typed user code without case, spaces or dashes."""
    return "".join(char for char in entry.upper() if char not in " -\t")


def authorize(
    client_id: str, client_ip: str | None, user_agent: str | None, origin: str | None
) -> tuple[Challenge, str]:
    """Start a device authorization; return its challenge and the device code (shown once).

    Its challenge has no 4-digit code: the key is fetched with the device code alone.
    """
    device_code = secrets.token_urlsafe(32)
    user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    challenge = pairing.issue_challenge(
        client_id,
        client_ip,
        None,
        user_agent,
        origin,
        kind="device",
        code="",
        user_code=user_code,
        device_code_digest=device_code_digest(device_code),
        scope=SCOPE,
        poll_interval=INTERVAL,
    )
    return challenge, device_code


def poll(device_code: str, client_id: str) -> tuple[ApiKey, str]:
    """The app asks whether the host decided; the first poll after approval gets the key.

    Polls are paced with a compare-and-set on ``last_polled_at``: of racing polls at most one
    proceeds per interval, the others get ``slow_down`` (each adding 5 s). The key is handed
    out by a conditional change from ``approved`` to ``used``, so one device code yields one
    key however many polls race.
    """
    pairing.require_pairing_enabled()
    challenge = db.session.scalar(
        select(Challenge).where(
            Challenge.kind == "device",
            Challenge.device_code_digest == device_code_digest(device_code),
        )
    )
    if challenge is None or challenge.app_name != client_id.strip():
        raise DeviceError("invalid_grant", "unknown device code")
    now = utcnow()
    if challenge.state == "denied":
        raise DeviceError("access_denied", "the host denied the request")
    if challenge.state != "pending" and challenge.state != "approved":
        raise DeviceError("invalid_grant", "device code already used")
    if challenge.expires_at <= now:
        raise DeviceError("expired_token", "the device code has expired")
    pace(challenge, now)
    if challenge.state == "pending":
        raise DeviceError("authorization_pending", "the host has not decided yet")
    return issue_key(challenge, now)


def pace(challenge: Challenge, now: datetime) -> None:
    """Record this poll, or answer ``slow_down`` and lengthen the interval; commit."""
    seen = challenge.last_polled_at
    interval = timedelta(seconds=challenge.poll_interval or INTERVAL)
    recorded = 0
    if seen is None or now - seen >= interval:
        unchanged = (
            Challenge.last_polled_at.is_(None) if seen is None else Challenge.last_polled_at == seen
        )
        result = db.session.execute(
            update(Challenge)
            .where(Challenge.id == challenge.id, unchanged)
            .values(last_polled_at=now)
            .execution_options(synchronize_session=False)
        )
        recorded = result.rowcount  # type: ignore[attr-defined]
    if recorded != 1:
        db.session.execute(
            update(Challenge)
            .where(Challenge.id == challenge.id)
            .values(poll_interval=Challenge.poll_interval + SLOW_DOWN)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        raise DeviceError("slow_down", f"poll at most every {interval.seconds + SLOW_DOWN} s")
    db.session.commit()
    db.session.refresh(challenge)


def issue_key(challenge: Challenge, now: datetime) -> tuple[ApiKey, str]:
    """The approved challenge's key for its approver, narrowed as they chose; exactly once."""
    approver = db.session.get(User, challenge.claimed_by) if challenge.claimed_by else None
    if approver is None or approver.suspended:
        raise DeviceError("access_denied", "the approving user is gone")
    grant = challenge.grant or {}
    expires_at = grant.get("expires_at")
    key, secret = keys.create_key(
        approver,
        challenge.app_name,
        "device",
        organization_id=grant.get("organization_id"),
        expires_at=keyfields.parse_time(expires_at) if expires_at else None,
        allowed_endpoints=grant.get("allowed_endpoints"),
        scopes=[SCOPE],
    )
    consumed = db.session.execute(
        update(Challenge)
        .where(
            Challenge.id == challenge.id,
            Challenge.state == "approved",
            Challenge.expires_at > now,
        )
        .values(state="used", key_id=key.id)
        .execution_options(synchronize_session=False)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()  # another poll won: the key made here is discarded
        raise DeviceError("invalid_grant", "device code already used")
    audit.record("pairing.succeeded", key_id=key.id, challenge_id=challenge.id, app_name=key.name)
    counters.reset(pairing.BUDGET)  # a success starts a fresh budget
    db.session.commit()
    return key, secret


def find_pending(entry: str, actor: User) -> Challenge:
    """The pending device request with the user code a host typed, or 404.

    A unit of the failure budget is reserved before the lookup, as for a 4-digit code, and
    given back when the code exists: only codes that match no request count as wrong.
    """
    pairing.require_pairing_enabled()
    keys.require_may_create(actor)
    spent = pairing.reserve_attempt()
    user_code = normalize_user_code(entry)
    challenge = db.session.scalar(
        select(Challenge).where(Challenge.kind == "device", Challenge.user_code == user_code)
    )
    if challenge is None:
        audit.record("pairing.failed", actor_id=actor.id, kind="device")
        db.session.commit()
        if spent >= current_app.config["AUTHSVC_PAIRING_FAILURE_BUDGET"]:
            pairing.lock_pairing()
        raise ApiError(404, "no device request has this code")
    counters.release(pairing.BUDGET)
    if challenge.state != "pending" or challenge.expires_at <= utcnow():
        raise ApiError(404, "this code was used, denied or has expired")
    if not pairing.is_visible(challenge, actor):
        raise ApiError(404, "no device request has this code")
    return challenge


def decide(
    entry: str, actor: User, approve: bool, grant: dict[str, Any] | None = None
) -> Challenge:
    """Approve (the key will be the approver's, narrowed by ``grant``) or deny; commit."""
    challenge = find_pending(entry, actor)
    if not approve:
        pairing.deny_challenge(challenge.id, actor)
        return challenge
    grant = dict(grant or {})
    keys.check_organization(actor, grant.get("organization_id"))
    if grant.get("expires_at") is not None:
        grant["expires_at"] = iso(grant["expires_at"])
    challenge = pairing.finish_by_host(
        challenge.id, actor, state="approved", claimed_by=actor.id, grant=grant
    )
    audit.record("challenge.claimed", actor_id=actor.id, challenge_id=challenge.id)
    db.session.commit()
    return challenge


def request_for_host(challenge: Challenge) -> dict[str, Any]:
    """What the host judges before deciding; the app's words are untrusted text."""
    return {
        "challenge_id": challenge.id,
        "app_name": challenge.app_name,
        "client_ip": challenge.client_ip,
        "user_agent": challenge.user_agent,
        "origin": challenge.origin,
        "scope": challenge.scope,
        "created_at": iso(challenge.created_at),
        "expires_at": iso(challenge.expires_at),
        "status": challenge.state,
    }
