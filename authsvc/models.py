"""Database tables. Times are naive UTC, always produced by :func:`authsvc.clock.utcnow`."""

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .clock import utcnow
from .extensions import db


def new_id(prefix: str) -> str:
    """Return an opaque random id such as ``key_3f9a…``."""
    return f"{prefix}_{secrets.token_hex(12)}"


class User(db.Model):  # type: ignore[name-defined]
    """A person or service account; single-user mode has exactly one owner."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("usr"))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_owner: Mapped[bool] = mapped_column(default=False)
    suspended: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Organization(db.Model):  # type: ignore[name-defined]
    """An organization (an Anytype "space") that keys can be scoped to."""

    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("org"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrganizationMember(db.Model):  # type: ignore[name-defined]
    """Membership of a user in an organization."""

    __tablename__ = "organization_members"
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Group(db.Model):  # type: ignore[name-defined]
    """A group of users that grants feature permissions."""

    __tablename__ = "groups"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("grp"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    permissions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupMember(db.Model):  # type: ignore[name-defined]
    """Membership of a user in a group."""

    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ApiKey(db.Model):  # type: ignore[name-defined]
    """An API key; only the SHA-256 digest of the secret is stored."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    name: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    display: Mapped[str] = mapped_column(String(40))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    allowed_endpoints: Mapped[list[str] | None] = mapped_column(JSON)
    allowed_ips: Mapped[list[str] | None] = mapped_column(JSON)
    rate_limit: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # A usage limit's refill ({"refill": null | {"interval", "amount"}}); what is left of it
    # lives in KeyUsageLimit, so taking one never changes this row.
    usage_limit: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["api"])
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_via: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_used_ip: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None]
    # The key that created this one (through the API): its rate limit counts this key too.
    created_by_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    # Set by a trigger from the ``keys`` counter: the order in which digests appeared.
    serial: Mapped[int | None] = mapped_column(BigInteger, index=True)

    # A user's keys, newest first; also serves every lookup by owner alone.
    __table_args__ = (Index("ix_api_keys_owner_id_created_at", "owner_id", "created_at"),)


class Challenge(db.Model):  # type: ignore[name-defined]
    """A pairing challenge: an app waits for the person to read it the code (kind ``code``),
    or shows the person a user code to type into the host's page (kind ``device``, RFC 8628).

    A device challenge keeps only the digest of its device code; the host's approval sets
    ``state`` to ``approved``, ``claimed_by`` to the approver and ``grant`` to the narrowing
    the new key gets when the app next polls.
    """

    __tablename__ = "challenges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_name: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(4))
    code_challenge: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    failed_attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    origin: Mapped[str | None] = mapped_column(String(200))
    claimed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    key_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)  # the purge
    kind: Mapped[str] = mapped_column(String(16), default="code", server_default="code")
    user_code: Mapped[str | None] = mapped_column(String(8), unique=True)
    device_code_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    scope: Mapped[str | None] = mapped_column(String(64))
    poll_interval: Mapped[int | None]
    last_polled_at: Mapped[datetime | None]
    grant: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_challenges_state_expires_at", "state", "expires_at"),)


class Counter(db.Model):  # type: ignore[name-defined]
    """A named counter changed only by atomic conditional updates (the pairing budget)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class AuthSession(db.Model):  # type: ignore[name-defined]
    """A login session; the signed token carries only its id."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ses"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Both for the purge.
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column(index=True)


class Setting(db.Model):  # type: ignore[name-defined]
    """One instance setting, stored as JSON; absent names fall back to the configuration."""

    __tablename__ = "settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class AuditEvent(db.Model):  # type: ignore[name-defined]
    """A security event. Never holds a secret."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[str | None] = mapped_column(String(40), index=True)
    subject_user_id: Mapped[str | None] = mapped_column(String(40), index=True)
    key_id: Mapped[str | None] = mapped_column(String(40), index=True)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class KeyUsage(db.Model):  # type: ignore[name-defined]
    """Requests one key made in one hour, by outcome; only the usage flush adds to it.

    No foreign key: a flush must never fail because a key was deleted meanwhile; the purge
    removes old hours whatever their key.
    """

    __tablename__ = "key_usage"
    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True, index=True)  # index: the purge
    valid: Mapped[int] = mapped_column(default=0)
    rate_limited: Mapped[int] = mapped_column(default=0)
    usage_exceeded: Mapped[int] = mapped_column(default=0)
    forbidden: Mapped[int] = mapped_column(default=0)


class KeyUsageLimit(db.Model):  # type: ignore[name-defined]
    """What is left of a key's usage limit, changed only by one atomic UPDATE per request.

    A table of its own, outside what the key cache watches: taking one never empties a cache.
    """

    __tablename__ = "key_usage_limits"
    key_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    remaining: Mapped[int]
    # The refill period ``remaining`` belongs to (None without refill).
    period_start: Mapped[datetime | None]
