"""The host's web pages (SPEC §9): thin views over the business modules.

Pages are rendered here from the same modules the JSON API uses; every change a page makes goes
through the JSON API, from ``static/authsvc.js``, with the session's CSRF token.
"""

from typing import Any, TypeVar

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select

from .. import keys, organizations, pairing, sessions, settings, users
from ..auth import Caller, require_role
from ..errors import ApiError, describe_validation_error
from ..extensions import db
from ..models import ApiKey, Organization, User
from ..wire import PageQuery, page
from . import charts

web = Blueprint(
    "web", __name__, url_prefix="/ui", template_folder="templates", static_folder="static"
)

# Scripts, styles, images and requests from this origin only; no inline script, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
OPEN_ENDPOINTS = {"web.login", "web.static"}
PAGE_SIZE = 50
Model = TypeVar("Model", bound=BaseModel)


@web.before_request
def require_login() -> ResponseReturnValue | None:
    """Every page but the login page and its assets needs a live session cookie."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    token = request.cookies.get(sessions.COOKIE)
    resolved = sessions.resolve(token) if token else None
    if resolved is None:
        return redirect(url_for("web.login"))
    g.web_caller = Caller(user=resolved[0], session=resolved[1])
    return None


@web.after_request
def security_headers(response: Response) -> Response:
    """SPEC §9's headers on every page and asset; pages (they show codes) are never cached."""
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@web.context_processor
def page_context() -> dict[str, Any]:
    """What base.html needs: the user, the CSRF token and which pages to offer."""
    caller: Caller | None = g.get("web_caller")
    user = caller.user if caller else None
    return {
        "user": user,
        "csrf_token": sessions.csrf_token(caller.session) if caller and caller.session else "",
        "multi_user": users.is_multi_user(),
        "is_admin": user is not None and user.role == "admin",
        "page_url": page_url,
    }


def page_url(offset: int) -> str:
    """This page at another ``offset``, keeping its filters."""
    args: dict[str, Any] = {**request.args.to_dict(), "offset": offset}
    return url_for(request.endpoint or "web.pairing_requests", **args)


def current_user() -> User:
    """The logged-in user of this page request."""
    caller: Caller = g.web_caller
    return caller.user


def require_page_role(role: str, multi_user_only: bool = False) -> None:
    """403 unless the user has ``role``; 404 for multi-user pages on a single-user instance."""
    if multi_user_only and not users.is_multi_user():
        raise ApiError(404, "this page exists in multi-user mode only")
    require_role(g.web_caller, role)


def query_args(model: type[Model]) -> Model:
    """The query string parsed by a request model; bad values are 400 as in the JSON API."""
    try:
        return model.model_validate({"limit": PAGE_SIZE, **request.args.to_dict()})
    except ValidationError as error:
        raise ApiError(400, describe_validation_error(error)) from error


def paged(query: Select[Any], render: Any) -> dict[str, Any]:
    """One page of ``query`` in the list shape, driven by ``offset``/``limit`` in the URL."""
    return page(query, query_args(PageQuery), render)


def key_state(key: ApiKey) -> str:
    """One word for the tables: revoked, retiring (rotated, in grace), expired, disabled, active."""
    if keys.is_revoked(key):
        return "revoked"
    if key.revoked_at is not None:
        return "retiring"
    if keys.is_expired(key):
        return "expired"
    return "active" if key.enabled else "disabled"


def key_row(key: ApiKey) -> dict[str, Any]:
    """A key as the tables show it."""
    return {**keys.key_to_dict(key), "state": key_state(key)}


def organization_names(ids: list[str] | None = None) -> dict[str, str]:
    """Organization names by id: all of them, or those with ``ids``."""
    query = organizations.organizations_query()
    if ids is not None:
        query = query.where(Organization.id.in_(ids))
    return {organization.id: organization.name for organization in db.session.scalars(query)}


@web.get("/login")
def login() -> ResponseReturnValue:
    """The login form; the ``authsvc open`` link lands here with the owner token in its fragment."""
    token = request.cookies.get(sessions.COOKIE)
    if token and sessions.resolve(token):
        return redirect(url_for("web.pairing_requests"))
    return render_template("login.html")


@web.get("/")
def pairing_requests() -> str:
    """Pending pairing requests, kept live by pairing.js."""
    return render_template(
        "pairing.html",
        pairing_enabled=settings.current()["pairing_enabled"],
        needs_approval=pairing.needs_approval(),
    )


@web.get("/keys")
def key_list() -> str:
    """The caller's keys and the form that creates one."""
    user = current_user()
    listing = paged(keys.owned_query(user.id), key_row)
    return render_template(
        "keys.html",
        keys=listing,
        charts={key["id"]: charts.key_charts(key["id"]) for key in listing["data"]},
        chart_size=(charts.WIDTH, charts.HEIGHT),
        organization_names=organization_names(users.organization_ids(user)),
        may_create=users.has_permission(user, "api_keys"),
    )


from . import admin  # noqa: E402,F401  (its views register on ``web``)
