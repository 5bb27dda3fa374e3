"""Pairing (SPEC §4): an app asks for a challenge, the person reads it the code, it gets a key."""

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, case, func, or_, select, update

from . import audit, counters, keys, metrics, ratelimits, settings, users
from .clock import epoch, iso, utcnow
from .database import get_locked_or_404, get_or_404, relax_durability, serialize
from .errors import ApiError
from .extensions import db
from .models import ApiKey, Challenge, User

log = logging.getLogger(__name__)
BUDGET = counters.PAIRING_FAILURES
UNTRUSTED_TEXT_LIMIT = 200
GONE = {
    "used": "challenge already used",
    "denied": "challenge denied",
    "burned": "challenge failed: too many attempts",
}


def needs_approval() -> bool:
    """Whether a code works only after a host user claimed its challenge (SPEC §4)."""
    return bool(settings.current()["pairing_requires_approval"] or users.is_multi_user())


def require_pairing_enabled() -> None:
    """While pairing is locked or off, nothing about challenges may proceed."""
    if not settings.current()["pairing_enabled"]:
        raise ApiError(403, "pairing is disabled")


def pending_query(now: datetime) -> Select[Any]:
    """Challenges that can still be redeemed, oldest first."""
    return (
        select(Challenge)
        .where(Challenge.state == "pending", Challenge.expires_at > now)
        .order_by(Challenge.created_at, Challenge.id)
    )


def check_pending_caps(client_ip: str | None, now: datetime) -> None:
    """429 when this client, or everybody, has too many challenges waiting (one read)."""
    config = current_app.config
    mine = Challenge.client_ip == client_ip
    waiting = select(
        func.count().filter(mine),
        func.min(Challenge.expires_at).filter(mine),
        func.count(),
        func.min(Challenge.expires_at),
    ).where(Challenge.state == "pending", Challenge.expires_at > now)
    client_count, client_first, count, first = db.session.execute(waiting).one()
    caps = [
        (client_count, client_first, config["AUTHSVC_MAX_PENDING_PER_CLIENT"], "this client"),
        (count, first, config["AUTHSVC_MAX_PENDING_TOTAL"], "the host"),
    ]
    for waiting_count, first_expiry, cap, whom in caps:
        if waiting_count >= cap:
            reset_at = epoch(first_expiry) + 1  # a place is free once the first one expires
            raise ratelimits.refusal(cap, reset_at, f"too many pending challenges for {whom}")


def issue_challenge(
    app_name: str,
    client_ip: str | None,
    code_challenge: str | None,
    user_agent: str | None = None,
    origin: str | None = None,
    **kind_fields: Any,
) -> Challenge:
    """Create a challenge with a fresh 4-digit code and tell the host about it.

    The user agent and origin are the app's own words, kept (shortened) for the host to judge.
    ``kind_fields`` set the columns of another kind of challenge (the device flow's), which
    shares the caps, the TTL and the audit of this one.
    """
    require_pairing_enabled()
    relax_durability()  # a challenge lost to a power cut is asked for again
    serialize("challenge-creation")  # the caps below count, then insert
    now = utcnow()
    check_pending_caps(client_ip, now)
    values = settings.current()
    fields = {"code": f"{secrets.randbelow(10_000):04d}", **kind_fields}
    challenge = Challenge(
        id=secrets.token_urlsafe(18),
        app_name=app_name,
        code_challenge=code_challenge,
        max_attempts=values["challenge_max_attempts"],
        client_ip=client_ip,
        user_agent=user_agent[:UNTRUSTED_TEXT_LIMIT] if user_agent else None,
        origin=origin[:UNTRUSTED_TEXT_LIMIT] if origin else None,
        created_at=now,
        expires_at=now + timedelta(seconds=values["challenge_ttl_seconds"]),
        **fields,
    )
    db.session.add(challenge)
    audit.record("challenge.created", app_name=app_name, challenge_id=challenge.id)
    db.session.commit()
    if current_app.config["AUTHSVC_PAIRING_LOG_CODES"] and not kind_fields:
        log.info("pairing code %s for app %r from %s", challenge.code, app_name, client_ip)
    return challenge


def still_pending(challenge_id: str, now: datetime) -> list[ColumnElement[bool]]:
    """The condition under which a challenge may still change: it is pending and alive."""
    return [Challenge.id == challenge_id, Challenge.state == "pending", Challenge.expires_at > now]


def raise_if_finished(challenge: Challenge, now: datetime) -> None:
    """410 for a challenge that was used, denied, burned or has expired."""
    if challenge.state in GONE:
        raise ApiError(410, GONE[challenge.state])
    if challenge.expires_at <= now:
        metrics.count_pairing("expired")
        raise ApiError(410, "challenge expired")


def verifier_matches(code_challenge: str, verifier: str | None) -> bool:
    """PKCE S256: the base64url SHA-256 of the verifier, without padding."""
    if not verifier:
        return False
    derived = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return hmac.compare_digest(derived.rstrip(b"=").decode(), code_challenge)


def reserve_attempt() -> int:
    """Spend one unit of the failure budget before a code is compared; return units spent.

    The budget counts every comparison since pairing was last turned on or last succeeded
    (SPEC §4): no time window, so a slow drip cannot outlast it. When it is spent, pairing is
    locked and nothing more is compared. The unit is taken in the redemption's transaction:
    an attempt that ends otherwise than as a wrong code (a success, a failure) gives it back.
    """
    spent = counters.reserve(BUDGET, current_app.config["AUTHSVC_PAIRING_FAILURE_BUDGET"])
    if spent is None:
        lock_pairing()
        raise ApiError(403, "pairing is disabled")
    return spent


def lock_pairing() -> None:
    """Turn pairing off because the failure budget is spent, once, with an audit event."""
    budget = current_app.config["AUTHSVC_PAIRING_FAILURE_BUDGET"]
    serialize("pairing-lock")  # concurrent lockers take turns, so one of them records it
    if settings.current(fresh=True)["pairing_enabled"]:
        settings.store({"pairing_enabled": False})
        audit.record("pairing.locked", failures=budget, budget=budget)
        log.warning("pairing locked after %d wrong codes; turn it on again in the settings", budget)
    db.session.commit()


def count_failure(challenge: Challenge, spent: int) -> int:
    """Count a wrong attempt at the locked challenge, burn it at its cap; commit; return
    attempts left.

    ``spent`` is the failure budget used including this attempt; the attempt that spends the
    last unit is answered as usual and locks pairing from the next request on.
    """
    burns = Challenge.failed_attempts + 1 >= Challenge.max_attempts
    db.session.execute(
        update(Challenge)
        .where(Challenge.id == challenge.id)
        .values(
            failed_attempts=Challenge.failed_attempts + 1,
            state=case((burns, "burned"), else_=Challenge.state),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(challenge)
    # Read while the challenge is locked: after the commit, the next attempt may count too.
    attempts_left = max(0, challenge.max_attempts - challenge.failed_attempts)
    audit.record("pairing.failed", challenge_id=challenge.id, app_name=challenge.app_name)
    if challenge.state == "burned":
        audit.record("challenge.burned", challenge_id=challenge.id, app_name=challenge.app_name)
    db.session.commit()
    if spent >= current_app.config["AUTHSVC_PAIRING_FAILURE_BUDGET"]:
        lock_pairing()
    return attempts_left


def lock_pending(challenge_id: str) -> Challenge:
    """The challenge, locked until the redemption's transaction ends; 404/410 unless it can
    still be redeemed.

    Attempts at one challenge take turns: each sees what the previous one left (used, burned,
    the count of wrong codes), so no more codes are compared than the cap allows, and a
    finished challenge is refused before any budget is spent.
    """
    try:
        challenge = get_locked_or_404(Challenge, challenge_id, "challenge")
        if challenge.kind != "code":  # a device's key is fetched with its device code only
            raise ApiError(404, "challenge not found")
        raise_if_finished(challenge, utcnow())
    except ApiError:
        db.session.rollback()
        raise
    return challenge


def redeem_challenge(
    challenge_id: str, code: str, code_verifier: str | None
) -> tuple[ApiKey, str, Challenge]:
    """Exchange a challenge and its code for a new key; exactly once, even under races."""
    require_pairing_enabled()
    if not challenge_id or not code:
        raise ApiError(400, "bad input: challenge_id or code is empty")
    challenge = lock_pending(challenge_id)
    spent = reserve_attempt()
    if challenge.code_challenge and not verifier_matches(challenge.code_challenge, code_verifier):
        attempts_left = count_failure(challenge, spent)
        raise ApiError(400, "invalid code_verifier", attempts_left=attempts_left)
    approved = challenge.claimed_by is not None or not needs_approval()
    if not approved or not hmac.compare_digest(code.encode(), challenge.code.encode()):
        attempts_left = count_failure(challenge, spent)
        raise ApiError(400, "invalid code", attempts_left=attempts_left)
    owner = db.session.get(User, challenge.claimed_by) if challenge.claimed_by else None
    key, secret = keys.create_key(owner or users.get_owner(), challenge.app_name, "pairing")
    challenge.state, challenge.key_id = "used", key.id
    audit.record("pairing.succeeded", key_id=key.id, challenge_id=challenge.id, app_name=key.name)
    counters.reset(BUDGET)  # a success starts a fresh budget
    db.session.commit()
    return key, secret, challenge


def get_challenge(challenge_id: str) -> Challenge:
    """A challenge by id, or 404."""
    return get_or_404(Challenge, challenge_id, "challenge")


def sees_every_challenge(viewer: User) -> bool:
    """Admins, and the owner of a single-user instance, see claimed challenges too."""
    return viewer.role == "admin" or not users.is_multi_user()


def host_query(viewer: User, now: datetime) -> Select[Any]:
    """The pending challenges ``viewer`` may see: one claimed by a user is invisible to
    everyone else but admins (SPEC §4)."""
    query = pending_query(now)
    if sees_every_challenge(viewer):
        return query
    return query.where(or_(Challenge.claimed_by.is_(None), Challenge.claimed_by == viewer.id))


def is_visible(challenge: Challenge, viewer: User) -> bool:
    """Whether ``viewer`` may see one loaded challenge (the rule of :func:`host_query`)."""
    return challenge.claimed_by in (None, viewer.id) or sees_every_challenge(viewer)


def finish_by_host(challenge_id: str, actor: User, **values: Any) -> Challenge:
    """Change a still-pending challenge atomically, or answer 404/409/410.

    The UPDATE itself re-checks that the challenge is pending and, unless the actor sees
    every challenge, still unclaimed by anybody else, so a claim that lands first wins.
    """
    challenge = get_challenge(challenge_id)
    if not is_visible(challenge, actor):
        raise ApiError(404, "challenge not found")
    now = utcnow()
    raise_if_finished(challenge, now)
    condition = still_pending(challenge_id, now)
    if "claimed_by" in values or not sees_every_challenge(actor):
        condition.append(or_(Challenge.claimed_by.is_(None), Challenge.claimed_by == actor.id))
    result = db.session.execute(
        update(Challenge)
        .where(*condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(challenge)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        if not is_visible(challenge, actor):
            raise ApiError(404, "challenge not found")
        raise_if_finished(challenge, now)
        raise ApiError(409, "challenge already claimed by another user")
    return challenge


def deny_challenge(challenge_id: str, actor: User) -> None:
    """The host refuses a challenge."""
    challenge = finish_by_host(challenge_id, actor, state="denied")
    audit.record("challenge.denied", actor_id=actor.id, challenge_id=challenge.id)
    db.session.commit()


def claim_challenge(challenge_id: str, actor: User) -> Challenge:
    """A host user approves a challenge; the key will be theirs and only they see the code."""
    if get_challenge(challenge_id).kind != "code":
        raise ApiError(409, "a device request is approved with the code the app shows")
    challenge = finish_by_host(challenge_id, actor, claimed_by=actor.id)
    audit.record("challenge.claimed", actor_id=actor.id, challenge_id=challenge.id)
    db.session.commit()
    return challenge


def challenge_for_host(challenge: Challenge, viewer: User, now: datetime) -> dict[str, Any]:
    """A pending challenge for the host; in multi-user mode only the claimer sees the code."""
    show_code = challenge.kind == "code" and (
        not users.is_multi_user() or challenge.claimed_by == viewer.id
    )
    return {
        "challenge_id": challenge.id,
        "kind": challenge.kind,
        "scope": challenge.scope,
        "app_name": challenge.app_name,
        "created_at": iso(challenge.created_at),
        "expires_at": iso(challenge.expires_at),
        "attempts_left": max(0, challenge.max_attempts - challenge.failed_attempts),
        "client_ip": challenge.client_ip,
        "user_agent": challenge.user_agent,
        "origin": challenge.origin,
        "claimed_by": challenge.claimed_by,
        "code": challenge.code if show_code else None,
    }
