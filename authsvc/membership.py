"""Membership shared by groups and organizations: one implementation for both."""

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from . import audit
from .database import get_or_404
from .errors import ApiError
from .extensions import db
from .models import User


def member_ids(table: Any, parent_column: str, parent_id: str) -> list[str]:
    """User ids of a group's or organization's members, in a stable order."""
    column = getattr(table, parent_column)
    query = select(table.user_id).where(column == parent_id).order_by(table.user_id)
    return list(db.session.scalars(query))


def add_member(
    table: Any, parent_column: str, parent_id: str, user_id: str, event: str, actor_id: str
) -> None:
    """Add a user (404 if unknown; adding twice changes nothing) and record ``event``."""
    get_or_404(User, user_id, "user")
    if user_id in member_ids(table, parent_column, parent_id):
        return
    db.session.add(table(**{parent_column: parent_id, "user_id": user_id}))
    audit.record(event, actor_id=actor_id, subject_user_id=user_id, **{parent_column: parent_id})
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if user_id not in member_ids(table, parent_column, parent_id):
            raise  # not a concurrent add of the same member: a real fault, never hidden
        # Added concurrently: the outcome is the same.


def remove_member(
    table: Any, parent_column: str, parent_id: str, user_id: str, event: str, actor_id: str
) -> None:
    """Remove a user; 404 if they were not a member."""
    column = getattr(table, parent_column)
    result: Any = db.session.execute(
        delete(table).where(column == parent_id, table.user_id == user_id)
    )
    if not result.rowcount:
        db.session.rollback()
        raise ApiError(404, "user is not a member")
    audit.record(
        event,
        actor_id=actor_id,
        subject_user_id=user_id,
        removed=True,
        **{parent_column: parent_id},
    )
    db.session.commit()


def check_unique_name(model: Any, name: str, exclude_id: str | None = None) -> None:
    """409 when another row of ``model`` already has ``name``."""
    query = select(model.id).where(model.name == name)
    if exclude_id is not None:
        query = query.where(model.id != exclude_id)
    if db.session.scalar(query) is not None:
        raise ApiError(409, f"name {name!r} is taken")
