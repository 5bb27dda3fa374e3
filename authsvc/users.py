"""Users: the owner of a single-user instance, multi-user mode, roles and permissions."""

import logging
from typing import Any

from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.security import generate_password_hash

from . import audit, sessions, settings
from .clock import iso
from .database import AnySession, get_or_404
from .errors import ApiError
from .extensions import db
from .models import Group, GroupMember, Organization, OrganizationMember, User

log = logging.getLogger(__name__)
ROLES = {"user": 1, "manager": 2, "admin": 3}
PERMISSIONS = ("api_keys", "verify_keys")


def get_owner() -> User:
    """The owner user, created with the "Personal" organization on first use."""
    owner = db.session.scalar(select(User).where(User.is_owner))
    if owner is not None:
        return owner
    owner = User(username="owner", role="admin", is_owner=True)
    personal = Organization(name="Personal", description="The owner's personal space")
    db.session.add_all([owner, personal])
    try:
        db.session.flush()
        db.session.add(OrganizationMember(organization_id=personal.id, user_id=owner.id))
        db.session.commit()
    except IntegrityError:  # another worker created it first
        db.session.rollback()
        owner = db.session.scalars(select(User).where(User.is_owner)).one()
    return owner


def single_user_owner() -> User | None:
    """The owner while the instance is single-user (who logs in with the owner password)."""
    return None if is_multi_user() else get_owner()


def is_multi_user() -> bool:
    """Whether the instance runs in multi-user mode."""
    return bool(settings.current()["multi_user"])


def enable_multi_user(username: str, password: str) -> User:
    """Turn the owner into the first admin with a password; one way."""
    owner = get_owner()
    owner.username = username
    owner.password_hash = generate_password_hash(password)
    owner.role = "admin"
    settings.store({"multi_user": True})
    audit.record(
        "user.updated",
        actor_id=owner.id,
        subject_user_id=owner.id,
        changes=["multi_user", "password", "role", "username"],
    )
    db.session.commit()
    return owner


def bootstrap() -> None:
    """Create the owner, and the admin of a headless multi-user start, once per process."""
    app = current_app
    if app.extensions.get("authsvc.bootstrapped"):
        return
    try:
        get_owner()
        username = app.config["AUTHSVC_ADMIN_USERNAME"]
        password = app.config["AUTHSVC_ADMIN_PASSWORD"]
        if app.config["AUTHSVC_MULTI_USER"] and not is_multi_user() and username and password:
            enable_multi_user(username, password)
    except SQLAlchemyError as error:
        # Database down or not migrated: /health says so; the next request tries again.
        log.warning("owner not set up yet: %s", getattr(error, "orig", None) or error)
        db.session.rollback()
        return
    app.extensions["authsvc.bootstrapped"] = True


def has_permission(user: User, permission: str) -> bool:
    """Admins have all; otherwise any granting group, else the instance defaults."""
    defaults = settings.current()["default_permissions"]
    return permission in granted_permissions(db.session, user, defaults)


def granted_permissions(
    session: AnySession, user: User, default_permissions: dict[str, bool]
) -> frozenset[str]:
    """Every permission the user has: admins all; others their groups', else the defaults."""
    if user.role == "admin":
        return frozenset(PERMISSIONS)
    granted: set[str] = set()
    for permissions in session.scalars(
        select(Group.permissions)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user.id)
    ):
        granted.update(name for name in PERMISSIONS if permissions.get(name))
    return frozenset(
        name for name in PERMISSIONS if name in granted or default_permissions.get(name, False)
    )


def organization_ids(user: User, session: AnySession | None = None) -> list[str]:
    """Ids of the organizations the user belongs to."""
    return list(
        (session or db.session).scalars(
            select(OrganizationMember.organization_id).where(OrganizationMember.user_id == user.id)
        )
    )


def find_user(user_id: str) -> User:
    """The user with this id, or 404."""
    return get_or_404(User, user_id, "user")


def users_query() -> Any:
    """Every user, oldest first."""
    return select(User).order_by(User.created_at, User.id)


def check_may_manage(actor: User, target_role: str) -> None:
    """Admins manage anyone; managers only ``user`` accounts (SPEC §6), else 403.

    A manager acting on another manager could take over that account (reset its password),
    and through it every account it manages: so managers never reach their own rank.
    """
    if ROLES.get(actor.role, 0) >= ROLES["admin"]:
        return
    if ROLES.get(actor.role, 0) < ROLES["manager"] or target_role != "user":
        raise ApiError(403, "managers may act only on user accounts")


def check_not_last_admin(user: User) -> None:
    """409 when ``user`` is the last active admin."""
    if user.role != "admin" or user.suspended:
        return
    others = db.session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.suspended.is_(False), User.id != user.id)
    )
    if not others:
        raise ApiError(409, "the last active admin cannot be demoted, suspended or deleted")


def create_user(actor: User, username: str, password: str, role: str = "user") -> User:
    """Add an account; duplicate usernames are 409."""
    check_may_manage(actor, role)
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ApiError(409, f"username {username!r} is taken")
    user = User(username=username, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError as error:  # a concurrent create won the race
        db.session.rollback()
        raise ApiError(409, f"username {username!r} is taken") from error
    audit.record(
        "user.created", actor_id=actor.id, subject_user_id=user.id, username=username, role=role
    )
    db.session.commit()
    return user


def update_user(actor: User, user: User, changes: dict[str, Any]) -> User:
    """Change ``role``, ``suspended`` and/or ``password``; suspending ends sessions."""
    check_may_manage(actor, user.role)
    if "role" in changes:
        check_may_manage(actor, changes["role"])
    demoted = changes.get("role", user.role) != "admin"
    if demoted or changes.get("suspended") is True:
        check_not_last_admin(user)
    if "role" in changes:
        user.role = changes["role"]
    if "suspended" in changes:
        user.suspended = changes["suspended"]
    if "password" in changes:
        user.password_hash = generate_password_hash(changes["password"])
    if user.suspended or "password" in changes:
        sessions.end_user_sessions(user.id)
    audit.record(
        "user.updated", actor_id=actor.id, subject_user_id=user.id, changes=sorted(changes)
    )
    db.session.commit()
    return user


def delete_user(actor: User, user: User) -> None:
    """Delete an account; its keys, sessions and memberships go with it."""
    check_may_manage(actor, user.role)
    check_not_last_admin(user)
    if user.is_owner:
        raise ApiError(409, "the instance owner cannot be deleted")
    sessions.end_user_sessions(user.id)
    audit.record("user.deleted", actor_id=actor.id, subject_user_id=user.id, username=user.username)
    db.session.delete(user)
    db.session.commit()


def user_to_dict(user: User) -> dict[str, Any]:
    """The user resource."""
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "suspended": user.suspended,
        "created_at": iso(user.created_at),
    }


def init_app(app: Flask) -> None:
    """Bootstrap lazily, so the factory itself never touches the database."""
    app.before_request(bootstrap)
