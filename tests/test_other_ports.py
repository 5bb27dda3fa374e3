"""Other ports are other people (SPEC §9): what a browser sends to, or accepts from, another
port of the host — the session cookie — never acts as the host by itself."""

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authsvc import sessions
from tests.conftest import bearer, host_client, pair
from tests.keyhelpers import counts
from tests.test_host_trust import BODY, MANAGEMENT
from tests.test_web import enable_multi_user, log_in

KEY_ONLY = [("get", "/v1/auth"), ("get", "/v1/auth/whoami"), ("get", "/v1/spaces")]
FORWARDED = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/spaces"}
KEY_ONLY_HINT = "this endpoint takes an api key, not a session token"


def page_login(app: Flask, **credentials: str) -> tuple[FlaskClient, str, str]:
    """A browser's login: its client (cookie kept), the cookie's value and the CSRF token."""
    browser = app.test_client()
    started = log_in(browser, **credentials)
    browser.environ_base.pop("HTTP_X_CSRF_TOKEN")
    cookie = browser.get_cookie(sessions.COOKIE)
    assert cookie is not None
    return browser, cookie.value, started["csrf_token"]


def every_endpoint(client: FlaskClient) -> list[tuple[str, str]]:
    """MANAGEMENT with real ids: a paired key and a pending challenge (whose code is secret)."""
    paired = pair(client)
    challenge = client.post("/v1/auth/challenges", json={"app_name": "pending"}).json
    return [
        (method, path.format(key=paired["key_id"], challenge=challenge["challenge_id"]))
        for method, path in [*MANAGEMENT, *KEY_ONLY]
    ]


def assert_refused_everywhere(app: Flask, client: FlaskClient, **headers: str) -> None:
    """Every management and key endpoint refuses; nothing changes and no code is shown."""
    endpoints = every_endpoint(host_client(app))
    before = counts(app)
    for method, url in endpoints:
        answer = getattr(client, method)(url, json=BODY, headers=headers)
        assert answer.status_code in {401, 403}, (url, answer.json)
        assert answer.json["object"] == "error", url  # no list, no code, no key
    assert counts(app) == before
    assert host_client(app).get("/v1/settings").json["pairing_enabled"] is True


def test_the_cookie_value_is_never_a_bearer_token(app):
    _, cookie, _ = page_login(app)
    assert_refused_everywhere(app, app.test_client(), Authorization=f"Bearer {cookie}")


def test_the_cookie_alone_gets_nothing(app):
    _, cookie, _ = page_login(app)
    elsewhere = app.test_client()  # another port's program replaying what it received
    elsewhere.set_cookie(sessions.COOKIE, cookie)
    assert_refused_everywhere(app, elsewhere)
    listing = elsewhere.get("/v1/pairing/challenges")
    assert (listing.status_code, listing.json["message"]) == (403, "missing or invalid csrf token")


def test_the_cookie_and_a_bearer_cookie_together_get_nothing(app):
    _, cookie, _ = page_login(app)
    elsewhere = app.test_client()
    elsewhere.set_cookie(sessions.COOKIE, cookie)
    assert_refused_everywhere(app, elsewhere, Authorization=f"Bearer {cookie}")


def test_the_csrf_token_alone_gets_nothing(app):
    _, _, csrf = page_login(app)
    assert_refused_everywhere(app, app.test_client(), **{"X-CSRF-Token": csrf})


def test_both_halves_act_as_the_session(app):
    browser, _, csrf = page_login(app)
    pair(host_client(app))
    listing = browser.get("/v1/pairing/challenges", headers={"X-CSRF-Token": csrf})
    assert listing.status_code == 200, listing.json
    created = browser.post("/v1/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.json


def test_logout_ends_both_halves(app):
    browser, cookie, csrf = page_login(app)
    page = {"X-CSRF-Token": csrf}
    assert browser.delete("/v1/session", headers=page).status_code == 204
    replayed = app.test_client()
    replayed.set_cookie(sessions.COOKIE, cookie)
    assert replayed.get("/v1/me", headers=page).status_code == 401


@pytest.fixture
def admin_and_mallory(app: Flask) -> dict[str, Any]:
    """Multi-user: the admin's browser, and the cookie of Mallory, a plain user whose program
    on another port logged in and plants its own cookie in the admin's browser."""
    owner = app.test_client()
    log_in(owner)
    enable_multi_user(owner)
    owner.post("/v1/admin/users", json={"username": "mallory", "password": "mallory-password"})
    admin, _, csrf = page_login(app, username="admin", password="admin-password")
    _, mallory_cookie, _ = page_login(app, username="mallory", password="mallory-password")
    return {"admin": admin, "csrf": csrf, "mallory_cookie": mallory_cookie}


def test_a_planted_cookie_never_makes_the_pages_another_user(admin_and_mallory):
    admin, csrf = admin_and_mallory["admin"], {"X-CSRF-Token": admin_and_mallory["csrf"]}
    # Planted over the admin's own cookie (same name, domain and path): the admin is refused,
    # never shown as Mallory, and goes back to the login page.
    admin.set_cookie(sessions.COOKIE, admin_and_mallory["mallory_cookie"])
    for path in ["/ui/", "/ui/keys", "/v1/me", "/v1/pairing/challenges"]:
        answer = admin.get(path, headers=csrf)
        assert answer.status_code == 403, path
        assert "mallory" not in answer.get_data(as_text=True), path
    shell = admin.get("/ui/keys").get_data(as_text=True)  # a navigation: the empty shell
    assert "data-shell" in shell and "mallory" not in shell
    assert admin.post("/v1/api-keys", json={"name": "x"}, headers=csrf).status_code == 403


def test_a_cookie_planted_beside_the_admins_is_ignored(admin_and_mallory):
    admin, csrf = admin_and_mallory["admin"], {"X-CSRF-Token": admin_and_mallory["csrf"]}
    # Planted with a narrower path, the browser sends it first; the admin's own still counts.
    admin.set_cookie(sessions.COOKIE, admin_and_mallory["mallory_cookie"], path="/v1")
    admin.set_cookie(sessions.COOKIE, admin_and_mallory["mallory_cookie"], path="/ui")
    assert admin.get("/v1/me", headers=csrf).json["username"] == "admin"
    page = admin.get("/ui/keys", headers=csrf).get_data(as_text=True)
    assert "<span>admin</span>" in page and "mallory" not in page


@pytest.mark.parametrize(("method", "path"), KEY_ONLY)
def test_a_session_token_at_a_key_endpoint_is_told_what_it_takes(client, method, path):
    token = client.environ_base["HTTP_AUTHORIZATION"]
    answer = getattr(client, method)(path, headers={"Authorization": token})
    assert answer.status_code == 401
    assert answer.json["message"] == "invalid api key"  # the contract's message for non-keys
    assert answer.json["hint"] == KEY_ONLY_HINT


def test_forward_auth_tells_a_session_token_too(client):
    answer = client.get("/v1/auth/forward", headers=FORWARDED)
    assert (answer.status_code, answer.json.get("hint")) == (401, KEY_ONLY_HINT)


def test_an_unknown_key_gets_no_hint(anon):
    answer = anon.get("/v1/auth", headers=bearer("sk-" + "A" * 46))
    assert answer.json["message"] == "invalid api key" and "hint" not in answer.json


def test_a_key_at_a_session_endpoint_is_told_what_it_takes(client, api_key):
    answer = client.delete("/v1/session", headers=bearer(api_key))
    assert answer.status_code == 403
    assert answer.json["message"] == "this endpoint needs a host session, not an api key"


# --- forms ------------------------------------------------------------------------------------

FORM = re.compile(r"<form\b[^>]*>")


def forms_of(page: str) -> list[str]:
    return FORM.findall(page)


def test_every_form_of_every_page_posts(admin_and_mallory):
    admin = admin_and_mallory["admin"]
    admin.environ_base["HTTP_X_CSRF_TOKEN"] = admin_and_mallory["csrf"]
    pages = ["/ui/", "/ui/keys", "/ui/admin/users", "/ui/admin/groups"]
    pages += ["/ui/admin/organizations", "/ui/admin/keys", "/ui/admin/settings", "/ui/admin/audit"]
    found = forms_of(admin.application.test_client().get("/ui/login").get_data(as_text=True))
    for path in pages:
        response = admin.get(path)
        assert response.status_code == 200, path
        found += forms_of(response.get_data(as_text=True))
    assert len(found) >= 10
    for form in found:
        assert re.search(r'\smethod="(post|dialog)"', form), form


def test_the_login_form_posted_without_script_reads_no_password(app):
    browser = app.test_client()
    login_page = browser.get("/ui/login").get_data(as_text=True)
    form = forms_of(login_page)[0]
    assert 'method="post"' in form and 'action="/ui/login"' in form
    fields = re.findall(r"<input\b[^>]*>", login_page)
    assert fields and all(" name=" not in field for field in fields)  # nothing to submit
    answer = browser.post("/ui/login")  # what the form sends without its script
    assert answer.status_code == 200
    assert "Logging in needs JavaScript" in answer.get_data(as_text=True)
    assert browser.get_cookie(sessions.COOKIE) is None
