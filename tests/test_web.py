"""The web pages through the Flask test client: access, headers, the pages' two-part credential
(cookie and CSRF token), forms, escaping (SPEC §9)."""

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authsvc import audit, sessions
from authsvc.extensions import db
from authsvc.models import AuthSession

PAGES = ["/ui/", "/ui/keys", "/ui/device", "/ui/admin/settings", "/ui/admin/audit"]
MULTI_USER_PAGES = [
    "/ui/admin/users",
    "/ui/admin/groups",
    "/ui/admin/organizations",
    "/ui/admin/keys",
]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def web_app(app: Flask) -> Flask:
    return app


def log_in(client: FlaskClient, **credentials: str) -> dict[str, Any]:
    """Log in as the pages do (the owner by default): the client keeps the cookie and, as the
    pages' script does, sends the answer's CSRF token with every request from then on."""
    owner = {"password": sessions.owner_password(client.application)}
    response = client.post("/v1/session", json=credentials or owner)
    assert response.status_code == 200, response.json
    client.environ_base["HTTP_X_CSRF_TOKEN"] = response.json["csrf_token"]
    return response.json  # type: ignore[no-any-return]


@pytest.fixture
def browser(web_app: Flask) -> FlaskClient:
    """A client logged in as the pages are: the session cookie and the CSRF token header."""
    client = web_app.test_client()
    log_in(client)
    return client


def cookie_only(client: FlaskClient) -> FlaskClient:
    """The same client without the CSRF token: what a navigation, or another port, sends."""
    client.environ_base.pop("HTTP_X_CSRF_TOKEN", None)
    return client


def enable_multi_user(client: FlaskClient) -> FlaskClient:
    """Switch the instance to multi-user mode; answer a client logged in as its admin."""
    switched = client.post(
        "/v1/system/enable-multi-user", json={"username": "admin", "password": "admin-password"}
    )
    assert switched.status_code == 200, switched.json
    log_in(client, username="admin", password="admin-password")
    return client


@pytest.mark.parametrize("path", [*PAGES, *MULTI_USER_PAGES])
def test_visitors_without_a_session_get_the_shell_and_no_data(web_app, path):
    shell = web_app.test_client().get(path)
    assert shell.status_code == 200 and "data-shell" in shell.get_data(as_text=True)
    refused = web_app.test_client().get(path, headers={"X-CSRF-Token": "forged"})
    assert refused.status_code == 403


@pytest.mark.parametrize("path", [*PAGES, *MULTI_USER_PAGES])
def test_a_navigation_with_the_cookie_alone_gets_an_empty_shell(browser, path):
    shell = cookie_only(browser).get(path)
    assert shell.status_code == 200
    page = shell.get_data(as_text=True)
    assert "data-shell" in page
    assert "Log out" not in page and "owner" not in page  # nothing of the session
    assert shell.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("cookie", ["forged.token", ""])
def test_a_forged_cookie_with_a_forged_token_is_no_session(web_app, cookie):
    client = web_app.test_client()
    client.set_cookie(sessions.COOKIE, cookie)
    refused = client.get("/ui/", headers={"X-CSRF-Token": "forged"})
    assert refused.status_code == 403, refused.json


@pytest.mark.parametrize("path", ["/ui/login", "/ui/static/authsvc.js", *PAGES])
def test_security_headers(browser, web_app, path):
    client = web_app.test_client() if path == "/ui/login" else browser
    response = client.get(path)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    if path != "/ui/static/authsvc.js":
        assert response.headers["Cache-Control"] == "no-store"
    response.close()


@pytest.mark.parametrize("path", ["/ui/login", *PAGES])
def test_pages_have_no_inline_script_and_nothing_foreign(browser, web_app, path):
    client = web_app.test_client() if path == "/ui/login" else browser
    page = client.get(path).get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script"
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handler"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "a resource from elsewhere"


def test_browsers_asking_for_the_root_go_to_the_pages(web_app):
    response = web_app.test_client().get("/", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/"


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_json_clients_still_get_json_at_the_root(web_app, accept):
    headers = {"Accept": accept} if accept else {}
    response = web_app.test_client().get("/", headers=headers)
    assert response.status_code == 200
    assert response.json["name"] == "authsvc"


def test_login_page_names_its_fields(web_app):
    page = web_app.test_client().get("/ui/login").get_data(as_text=True)
    assert '<label for="password">Password</label>' in page
    assert "Username" not in page
    assert ">Log in</button>" in page


def test_the_login_page_shows_even_with_a_session(browser):
    # A redirect would loop for a browser whose storage lost its half of the credential.
    assert browser.get("/ui/login").status_code == 200


def test_the_login_answer_carries_the_sessions_csrf_token(web_app):
    started = log_in(web_app.test_client())
    with web_app.app_context():
        session = db.session.scalars(db.select(AuthSession)).one()
        assert started["csrf_token"] == sessions.csrf_token(session)
    page = web_app.test_client().get("/ui/login").get_data(as_text=True)
    assert started["csrf_token"] not in page and "csrf" not in page


def test_a_change_on_the_cookie_alone_without_the_token_is_refused(browser):
    token = browser.environ_base["HTTP_X_CSRF_TOKEN"]
    cookie_only(browser)
    for headers in [{}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": token + "x"}]:
        refused = browser.patch("/v1/settings", json={"pairing_enabled": False}, headers=headers)
        assert refused.status_code == 403, refused.json
        assert refused.json["message"] == "missing or invalid csrf token"
    assert browser.get("/v1/settings", headers={"X-CSRF-Token": token}).json["pairing_enabled"]
    accepted = browser.patch(
        "/v1/settings", json={"pairing_enabled": False}, headers={"X-CSRF-Token": token}
    )
    assert accepted.status_code == 200, accepted.json
    page = browser.get("/ui/", headers={"X-CSRF-Token": token}).get_data(as_text=True)
    assert 'id="locked" class="banner" role="alert">' in page


def test_key_names_are_escaped_and_secrets_never_rendered(browser):
    created = browser.post("/v1/api-keys", json={"name": "<script>alert(1)</script>"})
    assert created.status_code == 201, created.json
    page = browser.get("/ui/keys").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert created.json["display"] in page
    assert created.json["api_key"] not in page


def test_key_states_in_the_table(browser):
    first = browser.post("/v1/api-keys", json={"name": "first"}).json
    browser.patch(f"/v1/api-keys/{first['id']}", json={"enabled": False})
    body = {"name": "second", "scopes": ["api", "manage"]}
    second = browser.post("/v1/api-keys", json=body).json
    browser.delete(f"/v1/api-keys/{second['id']}")
    page = browser.get("/ui/keys").get_data(as_text=True)
    assert re.search(r'state-disabled">\s*<td data-label="Name" class="name">first', page)
    assert re.search(r'state-revoked">\s*<td data-label="Name" class="name">second', page)
    assert ">Enable</button>" in page
    assert '<td data-label="Scopes">api, manage</td>' in page


@pytest.mark.parametrize("path", MULTI_USER_PAGES)
def test_multi_user_pages_do_not_exist_for_a_single_owner(browser, path):
    response = browser.get(path)
    assert response.status_code == 404
    assert response.json["code"] == "object_not_found"


@pytest.mark.parametrize("path", [*MULTI_USER_PAGES, "/ui/admin/settings", "/ui/admin/audit"])
def test_admin_pages_in_multi_user_mode(browser, path):
    enable_multi_user(browser)
    assert browser.get(path).status_code == 200
    created = browser.post(
        "/v1/admin/users", json={"username": "plain", "password": "plain-password"}
    )
    assert created.status_code == 201, created.json
    log_in(browser, username="plain", password="plain-password")
    assert browser.get(path).status_code == 403


def test_multi_user_login_asks_for_a_username(browser):
    enable_multi_user(browser)
    page = browser.application.test_client().get("/ui/login").get_data(as_text=True)
    assert '<label for="username">Username</label>' in page


def test_audit_page_filters_and_pages(browser):
    for name in ("a", "b", "c"):
        browser.post("/v1/api-keys", json={"name": name})
    page = browser.get("/ui/admin/audit?type=key.created&limit=2").get_data(as_text=True)
    assert page.count('<td data-label="Type">key.created</td>') == 2
    assert "login.succeeded</td>" not in page
    assert 'href="/ui/admin/audit?type=key.created&amp;limit=2&amp;offset=2" rel="next"' in page
    older = browser.get("/ui/admin/audit?type=key.created&limit=2&offset=2")
    assert older.get_data(as_text=True).count('<td data-label="Type">key.created</td>') == 1


@pytest.mark.parametrize("query", ["offset=-1", "limit=0", "limit=x"])
def test_bad_paging_is_a_400(browser, query):
    response = browser.get(f"/ui/admin/audit?{query}")
    assert response.status_code == 400
    assert response.json["code"] == "bad_request"


def test_the_audit_filter_offers_every_recorded_type():
    source = "".join(path.read_text() for path in Path(audit.__file__).parent.rglob("*.py"))
    recorded = set(re.findall(r'record\(\s*"([a-z_.]+)"', source))
    recorded |= set(re.findall(r'^EVENT = "([a-z_.]+)"', source, re.MULTILINE))
    assert len(recorded) > 15
    assert recorded == set(audit.EVENT_TYPES)


def test_the_device_page_fills_in_the_code_from_its_link_as_text(browser):
    page = browser.get('/ui/device?user_code="><script>x</script>').get_data(as_text=True)
    assert 'value="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in page
    assert '<label for="user-code">Code</label>' in page
    assert 'value="BCDF-GHJK"' in browser.get("/ui/device?user_code=BCDF-GHJK").get_data(
        as_text=True
    )
