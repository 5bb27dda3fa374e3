"""Groups: named sets of users that grant feature permissions (SPEC §5)."""

from typing import Any

from sqlalchemy import select

from . import audit, membership
from .database import get_or_404
from .extensions import db
from .models import Group, GroupMember

EVENT = "group.changed"


def find_group(group_id: str) -> Group:
    """The group with this id, or 404."""
    return get_or_404(Group, group_id, "group")


def groups_query() -> Any:
    """Every group, oldest first."""
    return select(Group).order_by(Group.created_at, Group.id)


def save_group(
    actor_id: str, group: Group | None, name: str | None, permissions: dict[str, bool] | None
) -> Group:
    """Create (``group`` None) or change a group; names are unique (409)."""
    if name is not None:
        membership.check_unique_name(Group, name, group.id if group else None)
    if group is None:
        group = Group(name=name, permissions={"api_keys": False, "verify_keys": False})
        db.session.add(group)
    elif name is not None:
        group.name = name
    if permissions is not None:
        group.permissions = {**group.permissions, **permissions}
    db.session.flush()
    audit.record(EVENT, actor_id=actor_id, group_id=group.id, name=group.name)
    db.session.commit()
    return group


def delete_group(actor_id: str, group: Group) -> None:
    """Delete a group; its members lose what it granted at once."""
    audit.record(EVENT, actor_id=actor_id, group_id=group.id, name=group.name, deleted=True)
    db.session.delete(group)
    db.session.commit()


def add_member(actor_id: str, group: Group, user_id: str) -> None:
    """Put a user into the group."""
    membership.add_member(GroupMember, "group_id", group.id, user_id, EVENT, actor_id)


def remove_member(actor_id: str, group: Group, user_id: str) -> None:
    """Take a user out of the group."""
    membership.remove_member(GroupMember, "group_id", group.id, user_id, EVENT, actor_id)


def group_to_dict(group: Group) -> dict[str, Any]:
    """The group resource."""
    permissions = group.permissions or {}
    return {
        "id": group.id,
        "name": group.name,
        "permissions": {
            "api_keys": bool(permissions.get("api_keys")),
            "verify_keys": bool(permissions.get("verify_keys")),
        },
        "members": membership.member_ids(GroupMember, "group_id", group.id),
    }
