"""The caller's own keys (SPEC §6), with AnythingLLM's single-user names for them."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from .. import keyfields, keys, users
from ..auth import require_caller
from ..errors import ApiError
from ..listing import PageQuery, page
from ..models import ApiKey
from ..wire import no_store
from .key_schemas import KeyCreate, KeyPatch, RotateBody
from .resources import KeyCreated, KeyList, KeyResource
from .schemas import NO_CONTENT, SECURITY, IdPath, errors, ok

api = APIBlueprint("keys", __name__, abp_tags=[Tag(name="api keys")])
ERRORS = errors(400, 401, 403, 404, 429)
CREATED = {201: KeyCreated, **ERRORS}
REVOKED = {**NO_CONTENT, **ERRORS}


def created(key: ApiKey, secret: str) -> Response:
    """201 with the key and, this once, its secret."""
    response = jsonify({**keys.key_to_dict(key), "api_key": secret})
    response.status_code = 201
    return no_store(response)


def single_user_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """AnythingLLM's ``/v1/system`` names belong to the owner of a single-user instance."""

    # updated=(): flask-openapi3 caches the view it builds on the function's __dict__.
    @wraps(view, updated=())
    def alias(**kwargs: Any) -> Any:
        if users.is_multi_user():
            raise ApiError(401, "Instance is in Multi-User mode. Method denied.")
        return view(**kwargs)

    return alias


@api.get("/v1/api-keys", security=SECURITY, responses=ok(KeyList, ERRORS))
def list_keys(query: PageQuery) -> dict[str, Any]:
    """The caller's own keys, newest first."""
    caller = require_caller()
    return page(keys.owned_query(caller.user.id), query, keys.key_to_dict)


@api.post("/v1/api-keys", security=SECURITY, responses=CREATED)
def create_key(body: KeyCreate) -> Response:
    """Create a key for the caller; the secret is shown in this answer only."""
    caller = require_caller()
    keys.require_may_create(caller.user)
    # AnythingLLM's name makes keys for people, who manage with them; ours, keys for apps.
    anythingllm = request.endpoint == "keys.system_generate_key"
    fields = body.fields(keyfields.API_AND_MANAGE if anythingllm else keyfields.API)
    key, secret = keys.issue_key(caller.user, fields, "manual", caller.user.id, caller.key)
    return created(key, secret)


@api.get("/v1/api-keys/<id>", security=SECURITY, responses=ok(KeyResource, ERRORS))
def get_key(path: IdPath) -> dict[str, Any]:
    """One of the caller's keys."""
    caller = require_caller()
    return keys.key_to_dict(keys.get_key(path.id, caller.user))


@api.patch("/v1/api-keys/<id>", security=SECURITY, responses=ok(KeyResource, ERRORS))
def update_key(path: IdPath, body: KeyPatch) -> dict[str, Any]:
    """Change a key's name, state, restrictions, expiry, meta or organization."""
    caller = require_caller()
    key = keys.get_key(path.id, caller.user)
    return keys.key_to_dict(keys.update_key(key, body.changes(), caller.user.id, caller.key))


@api.delete("/v1/api-keys/<id>", security=SECURITY, responses=REVOKED)
def revoke_key(path: IdPath) -> tuple[str, int]:
    """Revoke one of the caller's keys at once."""
    caller = require_caller()
    keys.revoke(keys.get_key(path.id, caller.user), caller.user.id, parent=caller.key)
    return "", 204


@api.post("/v1/api-keys/<id>/rotate", security=SECURITY, responses={**CREATED, **errors(409)})
def rotate_key(path: IdPath, body: RotateBody) -> Response:
    """Replace a key by a new secret; the old one stops now or after ``grace_seconds``."""
    caller = require_caller()
    keys.require_may_create(caller.user)
    key = keys.get_key(path.id, caller.user)
    new_key, secret = keys.rotate_key(key, body.grace_seconds, caller.user.id, caller.key)
    return created(new_key, secret)


# AnythingLLM's names for the same actions, for the single-user owner.
for method, rule, name, view, responses in [
    (api.get, "/v1/system/api-keys", "system_list_keys", list_keys, ok(KeyList, ERRORS)),
    (api.post, "/v1/system/generate-api-key", "system_generate_key", create_key, CREATED),
    (api.delete, "/v1/system/api-key/<id>", "system_revoke_key", revoke_key, REVOKED),
]:
    method(rule, security=SECURITY, responses=responses, operation_id=name, endpoint=name)(
        single_user_only(view)
    )
