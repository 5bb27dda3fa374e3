"""Logging in and out, the caller's own account, and the switch to multi-user mode."""

from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field, StrictStr

from .. import sessions, users
from ..auth import require_caller
from ..clock import iso, utcnow
from ..errors import ApiError
from ..wire import no_store
from .resources import MultiUserEnabled, SessionStarted, UserResource
from .schemas import NO_CONTENT, SECURITY, Name, errors, ok

api = APIBlueprint("accounts", __name__, abp_tags=[Tag(name="accounts")])
ERRORS = errors(400, 401, 403, 409)
Password = Field(min_length=1, max_length=1024)


class LoginBody(BaseModel):
    username: StrictStr | None = Field(None, max_length=64)
    password: StrictStr = Password


class EnableMultiUserBody(BaseModel):
    username: Name
    password: StrictStr = Password


@api.post("/v1/session", responses=ok(SessionStarted, {**ERRORS, **errors(429)}))
def login(body: LoginBody) -> Response:
    """Log in: a session token, and for the web pages an HttpOnly cookie and a CSRF token,
    the two halves of their credential."""
    user = sessions.check_credentials(
        body.username, body.password, request.remote_addr, users.single_user_owner()
    )
    started = sessions.start_session(user)
    response = jsonify(
        {
            "token": started.token,
            "expires_at": iso(started.expires_at),
            "user": users.user_to_dict(user),
            "csrf_token": started.csrf_token,
        }
    )
    response.set_cookie(
        sessions.COOKIE,
        started.cookie,
        max_age=int((started.expires_at - utcnow()).total_seconds()),
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return no_store(response)


@api.delete("/v1/session", security=SECURITY, responses={**NO_CONTENT, **ERRORS})
def logout() -> Response:
    """Log out: end this session only."""
    caller = require_caller(allow_keys=False)
    if caller.session is None:
        raise ApiError(400, "no session to end: log in with POST /v1/session")
    sessions.end_session(caller.session)
    response = Response(status=204)
    response.delete_cookie(sessions.COOKIE, httponly=True, samesite="Strict")
    return response


@api.get("/v1/me", security=SECURITY, responses=ok(UserResource, ERRORS))
def me() -> dict[str, Any]:
    """The caller's own user."""
    return users.user_to_dict(require_caller().user)


@api.post("/v1/system/enable-multi-user", security=SECURITY, responses=ok(MultiUserEnabled, ERRORS))
def enable_multi_user(body: EnableMultiUserBody) -> dict[str, Any]:
    """Turn on multi-user mode; the owner becomes this admin. One way."""
    if users.is_multi_user():
        raise ApiError(409, "the instance is already in multi-user mode")
    caller = require_caller()
    if not caller.user.is_owner:
        raise ApiError(403, "only the owner may enable multi-user mode")
    owner = users.enable_multi_user(body.username, body.password)
    return {"multi_user": True, "user": users.user_to_dict(owner)}
