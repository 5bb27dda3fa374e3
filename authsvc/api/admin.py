"""Admin endpoints: users, groups, organizations and their members (multi-user mode)."""

from collections.abc import Callable
from typing import Any, Literal

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field, StrictBool, StrictStr

from .. import groups, organizations, users
from ..auth import require_admin_api
from ..listing import PageQuery, page
from .resources import (
    GroupList,
    GroupResource,
    OrganizationList,
    OrganizationResource,
    UserList,
    UserResource,
)
from .schemas import NO_CONTENT, SECURITY, IdPath, Name, Responses, errors, ok

api = APIBlueprint("admin", __name__, abp_tags=[Tag(name="admin")])
ERRORS = errors(400, 401, 403, 404, 409)
DELETED = {**NO_CONTENT, **ERRORS}


def created_as(resource: type[BaseModel]) -> Responses:
    """A 201 answering ``resource``, besides the errors."""
    return {201: resource, **ERRORS}


Role = Literal["admin", "manager", "user"]
Password = Field(min_length=1, max_length=1024)


class UserCreate(BaseModel):
    username: Name
    password: StrictStr = Password
    role: Role = "user"


class UserPatch(BaseModel):
    role: Role | None = None
    suspended: StrictBool | None = None
    password: StrictStr | None = Field(None, min_length=1, max_length=1024)


class Permissions(BaseModel):
    api_keys: StrictBool | None = None
    verify_keys: StrictBool | None = None


class GroupCreate(BaseModel):
    name: Name
    permissions: Permissions = Permissions()


class GroupPatch(BaseModel):
    name: Name | None = None
    permissions: Permissions | None = None


class OrganizationCreate(BaseModel):
    name: Name
    description: StrictStr = Field("", max_length=512)


class OrganizationPatch(BaseModel):
    name: Name | None = None
    description: StrictStr | None = Field(None, max_length=512)


class MemberBody(BaseModel):
    user_id: StrictStr = Field(min_length=1, max_length=40)


class MemberPath(BaseModel):
    id: str
    user_id: str


def granted(permissions: Permissions | None) -> dict[str, bool] | None:
    """The permission flags that were actually sent."""
    return None if permissions is None else permissions.model_dump(exclude_none=True)


# Users: managers may act on user accounts only (users.check_may_manage).


@api.get("/v1/admin/users", security=SECURITY, responses=ok(UserList, ERRORS))
def list_users(query: PageQuery) -> dict[str, Any]:
    """Every account."""
    require_admin_api("manager")
    return page(users.users_query(), query, users.user_to_dict)


@api.post("/v1/admin/users", security=SECURITY, responses=created_as(UserResource))
def create_user(body: UserCreate) -> tuple[dict[str, Any], int]:
    """Create an account."""
    caller = require_admin_api("manager")
    user = users.create_user(caller.user, body.username, body.password, body.role)
    return users.user_to_dict(user), 201


@api.get("/v1/admin/users/<id>", security=SECURITY, responses=ok(UserResource, ERRORS))
def get_user(path: IdPath) -> dict[str, Any]:
    """One account."""
    require_admin_api("manager")
    return users.user_to_dict(users.find_user(path.id))


@api.patch("/v1/admin/users/<id>", security=SECURITY, responses=ok(UserResource, ERRORS))
def patch_user(path: IdPath, body: UserPatch) -> dict[str, Any]:
    """Change an account's role, suspension or password."""
    caller = require_admin_api("manager")
    user = users.find_user(path.id)
    changes = body.model_dump(exclude_none=True)
    return users.user_to_dict(users.update_user(caller.user, user, changes))


@api.delete("/v1/admin/users/<id>", security=SECURITY, responses=DELETED)
def delete_user(path: IdPath) -> tuple[str, int]:
    """Delete an account; its keys and sessions stop at once."""
    caller = require_admin_api("manager")
    users.delete_user(caller.user, users.find_user(path.id))
    return "", 204


# Groups


@api.get("/v1/admin/groups", security=SECURITY, responses=ok(GroupList, ERRORS))
def list_groups(query: PageQuery) -> dict[str, Any]:
    """Every group with its permissions and members."""
    require_admin_api()
    return page(groups.groups_query(), query, groups.group_to_dict)


@api.post("/v1/admin/groups", security=SECURITY, responses=created_as(GroupResource))
def create_group(body: GroupCreate) -> tuple[dict[str, Any], int]:
    """Create a group."""
    caller = require_admin_api()
    group = groups.save_group(caller.user.id, None, body.name, granted(body.permissions))
    return groups.group_to_dict(group), 201


@api.get("/v1/admin/groups/<id>", security=SECURITY, responses=ok(GroupResource, ERRORS))
def get_group(path: IdPath) -> dict[str, Any]:
    """One group."""
    require_admin_api()
    return groups.group_to_dict(groups.find_group(path.id))


@api.patch("/v1/admin/groups/<id>", security=SECURITY, responses=ok(GroupResource, ERRORS))
def patch_group(path: IdPath, body: GroupPatch) -> dict[str, Any]:
    """Rename a group or change what it grants."""
    caller = require_admin_api()
    group = groups.find_group(path.id)
    saved = groups.save_group(caller.user.id, group, body.name, granted(body.permissions))
    return groups.group_to_dict(saved)


@api.delete("/v1/admin/groups/<id>", security=SECURITY, responses=DELETED)
def delete_group(path: IdPath) -> tuple[str, int]:
    """Delete a group."""
    caller = require_admin_api()
    groups.delete_group(caller.user.id, groups.find_group(path.id))
    return "", 204


# Organizations


@api.get("/v1/admin/organizations", security=SECURITY, responses=ok(OrganizationList, ERRORS))
def list_organizations(query: PageQuery) -> dict[str, Any]:
    """Every organization with its members."""
    require_admin_api()
    return page(organizations.organizations_query(), query, organizations.organization_to_dict)


@api.post("/v1/admin/organizations", security=SECURITY, responses=created_as(OrganizationResource))
def create_organization(body: OrganizationCreate) -> tuple[dict[str, Any], int]:
    """Create an organization (a space)."""
    caller = require_admin_api()
    created = organizations.save_organization(caller.user.id, None, body.name, body.description)
    return organizations.organization_to_dict(created), 201


@api.get(
    "/v1/admin/organizations/<id>", security=SECURITY, responses=ok(OrganizationResource, ERRORS)
)
def get_organization(path: IdPath) -> dict[str, Any]:
    """One organization."""
    require_admin_api()
    return organizations.organization_to_dict(organizations.find_organization(path.id))


@api.patch(
    "/v1/admin/organizations/<id>", security=SECURITY, responses=ok(OrganizationResource, ERRORS)
)
def patch_organization(path: IdPath, body: OrganizationPatch) -> dict[str, Any]:
    """Rename or describe an organization."""
    caller = require_admin_api()
    found = organizations.find_organization(path.id)
    saved = organizations.save_organization(caller.user.id, found, body.name, body.description)
    return organizations.organization_to_dict(saved)


@api.delete("/v1/admin/organizations/<id>", security=SECURITY, responses=DELETED)
def delete_organization(path: IdPath) -> tuple[str, int]:
    """Delete an organization; keys scoped to it go with it."""
    caller = require_admin_api()
    organizations.delete_organization(caller.user.id, organizations.find_organization(path.id))
    return "", 204


# Members: one pair of views for groups and organizations alike.


def member_views(
    kind: str,
    find: Callable[[str], Any],
    module: Any,
    render: Callable[[Any], dict[str, Any]],
    resource: type[BaseModel],
) -> None:
    """Register ``POST .../members`` and ``DELETE .../members/{user_id}`` for ``kind``."""

    def add(path: IdPath, body: MemberBody) -> tuple[dict[str, Any], int]:
        """Add a member; answers the whole object."""
        caller = require_admin_api()
        parent = find(path.id)
        module.add_member(caller.user.id, parent, body.user_id)
        return render(parent), 201

    def remove(path: MemberPath) -> tuple[str, int]:
        """Remove a member."""
        caller = require_admin_api()
        module.remove_member(caller.user.id, find(path.id), path.user_id)
        return "", 204

    add.__name__ = f"add_{kind}_member"  # Flask names endpoints after the function
    remove.__name__ = f"remove_{kind}_member"
    base = f"/v1/admin/{kind}/<id>/members"
    api.post(
        base, security=SECURITY, responses=created_as(resource), operation_id=f"add_{kind}_member"
    )(add)
    api.delete(
        f"{base}/<user_id>",
        security=SECURITY,
        responses=DELETED,
        operation_id=f"remove_{kind}_member",
    )(remove)


member_views("groups", groups.find_group, groups, groups.group_to_dict, GroupResource)
member_views(
    "organizations",
    organizations.find_organization,
    organizations,
    organizations.organization_to_dict,
    OrganizationResource,
)
