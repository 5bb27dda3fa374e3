"""Key checks for other servers: verification for app servers, forward-auth for proxies."""

from typing import Any

from flask import Response, request
from flask.blueprints import BlueprintSetupState
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, StrictStr
from werkzeug.routing import PathConverter

from .. import keys, restrictions, users
from ..auth import (
    Caller,
    check_key,
    forbidden,
    refusal_code,
    request_target,
    require_caller,
    require_key,
)
from ..errors import ApiError
from ..extensions import db
from ..models import ApiKey, User
from ..wire import no_store
from .resources import KeyHolder, Verdict
from .schemas import SECURITY, errors, ok
from .whoami import key_holder_response

api = APIBlueprint("verify", __name__, abp_tags=[Tag(name="verification")])
FORWARDED_METHOD = ("X-Forwarded-Method", "X-Original-Method")
FORWARDED_URI = ("X-Forwarded-Uri", "X-Original-URI")
FORWARD = "/v1/auth/forward"
APPENDED = f"{FORWARD}/<rest:path>"
ANSWERS = ok(KeyHolder, errors(401, 403, 429))


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


def forwarded(names: tuple[str, str]) -> str | None:
    """The proxy's value for one part of the original request; 403 when its sources disagree.

    A client can smuggle either spelling through a proxy that sets only the other one.
    """
    values = {request.headers[name] for name in names if request.headers.get(name)}
    if len(values) > 1:
        raise forbidden("conflicting forwarded headers")
    return values.pop() if values else None


def identity(caller: Caller) -> Response:
    """The 200 of forward-auth: the key and its owner, also as the X-Auth-* headers."""
    assert caller.key is not None
    response = key_holder_response(caller)
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


@api.get(FORWARD, security=SECURITY, responses=ANSWERS, provide_automatic_options=False)
def forward_auth() -> Response:
    """Forward-auth for nginx auth_request, Caddy forward_auth and Traefik ForwardAuth."""
    method = forwarded(FORWARDED_METHOD) or request.method
    target = forwarded(FORWARDED_URI)
    # Without the proxy's headers there is no request to judge: this endpoint's own path is not.
    if not target:
        raise forbidden("missing forwarded headers")
    return identity(require_key(method.upper(), target))


class Rest(PathConverter):
    """Everything after the prefix, even nothing or a leading "/": the path parser judges it."""

    regex = ".*"
    part_isolating = False  # werkzeug would guess True: the regex names no "/"


class ForwardedPath(BaseModel):
    path: str


@api.record_once
def add_converter(state: BlueprintSetupState) -> None:
    """Before the routes below are added to the app."""
    state.app.url_map.converters["rest"] = Rest


# merge_slashes off: a doubled "/" is refused by the path parser, not redirected by routing.
@api.get(
    APPENDED,
    security=SECURITY,
    responses=ANSWERS,
    provide_automatic_options=False,
    merge_slashes=False,
)
def forward_auth_appended(path: ForwardedPath) -> Response:
    """Forward-auth for Envoy's ext_authz: this request, with the path after the prefix."""
    # Routing saw the decoded path; the rules must see the one the client sent, query included.
    raw = request_target()
    if not raw.startswith(f"{FORWARD}/"):
        raise forbidden(restrictions.AMBIGUOUS)
    target = raw.removeprefix(FORWARD)
    for names, own in ((FORWARDED_URI, target), (FORWARDED_METHOD, request.method)):
        sent = forwarded(names)
        if sent is not None and sent != own:
            raise forbidden("conflicting forwarded headers")
    return identity(require_key(request.method, target))


@api.after_request
def never_cached(response: Response) -> Response:
    """Every answer about a key, refusals included, is for this request only."""
    return no_store(response)


# nginx may send the subrequest with the original method; OPTIONS must not pass unchecked.
for register in (api.post, api.put, api.patch, api.delete):
    for rule, view in ((FORWARD, forward_auth), (APPENDED, forward_auth_appended)):
        register(
            rule,
            security=SECURITY,
            responses=ANSWERS,
            provide_automatic_options=False,
            endpoint=f"{view.__name__}_{register.__name__}",
            merge_slashes=False,
        )(view)
# Envoy asks about every request, CORS preflights included, each judged as what it is.
api.add_url_rule(
    APPENDED,
    "forward_auth_appended_options",
    forward_auth_appended.view,
    methods=["OPTIONS"],
    provide_automatic_options=False,
    merge_slashes=False,
)
