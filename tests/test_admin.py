"""Admin endpoints: users, roles, groups, organizations (SPEC §5–6)."""

import pytest

from authsvc.extensions import db
from authsvc.models import AuditEvent, Group, Organization, User
from tests.conftest import bearer
from tests.test_accounts import enable, login


@pytest.fixture
def admin(client):
    assert enable(client).status_code == 200
    return bearer(login(client).json["token"])


def make_user(client, admin, username, role="user"):
    response = client.post(
        "/v1/admin/users",
        json={"username": username, "password": "pw-" + username, "role": role},
        headers=admin,
    )
    assert response.status_code == 201, response.json
    return response.json


def session_of(client, username):
    return bearer(login(client, username, "pw-" + username).json["token"])


def counts(app):
    with app.app_context():
        return [db.session.query(model).count() for model in (User, Group, Organization)]


def test_single_user_instance_denies_admin(client):
    response = client.get("/v1/admin/users")
    assert response.status_code == 401
    assert response.json["message"] == "Instance is not in Multi-User mode. Method denied."


def test_user_crud(client, admin):
    created = make_user(client, admin, "bob")
    assert set(created) >= {"id", "username", "role", "suspended", "created_at"}
    assert created["role"] == "user" and created["suspended"] is False
    listed = client.get("/v1/admin/users", headers=admin).json
    assert [user["username"] for user in listed["data"]] == ["alice", "bob"]
    assert listed["pagination"]["total"] == 2
    url = f"/v1/admin/users/{created['id']}"
    assert client.get(url, headers=admin).json["username"] == "bob"
    patched = client.patch(url, json={"role": "manager", "password": "new-pw"}, headers=admin)
    assert patched.json["role"] == "manager"
    assert login(client, "bob", "new-pw").status_code == 200
    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).status_code == 404
    assert client.delete(url, headers=admin).status_code == 404
    assert client.patch(url, json={"role": "user"}, headers=admin).status_code == 404


def test_new_user_has_no_organization(client, admin):
    bob = make_user(client, admin, "bob")
    personal = client.get("/v1/admin/organizations", headers=admin).json["data"][0]
    assert personal["name"] == "Personal"
    assert bob["id"] not in personal["members"]
    assert login(client).json["user"]["id"] in personal["members"]


def test_user_cannot_call_admin_endpoints(client, admin):
    make_user(client, admin, "bob")
    bob = session_of(client, "bob")
    for method, url in [
        ("get", "/v1/admin/users"),
        ("get", "/v1/admin/groups"),
        ("get", "/v1/settings"),
        ("get", "/v1/audit"),
    ]:
        assert getattr(client, method)(url, headers=bob).status_code == 403


def test_manager_boundaries(client, admin):
    make_user(client, admin, "mia", role="manager")
    other_admin = make_user(client, admin, "root", role="admin")
    mia = session_of(client, "mia")
    bob = make_user(client, mia, "bob")  # managers create users
    assert (
        client.post(
            "/v1/admin/users", json={"username": "x", "password": "p", "role": "admin"}, headers=mia
        ).status_code
        == 403
    )
    url = f"/v1/admin/users/{other_admin['id']}"
    assert client.patch(url, json={"suspended": True}, headers=mia).status_code == 403
    assert client.delete(url, headers=mia).status_code == 403
    bob_url = f"/v1/admin/users/{bob['id']}"
    assert client.patch(bob_url, json={"role": "admin"}, headers=mia).status_code == 403
    assert client.patch(bob_url, json={"suspended": True}, headers=mia).status_code == 200
    assert client.get("/v1/admin/groups", headers=mia).status_code == 403


def test_last_admin_is_protected(client, admin):
    me = client.get("/v1/me", headers=admin).json
    url = f"/v1/admin/users/{me['id']}"
    for body in ({"role": "manager"}, {"suspended": True}):
        response = client.patch(url, json=body, headers=admin)
        assert response.status_code == 409 and response.json["code"] == "conflict"
    assert client.delete(url, headers=admin).status_code == 409
    second = make_user(client, admin, "root", role="admin")
    assert client.patch(url, json={"role": "manager"}, headers=admin).status_code == 200
    root = session_of(client, "root")
    second_url = f"/v1/admin/users/{second['id']}"
    assert client.patch(second_url, json={"suspended": True}, headers=root).status_code == 409


def test_duplicate_username_is_409_and_writes_nothing(app, client, admin):
    make_user(client, admin, "bob")
    before = counts(app)
    response = client.post(
        "/v1/admin/users", json={"username": "bob", "password": "x"}, headers=admin
    )
    assert response.status_code == 409
    assert counts(app) == before


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/v1/admin/users", {"username": "a" * 65, "password": "x"}),
        ("/v1/admin/users", {"username": "bob", "password": "x", "role": "root"}),
        ("/v1/admin/users", {"username": 7, "password": "x"}),
        ("/v1/admin/users", {"username": "bob"}),
        ("/v1/admin/users", {"username": "  ", "password": "x"}),
        ("/v1/admin/groups", {"name": "g", "permissions": {"api_keys": "yes"}}),
        ("/v1/admin/groups", {"name": ""}),
        ("/v1/admin/groups", {"name": "g" * 65}),
        ("/v1/admin/organizations", {"name": "o", "description": 5}),
        ("/v1/admin/organizations", {"name": "o", "description": "d" * 513}),
        ("/v1/admin/organizations", {"name": ["o"]}),
    ],
)
def test_bad_input_writes_nothing(app, client, admin, url, body):
    before = counts(app)
    response = client.post(url, json=body, headers=admin)
    assert response.status_code == 400
    assert response.json["object"] == "error"
    assert counts(app) == before


@pytest.mark.parametrize(
    "body", [{"role": "root"}, {"suspended": "yes"}, {"password": ""}, {"password": 5}]
)
def test_bad_user_patch(client, admin, body):
    bob = make_user(client, admin, "bob")
    response = client.patch(f"/v1/admin/users/{bob['id']}", json=body, headers=admin)
    assert response.status_code == 400


def test_groups_grant_permissions(client, admin):
    client.patch(
        "/v1/settings",
        json={"default_permissions": {"api_keys": False}},
        headers=admin,
    )
    bob = make_user(client, admin, "bob")
    created = client.post(
        "/v1/admin/groups", json={"name": "devs", "permissions": {"api_keys": True}}, headers=admin
    )
    assert created.status_code == 201
    group = created.json
    assert group["permissions"] == {"api_keys": True, "verify_keys": False}
    assert group["members"] == []
    assert client.post("/v1/admin/groups", json={"name": "devs"}, headers=admin).status_code == 409
    members = f"/v1/admin/groups/{group['id']}/members"
    added = client.post(members, json={"user_id": bob["id"]}, headers=admin)
    assert added.status_code == 201 and added.json["members"] == [bob["id"]]
    assert client.post(members, json={"user_id": "usr_nope"}, headers=admin).status_code == 404
    assert client.post(members, json={"user_id": 5}, headers=admin).status_code == 400
    from authsvc import users

    with client.application.app_context():
        user = db.session.get(User, bob["id"])
        assert users.has_permission(user, "api_keys")
        assert not users.has_permission(user, "verify_keys")
    patched = client.patch(
        f"/v1/admin/groups/{group['id']}",
        json={"permissions": {"verify_keys": True}},
        headers=admin,
    )
    assert patched.json["permissions"] == {"api_keys": True, "verify_keys": True}
    assert client.delete(f"{members}/{bob['id']}", headers=admin).status_code == 204
    assert client.delete(f"{members}/{bob['id']}", headers=admin).status_code == 404
    with client.application.app_context():
        assert not users.has_permission(db.session.get(User, bob["id"]), "api_keys")
    assert client.delete(f"/v1/admin/groups/{group['id']}", headers=admin).status_code == 204
    assert client.get(f"/v1/admin/groups/{group['id']}", headers=admin).status_code == 404
    assert (
        client.post(
            "/v1/admin/groups/grp_nope/members", json={"user_id": bob["id"]}, headers=admin
        ).status_code
        == 404
    )


def test_organizations_and_membership(app, client, admin):
    bob = make_user(client, admin, "bob")
    created = client.post(
        "/v1/admin/organizations", json={"name": "Research", "description": "R&D"}, headers=admin
    )
    assert created.status_code == 201
    org = created.json
    assert {"id", "name", "description"} <= set(org)
    url = f"/v1/admin/organizations/{org['id']}"
    added = client.post(f"{url}/members", json={"user_id": bob["id"]}, headers=admin)
    assert added.json["members"] == [bob["id"]]
    renamed = client.patch(url, json={"name": "Lab"}, headers=admin).json
    assert renamed["name"] == "Lab" and renamed["description"] == "R&D"
    assert client.patch(url, json={"name": "Personal"}, headers=admin).status_code == 409
    assert client.delete(f"{url}/members/{bob['id']}", headers=admin).status_code == 204
    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).status_code == 404
    with app.app_context():
        events = db.session.query(AuditEvent).filter_by(type="organization.changed").count()
    assert events == 5


def test_suspending_or_deleting_stops_keys_at_once(client, admin):
    bob = make_user(client, admin, "bob")
    carol = make_user(client, admin, "carol")
    secrets = {}
    for user in (bob, carol):
        issued = client.post(
            "/v1/admin/api-keys", json={"name": "k", "user_id": user["id"]}, headers=admin
        )
        assert issued.status_code == 201, issued.json
        secrets[user["username"]] = issued.json["api_key"]
    for name in secrets:
        assert client.get("/v1/auth", headers=bearer(secrets[name])).status_code == 200
    client.patch(f"/v1/admin/users/{bob['id']}", json={"suspended": True}, headers=admin)
    client.delete(f"/v1/admin/users/{carol['id']}", headers=admin)
    for name in secrets:
        response = client.get("/v1/auth", headers=bearer(secrets[name]))
        assert response.status_code == 401 and response.json["message"] == "invalid api key"


def test_admin_api_key_manages_users(client, admin):
    me = client.get("/v1/me", headers=admin).json
    plain = client.post("/v1/api-keys", json={"name": "app"}, headers=admin).json
    assert plain["scopes"] == ["api"]
    refused = client.get("/v1/me", headers=bearer(plain["api_key"]))
    assert refused.status_code == 403 and refused.json["message"] == "this api key may not manage"
    issued = client.post(
        "/v1/api-keys", json={"name": "admin tool", "scopes": ["api", "manage"]}, headers=admin
    )
    assert issued.status_code == 201, issued.json
    key = bearer(issued.json["api_key"])
    assert client.get("/v1/me", headers=key).json["id"] == me["id"]
    assert make_user(client, key, "dave")["username"] == "dave"


def test_readme_walkthrough(client):
    """The admin walk-through of the README, step by step."""
    assert enable(client, "admin", "change-me-now").status_code == 200
    admin = bearer(login(client, "admin", "change-me-now").json["token"])
    client.patch("/v1/settings", json={"default_permissions": {"api_keys": False}}, headers=admin)
    bob = client.post(
        "/v1/admin/users", json={"username": "bob", "password": "bob-password"}, headers=admin
    ).json
    group = client.post(
        "/v1/admin/groups",
        json={"name": "developers", "permissions": {"api_keys": True}},
        headers=admin,
    ).json
    client.post(
        f"/v1/admin/groups/{group['id']}/members", json={"user_id": bob["id"]}, headers=admin
    )
    team = client.post("/v1/admin/organizations", json={"name": "Team"}, headers=admin).json
    client.post(
        f"/v1/admin/organizations/{team['id']}/members", json={"user_id": bob["id"]}, headers=admin
    )
    session = bearer(login(client, "bob", "bob-password").json["token"])
    created = client.post(
        "/v1/api-keys",
        json={
            "name": "reader",
            "allowed_endpoints": ["GET /v1/spaces"],
            "organization": team["id"],
        },
        headers=session,
    )
    assert created.status_code == 201, created.json
    key = bearer(created.json["api_key"])
    spaces = client.get("/v1/spaces", headers=key).json["data"]
    assert [space["name"] for space in spaces] == ["Team"]
    assert client.get("/v1/auth", headers=key).status_code == 403
    rotated = client.post(
        f"/v1/api-keys/{created.json['id']}/rotate", json={"grace_seconds": 300}, headers=session
    )
    assert rotated.status_code == 201
    new_key = bearer(rotated.json["api_key"])
    assert client.get("/v1/spaces", headers=key).status_code == 200  # still in its grace
    assert client.get("/v1/spaces", headers=new_key).status_code == 200
    assert client.delete(f"/v1/api-keys/{rotated.json['id']}", headers=session).status_code == 204
    assert client.get("/v1/spaces", headers=new_key).json["message"] == "api key revoked"
    types = [e["type"] for e in client.get("/v1/audit", headers=admin).json["data"]]
    for expected in (
        "key.revoked",
        "key.rotated",
        "key.created",
        "login.succeeded",
        "organization.changed",
        "group.changed",
        "user.created",
    ):
        assert expected in types
