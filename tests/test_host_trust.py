"""Key scopes, keys no wider than themselves, login limits and CSRF (SPEC §2, §3, §5, §9)."""

import pytest
from flask import Flask
from freezegun import freeze_time

from authsvc import sessions
from authsvc.clock import utcnow
from tests import conftest
from tests.conftest import bearer, pair
from tests.keyhelpers import counts, make_key, owner_id

NOT_MANAGE = "this api key may not manage"
MANAGEMENT = [
    ("get", "/v1/api-keys"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys/{key}"),
    ("patch", "/v1/api-keys/{key}"),
    ("delete", "/v1/api-keys/{key}"),
    ("post", "/v1/api-keys/{key}/rotate"),
    ("get", "/v1/system/api-keys"),
    ("post", "/v1/system/generate-api-key"),
    ("delete", "/v1/system/api-key/{key}"),
    ("get", "/v1/pairing/challenges"),
    ("post", "/v1/pairing/challenges/{challenge}/deny"),
    ("post", "/v1/pairing/challenges/{challenge}/claim"),
    ("get", "/v1/settings"),
    ("patch", "/v1/settings"),
    ("get", "/v1/audit"),
    ("get", "/v1/me"),
    ("post", "/v1/system/enable-multi-user"),
]
ADMIN = [
    ("get", "/v1/admin/users"),
    ("post", "/v1/admin/users"),
    ("get", "/v1/admin/groups"),
    ("get", "/v1/admin/organizations"),
    ("get", "/v1/admin/api-keys"),
    ("post", "/v1/admin/api-keys"),
    ("get", "/v1/admin/audit"),
]
BODY = {
    "name": "x",
    "username": "attacker",
    "password": "pw",
    "pairing_enabled": False,
    "expires_in_days": 36500,
    "scopes": ["api", "manage"],
    "user_id": "usr_x",
}


def test_every_management_endpoint_refuses_a_paired_key(app, client):
    paired = pair(client)
    challenge = client.post("/v1/auth/challenges", json={"app_name": "other"}).json
    before = counts(app)
    for method, path in MANAGEMENT:
        url = path.format(key=paired["key_id"], challenge=challenge["challenge_id"])
        answer = getattr(client, method)(url, json=BODY, headers=bearer(paired["api_key"]))
        assert (answer.status_code, answer.json["message"]) == (403, NOT_MANAGE), url
        assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    assert counts(app) == before
    assert client.get("/v1/settings").json["pairing_enabled"] is True
    assert client.get("/v1/auth", headers=bearer(paired["api_key"])).status_code == 200


def test_admin_endpoints_refuse_a_key_without_manage(app, client):
    assert (
        client.post(
            "/v1/system/enable-multi-user", json={"username": "admin", "password": "pw-admin"}
        ).status_code
        == 200
    )
    _, secret = make_key(app, owner_id(app), scopes=["api"])
    for method, path in ADMIN:
        answer = getattr(client, method)(path, json=BODY, headers=bearer(secret))
        assert (answer.status_code, answer.json["message"]) == (403, NOT_MANAGE), path


def test_scopes_default_echo_and_never_widen(app, client):
    assert pair(client)["key_id"]
    listed = {key["created_via"]: key["scopes"] for key in client.get("/v1/api-keys").json["data"]}
    assert listed == {"pairing": ["api"]}
    made = client.post("/v1/api-keys", json={"name": "app"}).json
    assert made["scopes"] == ["api"]
    person = client.post("/v1/system/generate-api-key").json
    assert person["scopes"] == ["api", "manage"]
    manager = client.post("/v1/api-keys", json={"name": "m", "scopes": ["manage"]}).json
    assert manager["scopes"] == ["manage"]
    # A manage-only key may not call the guarded API...
    whoami = client.get("/v1/auth", headers=bearer(manager["api_key"]))
    assert (whoami.status_code, whoami.json["message"]) == (403, "this api key may only manage")
    # ...nor give a key the scope it lacks, by default or by asking.
    before = counts(app)
    for body in [{"name": "c"}, {"name": "c", "scopes": ["api"]}]:
        refused = client.post("/v1/api-keys", json=body, headers=bearer(manager["api_key"]))
        assert refused.status_code == 403, body
        assert refused.json["message"] == "an api key cannot widen access: scopes exceeds its own"
    assert counts(app) == before
    child = client.post(
        "/v1/api-keys", json={"name": "c", "scopes": ["manage"]}, headers=bearer(manager["api_key"])
    )
    assert child.status_code == 201 and child.json["scopes"] == ["manage"]
    widened = client.patch(
        f"/v1/api-keys/{child.json['id']}",
        json={"scopes": ["api", "manage"]},
        headers=bearer(manager["api_key"]),
    )
    assert widened.status_code == 403


@pytest.mark.parametrize(
    "scopes", [[], ["admin"], ["api", "api"], "api", None, ["api", "manage", "api"]]
)
def test_bad_scopes_are_400(app, client, scopes):
    before = counts(app)
    answer = client.post("/v1/api-keys", json={"name": "x", "scopes": scopes})
    if scopes is None:  # left out: the default
        assert answer.status_code == 201
        return
    assert answer.status_code == 400, answer.json
    assert counts(app) == before


@pytest.mark.parametrize(
    "wider",
    [
        {"scopes": ["api", "manage"]},
        {"allowed_endpoints": None},
        {"allowed_ips": None},
        {"expires_at": None},
        {"rate_limit": None},
    ],
)
def test_a_narrow_key_cannot_touch_a_wider_sibling(app, client, wider):
    narrow_fields = {
        "scopes": ["api", "manage"],
        "allowed_endpoints": ["/v1/api-keys", "/v1/auth"],
        "allowed_ips": ["127.0.0.0/8"],
        "expires_in_days": 30,
        "rate_limit": {"requests": 100, "per_seconds": 60},
    }
    narrow = client.post("/v1/api-keys", json={"name": "narrow", **narrow_fields}).json
    sibling_fields = {**narrow_fields, **wider}
    if wider == {"scopes": ["api", "manage"]}:
        narrow = client.post(
            "/v1/api-keys", json={"name": "narrower", **narrow_fields, "scopes": ["manage"]}
        ).json
    if sibling_fields.get("expires_at", 0) is None:
        sibling_fields.pop("expires_in_days")
    sibling = client.post("/v1/api-keys", json={"name": "wide", **sibling_fields}).json
    assert sibling["id"], sibling
    headers = bearer(narrow["api_key"])
    base = f"/v1/api-keys/{sibling['id']}"
    before = (counts(app), client.get(base).json)
    assert client.patch(base, json={"name": "renamed"}, headers=headers).status_code == 403
    assert client.post(f"{base}/rotate", headers=headers).status_code == 403
    assert client.delete(base, headers=headers).status_code == 403
    assert (counts(app), client.get(base).json) == before
    # The key may still read its siblings, and change itself.
    assert client.get(base, headers=headers).status_code == 200
    own = f"/v1/api-keys/{narrow['id']}"
    assert client.patch(own, json={"name": "still narrow"}, headers=headers).status_code == 200


# --- login limits -----------------------------------------------------------------------------


def test_failed_logins_are_limited_and_lock_out_the_right_password(make_app):
    app = make_app(AUTHSVC_LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    password = sessions.owner_password(app)
    with freeze_time(utcnow()) as frozen:
        for _ in range(3):
            assert client.post("/v1/session", json={"password": "guess"}).status_code == 401
        limited = client.post("/v1/session", json={"password": "guess"})
        assert limited.status_code == 429
        assert limited.json["code"] == "rate_limit_exceeded"
        assert int(limited.headers["Retry-After"]) >= 1
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert name in limited.headers
        right = client.post("/v1/session", json={"password": password})
        assert right.status_code == 429  # the right password is refused while the limit holds
        # The owner's account is limited from every address, not only the guessing one.
        elsewhere = client.post(
            "/v1/session", json={"password": password}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
        )
        assert elsewhere.status_code == 429
        frozen.tick(61)
        assert client.post("/v1/session", json={"password": password}).status_code == 200


def test_logins_are_limited_per_username_across_addresses(make_app):
    app = make_app(AUTHSVC_LOGIN_RATE_LIMIT="2 per minute")
    host = conftest.host_client(app)
    host.post("/v1/system/enable-multi-user", json={"username": "admin", "password": "pw-admin"})
    client = app.test_client()
    for address in ("10.0.0.1", "10.0.0.2"):
        answer = client.post(
            "/v1/session",
            json={"username": "admin", "password": "guess"},
            environ_base={"REMOTE_ADDR": address},
        )
        assert answer.status_code == 401
    third = client.post(
        "/v1/session",
        json={"username": "admin", "password": "pw-admin"},
        environ_base={"REMOTE_ADDR": "10.0.0.3"},
    )
    assert third.status_code == 429


def test_successful_logins_are_not_limited(make_app):
    app = make_app(AUTHSVC_LOGIN_RATE_LIMIT="2 per minute")
    for _ in range(5):
        conftest.login(app.test_client())


# --- the cookie and CSRF ----------------------------------------------------------------------


def cookie_client(app: Flask) -> tuple[object, str]:
    """A client holding the owner's session cookie only, and the CSRF token the login answered."""
    client = app.test_client()
    response = client.post("/v1/session", json={"password": sessions.owner_password(app)})
    return client, response.json["csrf_token"]


def test_changes_on_the_cookie_need_the_csrf_token(app):
    client, csrf = cookie_client(app)
    before = counts(app)
    assert client.get("/v1/api-keys").status_code == 403  # reading needs the token too
    assert client.get("/v1/api-keys", headers={"X-CSRF-Token": csrf}).status_code == 200
    for headers in [{}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": csrf + "x"}]:
        refused = client.post("/v1/api-keys", json={"name": "x"}, headers=headers)
        assert (refused.status_code, refused.json["message"]) == (
            403,
            "missing or invalid csrf token",
        )
    assert counts(app) == before
    made = client.post("/v1/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201


def test_a_csrf_token_belongs_to_one_session(app):
    _, first_csrf = cookie_client(app)
    second, _ = cookie_client(app)
    stolen = second.post("/v1/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": first_csrf})
    assert stolen.status_code == 403


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_loopback_without_credentials_gets_401_on_every_host_endpoint(app, client, anon, address):
    paired = pair(client)
    challenge = client.post("/v1/auth/challenges", json={"app_name": "other"}).json
    before = counts(app)
    for method, path in MANAGEMENT:
        url = path.format(key=paired["key_id"], challenge=challenge["challenge_id"])
        answer = getattr(anon, method)(url, json=BODY, environ_base={"REMOTE_ADDR": address})
        assert (answer.status_code, answer.json["message"]) == (
            401,
            "missing authorization header",
        ), url
    assert counts(app) == before
