"""Users: the owner of a single-user instance, multi-user mode, roles and permissions."""

from typing import Any

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.security import generate_password_hash

from . import settings
from .clock import iso
from .extensions import db
from .models import Group, GroupMember, Organization, OrganizationMember, User

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
    except SQLAlchemyError:
        db.session.rollback()  # database down or not migrated: /health will say so
        return
    app.extensions["authsvc.bootstrapped"] = True


def has_permission(user: User, permission: str) -> bool:
    """Admins have all; otherwise any granting group, else the instance defaults."""
    if user.role == "admin":
        return True
    granting = db.session.scalars(
        select(Group.permissions)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user.id)
    ).all()
    if any(perms.get(permission) for perms in granting):
        return True
    return bool(settings.current()["default_permissions"].get(permission, False))


def organization_ids(user: User) -> list[str]:
    """Ids of the organizations the user belongs to."""
    return list(
        db.session.scalars(
            select(OrganizationMember.organization_id).where(OrganizationMember.user_id == user.id)
        )
    )


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
