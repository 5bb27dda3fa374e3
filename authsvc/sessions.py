"""Login sessions: tokens signed with itsdangerous under ``JWT_SECRET`` (SPEC §5).

One session has three signed forms, each with its own salt, so none passes for another:
the token (a Bearer credential for API clients), the web pages' cookie, and the pages'
CSRF token. The cookie alone authenticates nothing: browsers send it to, and accept it
from, every port of the host. The pages hold the CSRF token in origin-bound storage and
send it as a header; only a cookie and a CSRF token naming one live session act as it.
"""

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from flask import Flask, current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit, ratelimits
from .clock import utcnow
from .errors import ApiError
from .extensions import db
from .models import AuthSession, User

SALT = "authsvc.session"
COOKIE_SALT = "authsvc.session-cookie"
CSRF_SALT = "authsvc.csrf"
COOKIE = "authsvc_session"
OWNER_TOKEN_FILE = "owner_token"
CSRF_HEADER = "X-CSRF-Token"
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """Parse ``30d``, ``8h``, ``15m``, ``45s`` or ``2w``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid duration {text!r}: use e.g. 30d, 8h, 15m")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def instance_secret(app: Flask, name: str) -> str:
    """A secret generated once into the instance folder (mode 0600, created exclusively).

    The secret is written whole into a file of its own, then linked into place, which fails
    if the name exists: processes starting together (gunicorn workers on a fresh instance)
    all read the one secret that won, never a half-written file.
    """
    path = os.path.join(app.instance_path, name)
    os.makedirs(app.instance_path, exist_ok=True)
    if not os.path.exists(path):
        fd, draft = tempfile.mkstemp(dir=app.instance_path, prefix=f".{name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as created:
                created.write(secrets.token_urlsafe(32))
            os.link(draft, path)
        except FileExistsError:
            pass  # another process linked its secret first
        finally:
            os.unlink(draft)
    with open(path) as written:
        return written.read().strip()


def jwt_secret(app: Flask) -> str:
    """``JWT_SECRET``, or one generated once into the instance folder."""
    configured = app.config["JWT_SECRET"]
    return str(configured) if configured else instance_secret(app, "jwt_secret")


def owner_password(app: Flask) -> str:
    """The single-user owner's password: ``AUTH_TOKEN``, or the generated owner token."""
    configured = app.config["AUTH_TOKEN"]
    return str(configured) if configured else instance_secret(app, OWNER_TOKEN_FILE)


class StartedSession(NamedTuple):
    """A new session's three forms and its expiry."""

    token: str
    cookie: str
    csrf_token: str
    expires_at: datetime


def serializer(salt: str = SALT) -> URLSafeSerializer:
    """The signer of one form of a session (the Bearer token by default)."""
    return URLSafeSerializer(current_app.config["AUTHSVC_JWT_SECRET"], salt=salt)


def auth_token_tag() -> str:
    """A keyed fingerprint of the owner's password: changing it ends every session."""
    password = current_app.config["AUTHSVC_OWNER_PASSWORD"]
    key = current_app.config["AUTHSVC_JWT_SECRET"].encode()
    return hmac.new(key, password.encode(), hashlib.sha256).hexdigest()[:16]


@cache
def dummy_hash() -> str:
    """A password hash to check against when the username is unknown."""
    return generate_password_hash(secrets.token_urlsafe(16))


def check_credentials(
    username: str | None, password: str, client_ip: str | None, owner: User | None
) -> User:
    """The user these credentials belong to, or 401; 429 while failures are over the limit.

    ``owner`` is the single-user owner, who logs in with the owner password; None in
    multi-user mode, where accounts log in with their username. Failures count per client
    address and per username, reserved before the password is checked (so concurrent wrong
    passwords never get more than the limit's worth of 401s) and given back when it is right;
    while either limit holds, even the right password is refused.
    """
    limits = ratelimits.parse(current_app.config["AUTHSVC_LOGIN_RATE_LIMIT"])
    subjects: list[tuple[str, ...]] = [
        ("login-address", client_ip or "unknown"),
        ("login-user", username or ""),
    ]
    ratelimits.reserve(limits, "too many failed logins: try again later", subjects)
    if owner is None:
        user = db.session.scalar(select(User).where(User.username == (username or "")))
        # Hash even for unknown users, so timing does not reveal which usernames exist.
        stored = user.password_hash if user and user.password_hash else dummy_hash()
        valid = check_password_hash(stored, password) and bool(user and user.password_hash)
    else:
        expected = current_app.config["AUTHSVC_OWNER_PASSWORD"]
        user = owner
        valid = hmac.compare_digest(expected.encode(), password.encode())
    if not valid or user is None or user.suspended:
        audit.record("login.failed", subject_user_id=user.id if user else None, username=username)
        db.session.commit()
        raise ApiError(401, "invalid username or password")
    ratelimits.give_back(limits, subjects)
    return user


def start_session(user: User) -> StartedSession:
    """Open a session for ``user``; return its token, cookie, CSRF token and expiry."""
    expires_at = utcnow() + parse_duration(current_app.config["JWT_EXPIRY"])
    session = AuthSession(user_id=user.id, expires_at=expires_at)
    db.session.add(session)
    db.session.flush()
    audit.record("login.succeeded", actor_id=user.id, subject_user_id=user.id)
    db.session.commit()
    claims = {"sid": session.id, "tag": auth_token_tag()}
    return StartedSession(
        token=str(serializer().dumps(claims)),
        cookie=str(serializer(COOKIE_SALT).dumps(claims)),
        csrf_token=csrf_token(session),
        expires_at=expires_at,
    )


def csrf_token(session: AuthSession) -> str:
    """The pages' half of their credential: kept in origin storage, sent as a header."""
    return str(serializer(CSRF_SALT).dumps(session.id))


def csrf_session_id(token: str | None) -> str | None:
    """The session id a CSRF token names, or None if it is missing or forged."""
    try:
        session_id = serializer(CSRF_SALT).loads(token) if token else None
    except BadSignature:
        return None
    return session_id if isinstance(session_id, str) else None


def is_session_token(token: str) -> bool:
    """Whether ``token`` is a genuine session token (live or not), for clearer refusals."""
    try:
        serializer().loads(token)
    except BadSignature:
        return False
    return True


def resolve(token: str, salt: str = SALT) -> tuple[User, AuthSession] | None:
    """The live session a token (or, with ``COOKIE_SALT``, a cookie) names, or None if it is
    forged, ended, expired or orphaned."""
    try:
        payload = serializer(salt).loads(token)
    except BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("tag") != auth_token_tag():
        return None
    session = db.session.get(AuthSession, payload.get("sid"))
    if session is None or session.ended_at is not None or session.expires_at <= utcnow():
        return None
    user = db.session.get(User, session.user_id)
    if user is None or user.suspended:
        return None
    return user, session


def end_session(session: AuthSession) -> None:
    """Log out one session."""
    session.ended_at = utcnow()
    db.session.commit()


def end_user_sessions(user_id: str) -> None:
    """End every session of a user (in the caller's transaction)."""
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def init_app(app: Flask) -> None:
    """Check the session settings at start: a bad value refuses to start."""
    secret = jwt_secret(app)
    if len(secret) < 12:
        raise RuntimeError("JWT_SECRET must be at least 12 characters long")
    parse_duration(app.config["JWT_EXPIRY"])
    app.config["AUTHSVC_JWT_SECRET"] = secret
    app.config["AUTHSVC_OWNER_PASSWORD"] = owner_password(app)
