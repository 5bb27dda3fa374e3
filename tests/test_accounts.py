"""Sessions, /v1/me and the switch to multi-user mode (SPEC §5)."""

import multiprocessing
import os
import stat
from datetime import timedelta
from typing import Any

import pytest
from freezegun import freeze_time

from authsvc import create_app, sessions
from authsvc.clock import utcnow
from authsvc.sessions import COOKIE
from tests import conftest
from tests.conftest import bearer, pair

REMOTE = {"REMOTE_ADDR": "10.0.0.5"}


def enable(client, username="alice", password="correct horse"):
    return client.post(
        "/v1/system/enable-multi-user", json={"username": username, "password": password}
    )


def login(client, username="alice", password="correct horse"):
    return client.post("/v1/session", json={"username": username, "password": password})


@pytest.fixture
def admin_token(client):
    assert enable(client).status_code == 200
    response = login(client)
    assert response.status_code == 200, response.json
    return response.json["token"]


def test_owner_token_logs_the_owner_in(app, anon, instance_dir):
    path = os.path.join(instance_dir, "owner_token")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as written:
        token = written.read().strip()
    assert len(token) >= 22  # at least 128 random bits in base64url
    assert token == sessions.owner_password(app)
    assert anon.get("/v1/me").status_code == 401  # loopback grants nothing
    assert anon.post("/v1/session", json={"password": "anything"}).status_code == 401
    response = anon.post("/v1/session", json={"password": token})
    assert response.status_code == 200
    me = anon.get("/v1/me", headers=bearer(response.json["token"]))
    assert me.status_code == 200 and me.json["username"] == "owner"


def test_owner_token_is_generated_once(make_app, instance_dir):
    first = sessions.owner_password(make_app())
    assert sessions.owner_password(make_app()) == first


def read_fresh_secrets(folder: str, name: str, barrier: Any, results: Any) -> None:
    """In a child process: start an app on a fresh instance folder as a worker would."""
    from flask import Flask

    barrier.wait()
    app = Flask(__name__, instance_path=folder)
    results.put(sessions.instance_secret(app, name))


def test_processes_starting_together_share_one_whole_secret(tmp_path):
    """gunicorn workers on a fresh instance: all read the one secret, never a half-written one."""
    context = multiprocessing.get_context("fork")
    for attempt in range(20):
        folder = str(tmp_path / f"instance-{attempt}")
        barrier, results = context.Barrier(8), context.Queue()
        children = [
            context.Process(
                target=read_fresh_secrets, args=(folder, "owner_token", barrier, results)
            )
            for _ in range(8)
        ]
        for child in children:
            child.start()
        read = {results.get(timeout=30) for _ in children}
        for child in children:
            child.join(timeout=30)
        assert len(read) == 1 and "" not in read, read
        assert os.listdir(folder) == ["owner_token"]  # no draft left behind
        path = os.path.join(folder, "owner_token")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_single_user_login_with_auth_token(make_app):
    client = make_app(AUTH_TOKEN="s3cret-password").test_client()
    assert client.get("/v1/me").status_code == 401  # loopback is no longer enough
    assert client.post("/v1/session", json={"password": "wrong"}).status_code == 401
    response = client.post("/v1/session", json={"password": "s3cret-password"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert set(response.json) == {"token", "expires_at", "user", "csrf_token"}
    assert client.get("/v1/me").status_code == 403  # the cookie alone is not enough
    by_page = client.get("/v1/me", headers={"X-CSRF-Token": response.json["csrf_token"]})
    assert by_page.json["username"] == "owner"  # cookie and token, as the pages send them
    client.delete_cookie(COOKIE)
    me = client.get("/v1/me", headers=bearer(response.json["token"]))
    assert me.status_code == 200 and me.json["role"] == "admin"


def test_auth_token_change_ends_sessions(make_app):
    first = make_app(AUTH_TOKEN="first-password").test_client()
    token = first.post("/v1/session", json={"password": "first-password"}).json["token"]
    assert first.get("/v1/me", headers=bearer(token)).status_code == 200
    second = make_app(AUTH_TOKEN="second-password").test_client()
    assert second.get("/v1/me", headers=bearer(token)).status_code == 401


def test_enable_multi_user_is_one_way_and_owner_only(client):
    key = pair(client)["api_key"]
    assert client.post("/v1/system/enable-multi-user", json={"username": "a"}).status_code == 400
    response = enable(client)
    assert response.status_code == 200
    assert response.json["user"]["username"] == "alice"
    assert response.json["user"]["role"] == "admin"
    assert enable(client).status_code == 409
    # the owner keeps its keys and its Personal organization
    spaces = client.get("/v1/spaces", headers=bearer(key))
    assert [space["name"] for space in spaces.json["data"]] == ["Personal"]
    # the owner token logs nobody in any more: accounts have usernames now
    assert anon_login(client, sessions.owner_password(client.application)).status_code == 401


def anon_login(client, password):
    return client.application.test_client().post("/v1/session", json={"password": password})


@pytest.mark.parametrize("environ", [{}, REMOTE])
def test_enable_multi_user_without_login_is_refused(anon, environ):
    response = anon.post(
        "/v1/system/enable-multi-user",
        json={"username": "alice", "password": "pw"},
        environ_base=environ,
    )
    assert response.status_code == 401


def test_login_logout(client, admin_token):
    assert login(client, password="wrong").status_code == 401
    assert login(client, username="nobody").status_code == 401
    other = login(client).json["token"]
    assert client.get("/v1/me", headers=bearer(admin_token)).json["username"] == "alice"
    ended = client.delete("/v1/session", headers=bearer(admin_token))
    assert ended.status_code == 204
    assert "authsvc_session=;" in ended.headers["Set-Cookie"]
    assert client.get("/v1/me", headers=bearer(admin_token)).status_code == 401
    assert client.get("/v1/me", headers=bearer(other)).status_code == 200
    events = client.get("/v1/audit", headers=bearer(other)).json["data"]
    types = [event["type"] for event in events]
    # the fixture's own owner login, the admin's, and ``other``
    assert types.count("login.failed") == 2 and types.count("login.succeeded") == 3


def test_forged_token_is_401(client, admin_token):
    assert client.get("/v1/me", headers=bearer(admin_token + "x")).status_code == 401


def test_jwt_secret_rotation_ends_sessions(client, admin_token, make_app):
    rotated = make_app(JWT_SECRET="another-secret-0123456789").test_client()
    assert rotated.get("/v1/me", headers=bearer(admin_token)).status_code == 401


def test_jwt_expiry(make_app):
    client = conftest.host_client(make_app(JWT_EXPIRY="15m"))
    enable(client)
    with freeze_time(utcnow()) as frozen:
        response = login(client)
        token = response.json["token"]
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200
        frozen.tick(timedelta(minutes=14))
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200
        frozen.tick(timedelta(minutes=2))
        assert client.get("/v1/me", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("secret", ["short", "elevenchars"])
def test_short_jwt_secret_refused(database_url, secret):
    with pytest.raises(RuntimeError, match="at least 12"):
        create_app(conftest.base_config(database_url, JWT_SECRET=secret))


def test_suspended_and_deleted_users_sessions_401(client, admin_token):
    for name in ("bob", "carol"):
        created = client.post(
            "/v1/admin/users",
            json={"username": name, "password": "pw-" + name},
            headers=bearer(admin_token),
        )
        assert created.status_code == 201
    bob = login(client, "bob", "pw-bob").json
    carol = login(client, "carol", "pw-carol").json
    bob_id, carol_id = bob["user"]["id"], carol["user"]["id"]
    patched = client.patch(
        f"/v1/admin/users/{bob_id}", json={"suspended": True}, headers=bearer(admin_token)
    )
    assert patched.status_code == 200 and patched.json["suspended"] is True
    assert client.get("/v1/me", headers=bearer(bob["token"])).status_code == 401
    assert login(client, "bob", "pw-bob").status_code == 401
    deleted = client.delete(f"/v1/admin/users/{carol_id}", headers=bearer(admin_token))
    assert deleted.status_code == 204
    assert client.get("/v1/me", headers=bearer(carol["token"])).status_code == 401


def test_bootstrap_from_environment(make_app):
    app = make_app(
        AUTHSVC_MULTI_USER=True, AUTHSVC_ADMIN_USERNAME="root", AUTHSVC_ADMIN_PASSWORD="pw-root"
    )
    client = app.test_client()  # no owner login: the owner is the admin "root" now
    response = login(client, "root", "pw-root")
    assert response.status_code == 200
    assert response.json["user"]["role"] == "admin"
    token = response.json["token"]
    assert client.get("/v1/admin/users", headers=bearer(token)).status_code == 200
    switched = client.get("/v1/admin/audit?type=user.updated", headers=bearer(token)).json
    assert [event["details"]["changes"] for event in switched["data"]] == [
        ["multi_user", "password", "role", "username"]
    ]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"password": 5},
        {"username": 5, "password": "x"},
        {"username": "a" * 65, "password": "x"},
    ],
)
def test_login_bad_input(client, admin_token, body):
    assert client.post("/v1/session", json=body).status_code == 400
