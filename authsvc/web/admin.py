"""Admin pages: users, groups, organizations, every key, settings and the audit log."""

from flask import render_template

from .. import audit, groups, keys, organizations, settings, users
from ..api.admin_keys import key_with_owner
from ..api.settings import AuditQuery, audit_page
from ..extensions import db
from . import key_row, organization_names, paged, query_args, require_page_role, web


def usernames() -> dict[str, str]:
    """Every user's name by id, to show members and actors by name."""
    return {user.id: user.username for user in db.session.scalars(users.users_query())}


@web.get("/admin/users")
def admin_users() -> str:
    """Every account, with the forms that create and change them."""
    require_page_role("manager", multi_user_only=True)
    return render_template("admin/users.html", users=paged(users.users_query(), users.user_to_dict))


@web.get("/admin/groups")
def admin_groups() -> str:
    """Groups, what they grant, and their members."""
    require_page_role("admin", multi_user_only=True)
    return render_template(
        "admin/groups.html",
        groups=paged(groups.groups_query(), groups.group_to_dict),
        usernames=usernames(),
    )


@web.get("/admin/organizations")
def admin_organizations() -> str:
    """Organizations (spaces) and their members."""
    require_page_role("admin", multi_user_only=True)
    return render_template(
        "admin/organizations.html",
        organizations=paged(
            organizations.organizations_query(), organizations.organization_to_dict
        ),
        usernames=usernames(),
    )


@web.get("/admin/keys")
def admin_keys() -> str:
    """Every user's keys with their owners."""
    require_page_role("admin", multi_user_only=True)
    return render_template(
        "admin/keys.html",
        keys=paged(keys.owned_query(), lambda key: {**key_with_owner(key), **key_row(key)}),
        organization_names=organization_names(),
    )


@web.get("/admin/settings")
def admin_settings() -> str:
    """The instance settings as one form."""
    require_page_role("admin")
    return render_template("admin/settings.html", settings=settings.public())


@web.get("/admin/audit")
def admin_audit() -> str:
    """The audit log, newest first, with filters and paging."""
    require_page_role("admin")
    query = query_args(AuditQuery)
    return render_template(
        "admin/audit.html",
        events=audit_page(query),
        filters=query,
        event_types=audit.EVENT_TYPES,
        usernames=usernames(),
    )
