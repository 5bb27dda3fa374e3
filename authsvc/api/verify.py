"""Key checks for other servers: verification for app servers, forward-auth for proxies."""

from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, StrictStr

from .. import keys, users
from ..auth import check_key, forbidden, refusal_code, request_target, require_caller, require_key
from ..errors import ApiError
from ..extensions import db
from ..models import ApiKey, User
from ..wire import no_store
from .resources import KeyHolder, Verdict
from .schemas import SECURITY, errors, ok

api = APIBlueprint("verify", __name__, abp_tags=[Tag(name="verification")])
FORWARDED_METHOD = ("X-Forwarded-Method", "X-Original-Method")
FORWARDED_URI = ("X-Forwarded-Uri", "X-Original-URI")


class VerifyBody(BaseModel):
    key: StrictStr
    method: StrictStr = "GET"
    path: StrictStr | None = None
    ip: StrictStr | None = None


def verdict(code: str, key: ApiKey | None, owner: User | None = None) -> dict[str, Any]:
    """The answer: the key with its meta and its owner, unless it is unknown."""
    if owner is None and key is not None:
        owner = db.session.get(User, key.owner_id)
    shown = owner is not None and not owner.suspended
    return {
        "valid": code == "VALID",
        "code": code,
        "key": keys.key_to_dict(key) if key is not None and shown else None,
        "user": users.user_to_dict(owner) if owner is not None and shown else None,
    }


@api.post("/v1/keys/verify", security=SECURITY, responses=ok(Verdict, errors(400, 401, 403, 429)))
def verify_key(body: VerifyBody) -> dict[str, Any]:
    """Check a key an app server received; always 200 with a code."""
    caller = require_caller(scope="api")
    if not caller.may("verify_keys"):
        raise forbidden("you lack the verify_keys permission")
    try:
        checked = check_key(body.key, body.method, body.path, body.ip)
    except ApiError as error:
        code = refusal_code(error)
        return verdict(code, None if code == "NOT_FOUND" else keys.find_by_secret(body.key))
    return verdict("VALID", checked.key, checked.user)


def forwarded(names: tuple[str, str], default: str) -> str:
    """The proxy's value for one part of the original request; 403 when its sources disagree.

    A client can smuggle either spelling through a proxy that sets only the other one.
    """
    values = {request.headers[name] for name in names if request.headers.get(name)}
    if len(values) > 1:
        raise forbidden("conflicting forwarded headers")
    return values.pop() if values else default


@api.get(
    "/v1/auth/forward",
    security=SECURITY,
    responses=ok(KeyHolder, errors(401, 403, 429)),
    provide_automatic_options=False,
)
def forward_auth() -> Response:
    """Forward-auth for nginx auth_request and Traefik ForwardAuth."""
    method = forwarded(FORWARDED_METHOD, request.method).upper()
    caller = require_key(method, forwarded(FORWARDED_URI, request_target()))
    assert caller.key is not None
    response = jsonify(
        {
            "authenticated": True,
            "key": keys.key_to_dict(caller.key),
            "user": users.user_to_dict(caller.user),
        }
    )
    response.headers.update(
        {
            "X-Auth-User": caller.user.username,
            "X-Auth-User-Id": caller.user.id,
            "X-Auth-Role": caller.user.role,
            "X-Auth-Key-Id": caller.key.id,
            "X-Auth-Organization": caller.key.organization_id or "",
        }
    )
    return response


@api.after_request
def never_cached(response: Response) -> Response:
    """Every answer about a key, refusals included, is for this request only."""
    return no_store(response)


# nginx may send the subrequest with the original method; OPTIONS must not pass unchecked.
for register in (api.post, api.put, api.patch, api.delete):
    register(
        "/v1/auth/forward",
        security=SECURITY,
        responses=ok(KeyHolder, errors(401, 403, 429)),
        provide_automatic_options=False,
        endpoint=f"forward_auth_{register.__name__}",
    )(forward_auth)
