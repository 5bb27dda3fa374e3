"""The host's web pages (SPEC §9): thin views over the business modules.

Pages are rendered here from the same modules the JSON API uses, but only for a request that
carries both halves of the pages' credential: the session cookie and the CSRF token, which the
pages keep in origin-bound storage and send as a header. A plain navigation (which can carry the
cookie only) gets an empty shell, whose script fetches the page with the header and fills it in.
Every change a page makes goes through the JSON API, from ``static/authsvc.js``.
"""

from typing import Any, TypeVar

from flask import Blueprint, Response, g, render_template, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select

from .. import keys, organizations, pairing, sessions, settings, users
from ..auth import Caller, page_caller, require_role
from ..errors import ApiError, describe_validation_error
from ..extensions import db
from ..listing import PageQuery, page
from ..models import ApiKey, Organization, User
from ..pageheaders import PAGE_HEADERS
from . import charts

web = Blueprint(
    "web", __name__, url_prefix="/ui", template_folder="templates", static_folder="static"
)

OPEN_ENDPOINTS = {"web.login", "web.login_without_script", "web.static"}
PAGE_SIZE = 50
Model = TypeVar("Model", bound=BaseModel)


@web.before_request
def require_login() -> ResponseReturnValue | None:
    """A page is rendered for both halves of a session; a navigation gets the shell.

    The shell holds nothing of any session, so a cookie another port planted or read shows
    nothing. It is served whatever cookie came (none, from a link on another site: the
    ``SameSite=Strict`` cookie rides only on the shell's own same-origin request).
    """
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if sessions.CSRF_HEADER not in request.headers:
        return render_template("shell.html")
    g.web_caller = page_caller()
    return None


@web.after_request
def security_headers(response: Response) -> Response:
    """SPEC §9's headers on every page and asset; pages (they show codes) are never cached."""
    response.headers.update(PAGE_HEADERS)
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
        response.vary.add(sessions.CSRF_HEADER)  # the shell or the page
    return response


@web.context_processor
def page_context() -> dict[str, Any]:
    """What base.html needs: the user and which pages to offer."""
    caller: Caller | None = g.get("web_caller")
    user = caller.user if caller else None
    return {
        "user": user,
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
def login() -> str:
    """The login form; the ``authsvc open`` link lands here with the owner token in its fragment."""
    return render_template("login.html")


@web.post("/login")
def login_without_script() -> str:
    """The login form submitted without JavaScript (its fields have no name, so it sends no
    password): say why nothing happened."""
    return render_template("login.html", notice="Logging in needs JavaScript: turn it on.")


@web.get("/")
def pairing_requests() -> str:
    """Pending pairing requests, kept live by pairing.js."""
    return render_template(
        "pairing.html",
        pairing_enabled=settings.current()["pairing_enabled"],
        needs_approval=pairing.needs_approval(),
    )


@web.get("/device")
def device_approval() -> str:
    """Where a host types the code a device shows, then approves or denies its request."""
    return render_template(
        "device.html",
        user_code=request.args.get("user_code", "")[:64],
        organization_names=organization_names(users.organization_ids(current_user())),
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
