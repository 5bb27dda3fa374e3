"""Small factories for the key tests: users, keys and row counts, made through the models."""

from typing import Any

from flask import Flask
from sqlalchemy import func, select

from authsvc import keys, settings, users
from authsvc.extensions import db
from authsvc.models import (
    ApiKey,
    AuditEvent,
    Group,
    GroupMember,
    Organization,
    OrganizationMember,
    User,
)


def make_user(app: Flask, username: str = "alice", role: str = "user", **permissions: bool) -> str:
    """A user in the Personal organization; permissions become a group of their own."""
    with app.app_context():
        users.get_owner()  # creates the Personal organization on first use
        personal = db.session.scalars(
            select(Organization).where(Organization.name == "Personal")
        ).one()
        user = User(username=username, role=role)
        db.session.add(user)
        db.session.flush()
        db.session.add(OrganizationMember(organization_id=personal.id, user_id=user.id))
        if permissions:
            group = Group(name=f"{username}-group", permissions=permissions)
            db.session.add(group)
            db.session.flush()
            db.session.add(GroupMember(group_id=group.id, user_id=user.id))
        db.session.commit()
        return user.id


def make_org(app: Flask, name: str, *member_ids: str) -> str:
    """An organization with the given members."""
    with app.app_context():
        org = Organization(name=name)
        db.session.add(org)
        db.session.flush()
        for member in member_ids:
            db.session.add(OrganizationMember(organization_id=org.id, user_id=member))
        db.session.commit()
        return org.id


def owner_id(app: Flask) -> str:
    with app.app_context():
        return users.get_owner().id


def make_key(app: Flask, user_id: str, name: str = "test key", **fields: Any) -> tuple[str, str]:
    """A key for a user, straight through the keys module; returns (id, secret).

    Like a key a person makes for themselves, it may call the API and manage unless told.
    """
    fields.setdefault("scopes", ["api", "manage"])
    with app.app_context():
        key, secret = keys.create_key(db.session.get_one(User, user_id), name, "manual", **fields)
        db.session.commit()
        return key.id, secret


def change_key(app: Flask, key_id: str, **values: Any) -> None:
    with app.app_context():
        key = db.session.get_one(ApiKey, key_id)
        for name, value in values.items():
            setattr(key, name, value)
        db.session.commit()


def suspend(app: Flask, user_id: str) -> None:
    with app.app_context():
        db.session.get_one(User, user_id).suspended = True
        db.session.commit()


def store_settings(app: Flask, **values: Any) -> None:
    with app.app_context():
        settings.store(values)
        db.session.commit()


def counts(app: Flask) -> tuple[int, int]:
    """Rows of keys and audit events: what a refused request must not change."""
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).select_from(ApiKey)) or 0,
            db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


def audit_types(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.type).order_by(AuditEvent.id)))
