"""Endpoints that prove a key works: whoami and the spaces it reaches."""

from typing import Any

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy import select

from .. import keys, users
from ..auth import Caller, require_key
from ..listing import PageQuery, page
from ..models import Organization
from .resources import KeyHolder, SpaceList
from .schemas import SECURITY, errors, ok

api = APIBlueprint("whoami", __name__, abp_tags=[Tag(name="auth")])
ERRORS = errors(401, 403, 429)
JSON = "application/json"


def key_holder(caller: Caller) -> dict[str, Any]:
    """The answer to a valid key: the key and its owner (whoami and forward-auth alike)."""
    assert caller.key is not None
    return {
        "authenticated": True,
        "key": keys.key_to_dict(caller.key),
        "user": users.user_to_dict(caller.user),
    }


def key_holder_response(caller: Caller) -> Response:
    """The 200 of a valid key check, its JSON encoded once per state of the key.

    A key the key cache keeps changes only under a new generation (a new decision), except
    its last use, which is recorded in place: so the answer is kept by last use. A key with a
    usage limit shows the requests left, which change with every request: never kept.
    """
    decision, key = caller.decision, caller.key
    if decision is None or key is None or key.usage_limit is not None:
        return jsonify(key_holder(caller))
    state = (key.last_used_at, key.last_used_ip)
    body = decision.answers.get(state)
    if body is None:
        body = jsonify(key_holder(caller)).get_data()
        decision.answers.clear()  # only the last use is ever asked for again
        decision.answers[state] = body
    return Response(body, mimetype=JSON)


@api.get("/v1/auth", security=SECURITY, responses=ok(KeyHolder, ERRORS))
def auth_status() -> Response:
    """Whether the Bearer key is valid, with the key and its owner."""
    return key_holder_response(require_key())


api.get(
    "/v1/auth/whoami", security=SECURITY, responses=ok(KeyHolder, ERRORS), operation_id="whoami"
)(auth_status)


@api.get("/v1/spaces", security=SECURITY, responses=ok(SpaceList, ERRORS))
def list_spaces(query: PageQuery) -> dict[str, Any]:
    """The organizations (Anytype spaces) this key may reach."""
    caller = require_key()
    assert caller.key is not None
    reachable = select(Organization).where(Organization.id.in_(users.organization_ids(caller.user)))
    if caller.key.organization_id is not None:
        reachable = reachable.where(Organization.id == caller.key.organization_id)
    return page(reachable.order_by(Organization.created_at, Organization.id), query, space_to_dict)


def space_to_dict(organization: Organization) -> dict[str, Any]:
    """An organization in Anytype's space shape."""
    return {
        "object": "space",
        "id": organization.id,
        "name": organization.name,
        "description": organization.description,
        "icon": None,
        "gateway_url": "",
        "network_id": "",
    }
