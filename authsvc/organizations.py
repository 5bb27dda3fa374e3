"""Organizations (Anytype "spaces") and their members."""

from typing import Any

from sqlalchemy import select

from . import audit, membership
from .database import get_or_404
from .extensions import db
from .models import Organization, OrganizationMember

EVENT = "organization.changed"


def find_organization(organization_id: str) -> Organization:
    """The organization with this id, or 404."""
    return get_or_404(Organization, organization_id, "organization")


def organizations_query() -> Any:
    """Every organization, oldest first."""
    return select(Organization).order_by(Organization.created_at, Organization.id)


def save_organization(
    actor_id: str, organization: Organization | None, name: str | None, description: str | None
) -> Organization:
    """Create (``organization`` None) or change one; names are unique (409)."""
    if name is not None:
        membership.check_unique_name(Organization, name, organization.id if organization else None)
    if organization is None:
        organization = Organization(name=name, description=description or "")
        db.session.add(organization)
    else:
        if name is not None:
            organization.name = name
        if description is not None:
            organization.description = description
    db.session.flush()
    audit.record(EVENT, actor_id=actor_id, organization_id=organization.id, name=organization.name)
    db.session.commit()
    return organization


def delete_organization(actor_id: str, organization: Organization) -> None:
    """Delete an organization; keys scoped to it go with it."""
    audit.record(
        EVENT,
        actor_id=actor_id,
        organization_id=organization.id,
        name=organization.name,
        deleted=True,
    )
    db.session.delete(organization)
    db.session.commit()


def add_member(actor_id: str, organization: Organization, user_id: str) -> None:
    """Put a user into the organization."""
    membership.add_member(
        OrganizationMember, "organization_id", organization.id, user_id, EVENT, actor_id
    )


def remove_member(actor_id: str, organization: Organization, user_id: str) -> None:
    """Take a user out of the organization."""
    membership.remove_member(
        OrganizationMember, "organization_id", organization.id, user_id, EVENT, actor_id
    )


def organization_to_dict(organization: Organization) -> dict[str, Any]:
    """The organization resource."""
    return {
        "id": organization.id,
        "name": organization.name,
        "description": organization.description,
        "members": membership.member_ids(OrganizationMember, "organization_id", organization.id),
    }
