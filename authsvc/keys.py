"""API keys: creation, lookup, listing, changes, rotation and revocation (SPEC §3)."""

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from . import audit, keycache, keyfields, settings, tokens, usage_limits, users
from .clock import iso, utcnow
from .database import lock, serialize
from .errors import ApiError
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
    usage_limit = restrictions.pop("usage_limit", None)
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
    if usage_limit is not None:
        usage_limits.set_limit(key, usage_limit)
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


def is_active_clause() -> ColumnElement[bool]:
    """SQL for "not revoked yet" (a scheduled revocation still lies ahead)."""
    return or_(ApiKey.revoked_at.is_(None), ApiKey.revoked_at > utcnow())


def mark_revoked(key: ApiKey, actor_id: str | None, at: datetime | None = None) -> bool:
    """Revoke now (or at ``at``) within the current transaction, unless revoked by then already.

    One conditional UPDATE, so a later revocation (a rotation's grace) never replaces an
    earlier one, whatever runs concurrently; returns whether this call revoked the key.
    """
    when = at or utcnow()
    earlier = or_(ApiKey.revoked_at.is_(None), ApiKey.revoked_at > when)
    if not set_revoked_at(key, when, earlier):
        return False
    record_revocation(key, actor_id, when)
    return True


def record_revocation(key: ApiKey, actor_id: str | None, when: datetime) -> None:
    """The audit event of a revocation taking effect at ``when``."""
    audit.record(
        "key.revoked",
        actor_id=actor_id,
        subject_user_id=key.owner_id,
        key_id=key.id,
        effective_at=iso(when),
    )


def set_revoked_at(key: ApiKey, when: datetime, condition: ColumnElement[bool]) -> bool:
    """Set ``revoked_at`` where ``condition`` holds for the stored row; reload the key."""
    result = db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id, condition)
        .values(revoked_at=when)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(key)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def require_manageable(key: ApiKey, parent: ApiKey | None) -> None:
    """A key may manage only keys no wider than itself (403); sessions manage any of theirs."""
    if parent is not None:
        keyfields.require_within(parent, keyfields.fields_of(key))


def revoke(
    key: ApiKey, actor_id: str | None, at: datetime | None = None, parent: ApiKey | None = None
) -> None:
    """Revoke now (or at ``at``) and commit; a key already revoked stays as it is."""
    require_manageable(key, parent)
    mark_revoked(key, actor_id, at)
    db.session.commit()


def owned_query(owner_id: str | None = None) -> Select[Any]:
    """Keys newest first: one owner's, or everybody's."""
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    return query if owner_id is None else query.where(ApiKey.owner_id == owner_id)


def get_key(key_id: str, owner: User | None = None) -> ApiKey:
    """A key by id, only among ``owner``'s when given: another user's key is 404, never 403."""
    key = db.session.get(ApiKey, key_id)
    if key is None or (owner is not None and key.owner_id != owner.id):
        raise ApiError(404, "api key not found")
    return key


def check_organization(owner: User, organization_id: str | None) -> None:
    """A key may only be scoped to an organization its owner belongs to."""
    if organization_id is not None and organization_id not in users.organization_ids(owner):
        raise ApiError(404, "organization not found")


def require_may_create(user: User) -> None:
    """Creating keys needs the ``api_keys`` permission."""
    if not users.has_permission(user, "api_keys"):
        raise ApiError(403, "you lack the api_keys permission")


def issue_key(
    owner: User,
    fields: dict[str, Any],
    created_via: str,
    actor_id: str | None,
    parent: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Validate and create a key for ``owner``, narrowed to ``parent`` when a key asks; commit.

    A key made by a key counts against its creator's rate limit too (see ``auth``).
    """
    if parent is not None:
        fields = keyfields.inherit(parent, fields)
        keyfields.require_within(parent, fields)
        fields = {**fields, "created_by_key_id": parent.id}
    check_organization(owner, fields.get("organization_id"))
    one_per_organization = settings.current()["one_key_per_organization"]
    if fields.get("organization_id") and one_per_organization:
        # Two racing creations must not both survive: the second waits, then revokes the first.
        serialize(f"one-key:{owner.id}:{fields['organization_id']}")
    values = dict(fields)
    key, secret = create_key(owner, values.pop("name"), created_via, actor_id=actor_id, **values)
    if key.organization_id is not None and one_per_organization:
        previous = select(ApiKey).where(
            ApiKey.owner_id == owner.id,
            ApiKey.organization_id == key.organization_id,
            ApiKey.id != key.id,
            is_active_clause(),
        )
        for old in db.session.scalars(previous):
            mark_revoked(old, actor_id)
    db.session.commit()
    return key, secret


def update_key(
    key: ApiKey, changes: dict[str, Any], actor_id: str | None, parent: ApiKey | None = None
) -> ApiKey:
    """Apply validated changes, narrowed to ``parent`` when a key asks; commit.

    The row is locked and reread first, so the checks see what concurrent changes left.
    """
    require_manageable(key, parent)
    if not changes:
        return key
    lock(key)
    if is_revoked(key):
        db.session.rollback()
        raise ApiError(409, "api key already revoked")
    if parent is not None:
        keyfields.require_within(parent, {**keyfields.fields_of(key), **changes})
    if "organization_id" in changes:
        check_organization(db.session.get_one(User, key.owner_id), changes["organization_id"])
    for name, value in changes.items():
        if name == "usage_limit":
            usage_limits.set_limit(key, value)
        else:
            setattr(key, name, value)
    audit.record(
        "key.updated",
        actor_id=actor_id,
        subject_user_id=key.owner_id,
        key_id=key.id,
        fields=sorted(changes),
    )
    db.session.commit()
    return key


def rotate_key(
    key: ApiKey, grace_seconds: int, actor_id: str | None, parent: ApiKey | None = None
) -> tuple[ApiKey, str]:
    """A new key with the same fields; the old one is revoked now or after the grace; commit.

    The old key's revocation is claimed first with a conditional UPDATE: of concurrent
    rotations of one key exactly one wins (the others answer 409), and a key revoked first is
    never rotated, so its revocation is never postponed by a grace.
    """
    require_manageable(key, parent)
    revoke_at = utcnow() + timedelta(seconds=grace_seconds)
    if not set_revoked_at(key, revoke_at, ApiKey.revoked_at.is_(None)):
        db.session.rollback()
        raise ApiError(409, "api key already revoked")
    # The successor counts against the same creator's rate limit: rotating is no way out.
    fields = {**keyfields.fields_of(key), "created_by_key_id": key.created_by_key_id}
    owner = db.session.get_one(User, key.owner_id)
    new_key, secret = create_key(owner, fields.pop("name"), "rotation", actor_id=actor_id, **fields)
    usage_limits.carry_over(key, new_key)
    record_revocation(key, actor_id, revoke_at)
    audit.record(
        "key.rotated",
        actor_id=actor_id,
        subject_user_id=key.owner_id,
        key_id=key.id,
        new_key_id=new_key.id,
        grace_seconds=grace_seconds,
    )
    db.session.commit()
    return new_key, secret


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
        "usage_limit": usage_limits.describe(key),
        "enabled": key.enabled,
        "meta": key.meta or {},
        "scopes": key.scopes,
        "created_at": iso(key.created_at),
        "created_via": key.created_via,
        "expires_at": iso(key.expires_at),
        "last_used_at": iso(key.last_used_at),
        "last_used_ip": key.last_used_ip,
        "revoked_at": iso(key.revoked_at),
    }


def record_use(key: ApiKey, when: datetime, since: datetime, client_ip: str | None) -> None:
    """Record a use unless any worker recorded one after ``since``; commit; show it on ``key``
    (a row the key cache keeps, so it is set as committed, never flushed again)."""
    db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.last_used_at.is_(None) | (ApiKey.last_used_at <= since))
        .values(last_used_at=when, last_used_ip=client_ip)
        .execution_options(synchronize_session=False, **{keycache.RECORDS_USE: True})
    )
    db.session.commit()
    set_committed_value(key, "last_used_at", when)
    set_committed_value(key, "last_used_ip", client_ip)
