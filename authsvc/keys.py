"""API keys: creation, lookup by secret, revocation (SPEC §3)."""

from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from . import audit, tokens
from .clock import iso, utcnow
from .extensions import db
from .models import ApiKey, User


def key_prefix() -> str:
    """The configured prefix that starts every key."""
    return str(current_app.config["AUTHSVC_KEY_PREFIX"])


def create_key(
    owner: User,
    name: str,
    created_via: str,
    *,
    actor_id: str | None = None,
    organization_id: str | None = None,
    expires_at: datetime | None = None,
    **restrictions: Any,
) -> tuple[ApiKey, str]:
    """Add a new key to the current transaction; return it with its secret (shown once)."""
    secret = tokens.generate(key_prefix())
    key = ApiKey(
        name=name,
        digest=tokens.digest(secret),
        display=tokens.display(secret, key_prefix()),
        owner_id=owner.id,
        organization_id=organization_id,
        expires_at=expires_at,
        created_via=created_via,
        **restrictions,
    )
    db.session.add(key)
    db.session.flush()
    audit.record(
        "key.created",
        actor_id=actor_id,
        subject_user_id=owner.id,
        key_id=key.id,
        name=name,
        created_via=created_via,
    )
    return key, secret


def find_by_secret(secret: str) -> ApiKey | None:
    """The key whose digest matches; malformed secrets never reach the database."""
    if not tokens.is_well_formed(secret, key_prefix()):
        return None
    return db.session.scalar(select(ApiKey).where(ApiKey.digest == tokens.digest(secret)))


def is_revoked(key: ApiKey) -> bool:
    """Revocation may be scheduled (rotation grace), so compare with now."""
    return key.revoked_at is not None and key.revoked_at <= utcnow()


def is_expired(key: ApiKey) -> bool:
    """Whether the key's expiry has passed."""
    return key.expires_at is not None and key.expires_at <= utcnow()


def revoke(key: ApiKey, actor_id: str | None, at: datetime | None = None) -> None:
    """Revoke now (or at ``at``) and commit."""
    key.revoked_at = at or utcnow()
    audit.record(
        "key.revoked",
        actor_id=actor_id,
        subject_user_id=key.owner_id,
        key_id=key.id,
        effective_at=iso(key.revoked_at),
    )
    db.session.commit()


def key_to_dict(key: ApiKey) -> dict[str, Any]:
    """The key resource, without any secret."""
    return {
        "object": "api_key",
        "id": key.id,
        "name": key.name,
        "display": key.display,
        "owner": key.owner_id,
        "organization": key.organization_id,
        "allowed_endpoints": key.allowed_endpoints,
        "allowed_ips": key.allowed_ips,
        "rate_limit": key.rate_limit,
        "enabled": key.enabled,
        "meta": key.meta or {},
        "created_at": iso(key.created_at),
        "created_via": key.created_via,
        "expires_at": iso(key.expires_at),
        "last_used_at": iso(key.last_used_at),
        "last_used_ip": key.last_used_ip,
        "revoked_at": iso(key.revoked_at),
    }
