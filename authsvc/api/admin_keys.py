"""Every user's keys, for admins of a multi-user instance (SPEC §6)."""

from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from .. import keyfields, keys, users
from ..auth import require_admin_api
from ..extensions import db
from ..listing import PageQuery, page
from ..models import ApiKey, User
from .key_schemas import AdminKeyCreate
from .keys import created
from .resources import KeyCreated, KeyWithOwnerList
from .schemas import NO_CONTENT, SECURITY, IdPath, errors, ok

api = APIBlueprint("admin_keys", __name__, abp_tags=[Tag(name="admin")])
ERRORS = errors(400, 401, 403, 404)
CREATED = {201: KeyCreated, **ERRORS}
REVOKED = {**NO_CONTENT, **ERRORS}


def key_with_owner(key: ApiKey) -> dict[str, Any]:
    """A key with its owner's user resource."""
    return {
        **keys.key_to_dict(key),
        "user": users.user_to_dict(db.session.get_one(User, key.owner_id)),
    }


@api.get("/v1/admin/api-keys", security=SECURITY, responses=ok(KeyWithOwnerList, ERRORS))
def admin_list_keys(query: PageQuery) -> dict[str, Any]:
    """Every user's keys, newest first, each with its owner."""
    require_admin_api()
    return page(keys.owned_query(), query, key_with_owner)


@api.post("/v1/admin/api-keys", security=SECURITY, responses=CREATED)
def admin_create_key(body: AdminKeyCreate) -> Response:
    """Issue a key for a user; the secret is shown in this answer only."""
    caller = require_admin_api()
    owner = users.find_user(body.user_id)
    fields = body.fields(keyfields.API_AND_MANAGE)
    key, secret = keys.issue_key(owner, fields, "admin", caller.user.id, caller.key)
    return created(key, secret)


@api.delete("/v1/admin/api-keys/<id>", security=SECURITY, responses=REVOKED)
def admin_revoke_key(path: IdPath) -> tuple[str, int]:
    """Revoke any user's key at once."""
    caller = require_admin_api()
    keys.revoke(keys.get_key(path.id), caller.user.id, parent=caller.key)
    return "", 204


api.post(
    "/v1/admin/generate-api-key",
    security=SECURITY,
    responses=CREATED,
    operation_id="admin_generate_key",
)(admin_create_key)
api.delete(
    "/v1/admin/api-key/<id>",
    security=SECURITY,
    responses=REVOKED,
    operation_id="admin_revoke_key_alias",
)(admin_revoke_key)
