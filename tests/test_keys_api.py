"""The key lifecycle API: create, list, read, change, revoke, rotate, aliases and admin."""

from datetime import timedelta
from typing import Any

import pytest
from freezegun import freeze_time

from authsvc import sessions
from authsvc.clock import iso, utcnow
from authsvc.extensions import db
from authsvc.models import User
from tests.conftest import bearer
from tests.keyhelpers import (
    audit_types,
    counts,
    make_key,
    make_org,
    make_user,
    owner_id,
    store_settings,
)

KEY_FIELDS = {
    "object", "id", "name", "display", "owner", "organization", "allowed_endpoints",
    "allowed_ips", "rate_limit", "usage_limit", "enabled", "meta", "created_at", "created_via",
    "expires_at", "last_used_at", "last_used_ip", "revoked_at", "scopes",
}  # fmt: skip


def create(client: Any, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/api-keys", json={"name": "ci", **body})
    assert answer.status_code == 201, answer.json
    return answer.json  # type: ignore[no-any-return]


def session_for(app: Any, user_id: str) -> dict[str, str]:
    with app.app_context():
        token = sessions.start_session(db.session.get_one(User, user_id)).token
    return bearer(token)


def test_create_shows_the_secret_once(app, client):
    future = iso(utcnow() + timedelta(days=3))
    answer = client.post(
        "/v1/api-keys",
        json={
            "name": "  deploy bot  ",
            "expires_at": future,
            "allowed_endpoints": ["GET /v1/spaces", "/v1/auth"],
            "allowed_ips": ["127.0.0.1", "10.0.0.0/8"],
            "rate_limit": {"requests": 100, "per_seconds": 60},
            "meta": {"team": "ops", "tier": 2},
            "unknown": "ignored",
        },
    )
    assert answer.status_code == 201
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json
    assert set(body) == KEY_FIELDS | {"api_key"}
    assert body["name"] == "deploy bot"
    assert body["created_via"] == "manual"
    assert body["owner"] == owner_id(app)
    assert body["expires_at"] == future
    assert body["meta"] == {"team": "ops", "tier": 2}
    assert body["rate_limit"] == {"requests": 100, "per_seconds": 60}
    assert body["display"].startswith("sk-") and body["api_key"].startswith(body["display"][:7])
    assert "key.created" in audit_types(app)
    whoami = client.get("/v1/auth", headers=bearer(body["api_key"]))
    assert whoami.status_code == 200 and whoami.json["key"]["id"] == body["id"]
    # The secret never appears again: not in lists, reads, changes or the audit log.
    for later in [
        client.get("/v1/api-keys"),
        client.get(f"/v1/api-keys/{body['id']}"),
        client.patch(f"/v1/api-keys/{body['id']}", json={"name": "renamed"}),
        client.get("/v1/system/api-keys"),
    ]:
        assert later.status_code == 200
        assert body["api_key"] not in later.get_data(as_text=True)
        assert '"api_key":' not in later.get_data(as_text=True)
    assert body["api_key"] not in str(audit_types(app))


def test_expires_in_days_and_text_content_type(app, client):
    with freeze_time("2030-01-01 12:00:00"):
        answer = client.post(
            "/v1/api-keys",
            data='{"name": "short", "expires_in_days": 2}',
            content_type="text/plain",
        )
    assert answer.status_code == 201
    assert answer.json["expires_at"] == "2030-01-03T12:00:00Z"


def test_list_is_own_newest_first_and_paginated(app, client):
    with freeze_time("2030-01-01 12:00:00") as frozen:
        ids = []
        for number in range(3):
            ids.append(create(client, name=f"k{number}")["id"])
            frozen.tick(timedelta(seconds=1))
    make_key(app, make_user(app))  # another user's key is never listed
    listing = client.get("/v1/api-keys").json
    assert [item["id"] for item in listing["data"]] == ids[::-1]
    assert listing["pagination"] == {"total": 3, "offset": 0, "limit": 100, "has_more": False}
    second = client.get("/v1/api-keys?offset=1&limit=1").json
    assert [item["id"] for item in second["data"]] == [ids[1]]
    assert second["pagination"]["has_more"] is True
    assert client.get("/v1/api-keys?limit=0").status_code == 400


def test_patch_changes_fields_and_is_audited(app, client):
    key = create(client)
    changed = client.patch(
        f"/v1/api-keys/{key['id']}",
        json={
            "name": "renamed",
            "enabled": False,
            "allowed_ips": ["10.0.0.0/8"],
            "rate_limit": {"requests": 5, "per_seconds": 1},
            "meta": {"a": 1},
        },
    )
    assert changed.status_code == 200
    assert changed.json["name"] == "renamed" and changed.json["enabled"] is False
    assert changed.json["allowed_ips"] == ["10.0.0.0/8"]
    assert changed.json["meta"] == {"a": 1}
    assert client.get("/v1/auth", headers=bearer(key["api_key"])).json["message"] == (
        "api key disabled"
    )
    cleared = client.patch(
        f"/v1/api-keys/{key['id']}",
        json={"enabled": True, "allowed_ips": None, "rate_limit": None},
    )
    assert cleared.json["allowed_ips"] is None and cleared.json["rate_limit"] is None
    assert cleared.json["name"] == "renamed"  # fields not sent stay as they are
    assert client.get("/v1/auth", headers=bearer(key["api_key"])).status_code == 200
    assert audit_types(app).count("key.updated") == 2


def test_organization_must_be_one_of_the_owners(app, client):
    mine = make_org(app, "Mine", owner_id(app))
    foreign = make_org(app, "Foreign")
    assert create(client, organization=mine)["organization"] == mine
    before = counts(app)
    refused = client.post("/v1/api-keys", json={"name": "x", "organization": foreign})
    assert refused.status_code == 404 and refused.json["message"] == "organization not found"
    assert counts(app) == before


def test_delete_revokes(app, client):
    key = create(client)
    assert client.delete(f"/v1/api-keys/{key['id']}").status_code == 204
    assert client.get(f"/v1/api-keys/{key['id']}").json["revoked_at"] is not None
    assert client.get("/v1/auth", headers=bearer(key["api_key"])).json["message"] == (
        "api key revoked"
    )
    assert client.delete(f"/v1/api-keys/{key['id']}").status_code == 204  # idempotent
    assert audit_types(app).count("key.revoked") == 1


def test_another_users_key_is_not_found(app, client):
    user_id = make_user(app)
    _, alice = make_key(app, user_id)
    mine = create(client)
    for method, suffix in [("get", ""), ("patch", ""), ("delete", ""), ("post", "/rotate")]:
        answer = getattr(client, method)(
            f"/v1/api-keys/{mine['id']}{suffix}", json={}, headers=bearer(alice)
        )
        assert answer.status_code == 404, (method, answer.json)
        assert answer.json["code"] == "object_not_found"
    assert client.get("/v1/auth", headers=bearer(mine["api_key"])).status_code == 200


def test_creating_needs_the_api_keys_permission(app, client):
    user_id = make_user(app)
    store_settings(app, default_permissions={"api_keys": False, "verify_keys": False})
    headers = session_for(app, user_id)
    before = counts(app)
    refused = client.post("/v1/api-keys", json={"name": "x"}, headers=headers)
    assert refused.status_code == 403
    assert counts(app) == before
    assert client.get("/v1/api-keys", headers=headers).status_code == 200


BAD_CREATE = [
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 65},
    {"name": 12},
    {"name": "bell\x07"},
    {"expires_at": "2001-01-01T00:00:00Z"},
    {"expires_at": "tomorrow"},
    {"expires_at": 4102444800},
    {"expires_in_days": 0},
    {"expires_in_days": "3"},
    {"expires_in_days": 10**9},
    {"expires_in_days": 1, "expires_at": "2999-01-01T00:00:00Z"},
    {"organization": 5},
    {"allowed_endpoints": ["v1/spaces"]},
    {"allowed_endpoints": ["GET"]},
    {"allowed_endpoints": "/v1/spaces"},
    {"allowed_endpoints": [7]},
    {"allowed_ips": ["10.0.0.0/33"]},
    {"allowed_ips": ["banana"]},
    {"allowed_ips": "127.0.0.1"},
    {"rate_limit": {"requests": 0, "per_seconds": 1}},
    {"rate_limit": {"requests": "1", "per_seconds": 1}},
    {"rate_limit": {"requests": 1}},
    {"rate_limit": 5},
    {"meta": "text"},
    {"meta": [1, 2]},
    {"meta": {"blob": "x" * 4100}},
    {"enabled": "yes"},
]


@pytest.mark.parametrize("body", BAD_CREATE)
def test_bad_create_input_writes_nothing(app, client, body):
    client.get("/v1/api-keys")  # the owner exists before counting
    before = counts(app)
    answer = client.post("/v1/api-keys", json={"name": "ok", **body})
    assert answer.status_code == 400, answer.json
    assert answer.json["object"] == "error" and answer.json["code"] == "bad_request"
    assert counts(app) == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"enabled": None},
        {"name": "y" * 65},
        {"expires_at": "2001-01-01T00:00:00Z"},
        {"allowed_ips": ["300.1.1.1"]},
        {"meta": {"blob": "x" * 4100}},
        {"rate_limit": {"requests": 1, "per_seconds": 0}},
        {"organization": []},
    ],
)
def test_bad_patch_input_changes_nothing(app, client, body):
    key = create(client)
    before = (counts(app), client.get(f"/v1/api-keys/{key['id']}").json)
    answer = client.patch(f"/v1/api-keys/{key['id']}", json=body)
    assert answer.status_code == 400, answer.json
    assert (counts(app), client.get(f"/v1/api-keys/{key['id']}").json) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/api-keys/key_unknown", None),
        ("patch", "/v1/api-keys/key_unknown", {"name": "x"}),
        ("delete", "/v1/api-keys/key_unknown", None),
        ("post", "/v1/api-keys/key_unknown/rotate", {}),
        ("delete", "/v1/system/api-key/key_unknown", None),
    ],
)
def test_unknown_ids_are_404(app, client, method, path, body):
    create(client)
    before = counts(app)
    answer = getattr(client, method)(path, json=body)
    assert answer.status_code == 404 and answer.json["code"] == "object_not_found"
    assert counts(app) == before


@pytest.mark.parametrize(
    "body", [{"grace_seconds": -1}, {"grace_seconds": "10"}, {"grace_seconds": 10**9}]
)
def test_bad_rotate_input(app, client, body):
    key = create(client)
    before = counts(app)
    assert client.post(f"/v1/api-keys/{key['id']}/rotate", json=body).status_code == 400
    assert counts(app) == before


def test_rotate_at_once(app, client):
    old = create(client, meta={"team": "ops"}, allowed_ips=["127.0.0.1"])
    answer = client.post(f"/v1/api-keys/{old['id']}/rotate")
    assert answer.status_code == 201 and answer.headers["Cache-Control"] == "no-store"
    new = answer.json
    assert new["created_via"] == "rotation" and new["id"] != old["id"]
    assert new["api_key"] != old["api_key"]
    assert (new["meta"], new["allowed_ips"], new["name"]) == ({"team": "ops"}, ["127.0.0.1"], "ci")
    assert client.get("/v1/auth", headers=bearer(old["api_key"])).json["message"] == (
        "api key revoked"
    )
    assert client.get("/v1/auth", headers=bearer(new["api_key"])).status_code == 200
    assert "key.rotated" in audit_types(app)
    again = client.post(f"/v1/api-keys/{old['id']}/rotate")
    assert again.status_code == 409


def test_rotate_with_grace(app, client):
    with freeze_time("2030-01-01 12:00:00") as frozen:
        old = create(client)
        answer = client.post(f"/v1/api-keys/{old['id']}/rotate", json={"grace_seconds": 60})
        assert answer.status_code == 201
        new = answer.json["api_key"]
        assert client.get(f"/v1/api-keys/{old['id']}").json["revoked_at"] == "2030-01-01T12:01:00Z"
        frozen.tick(timedelta(seconds=59))
        assert client.get("/v1/auth", headers=bearer(old["api_key"])).status_code == 200
        assert client.get("/v1/auth", headers=bearer(new)).status_code == 200
        frozen.tick(timedelta(seconds=1))
        gone = client.get("/v1/auth", headers=bearer(old["api_key"]))
        assert (gone.status_code, gone.json["message"]) == (401, "api key revoked")
        assert client.get("/v1/auth", headers=bearer(new)).status_code == 200


def test_one_key_per_organization(app, client):
    org = make_org(app, "Team", owner_id(app))
    first = create(client, organization=org)
    unscoped = create(client)
    store_settings(app, one_key_per_organization=True)
    second = create(client, organization=org)
    assert client.get(f"/v1/api-keys/{first['id']}").json["revoked_at"] is not None
    assert client.get(f"/v1/api-keys/{second['id']}").json["revoked_at"] is None
    assert client.get(f"/v1/api-keys/{unscoped['id']}").json["revoked_at"] is None


@pytest.fixture
def parent(client):
    """A restricted key that manages keys itself."""
    return create(
        client,
        scopes=["api", "manage"],
        allowed_ips=["127.0.0.0/8"],
        allowed_endpoints=["/v1/api-keys", "GET /v1/auth"],
        rate_limit={"requests": 10, "per_seconds": 1},
    )


def test_a_key_passes_its_restrictions_on(client, parent):
    child = client.post("/v1/api-keys", json={"name": "child"}, headers=bearer(parent["api_key"]))
    assert child.status_code == 201
    assert child.json["allowed_ips"] == ["127.0.0.0/8"]
    assert child.json["allowed_endpoints"] == ["/v1/api-keys", "GET /v1/auth"]
    assert child.json["rate_limit"] == {"requests": 10, "per_seconds": 1}
    narrower = {
        "name": "narrower",
        "allowed_ips": ["127.0.0.1"],
        "allowed_endpoints": ["GET /v1/api-keys", "/v1/api-keys/x", "GET /v1/auth"],
        "rate_limit": {"requests": 1, "per_seconds": 1},
    }
    answer = client.post("/v1/api-keys", json=narrower, headers=bearer(parent["api_key"]))
    assert answer.status_code == 201


@pytest.mark.parametrize(
    "wider",
    [
        {"allowed_ips": ["0.0.0.0/0"]},
        {"allowed_endpoints": ["/v1"]},
        {"allowed_endpoints": ["/v1/auth"]},
        {"rate_limit": {"requests": 11, "per_seconds": 1}},
    ],
)
def test_a_key_never_creates_a_wider_key(app, client, parent, wider):
    before = counts(app)
    refused = client.post(
        "/v1/api-keys", json={"name": "w", **wider}, headers=bearer(parent["api_key"])
    )
    assert refused.status_code == 403
    assert counts(app) == before


def test_a_key_never_widens_a_key_by_changing_it(app, client, parent):
    elsewhere = make_org(app, "Elsewhere", owner_id(app))
    client.patch(f"/v1/api-keys/{parent['id']}", json={"organization": elsewhere})
    client.get("/v1/auth", headers=bearer(parent["api_key"]))  # last_used_at is set now
    before = (counts(app), client.get(f"/v1/api-keys/{parent['id']}").json)
    for change in [{"allowed_ips": None}, {"organization": None}, {"rate_limit": None}]:
        refused = client.patch(
            f"/v1/api-keys/{parent['id']}", json=change, headers=bearer(parent["api_key"])
        )
        assert refused.status_code == 403, change
    assert (counts(app), client.get(f"/v1/api-keys/{parent['id']}").json) == before
    unscoped = create(client)
    rotated = client.post(
        f"/v1/api-keys/{unscoped['id']}/rotate", headers=bearer(parent["api_key"])
    )
    assert rotated.status_code == 403


def test_system_aliases(app, client):
    created = client.post("/v1/system/generate-api-key")
    assert created.status_code == 201 and created.json["name"] == "API key"
    assert created.headers["Cache-Control"] == "no-store"
    listed = client.get("/v1/system/api-keys").json
    assert [item["id"] for item in listed["data"]] == [created.json["id"]]
    assert client.delete(f"/v1/system/api-key/{created.json['id']}").status_code == 204
    assert client.get("/v1/auth", headers=bearer(created.json["api_key"])).status_code == 401
    store_settings(app, multi_user=True)
    _, admin = make_key(app, owner_id(app))
    for method, path in [
        ("get", "/v1/system/api-keys"),
        ("post", "/v1/system/generate-api-key"),
        ("delete", f"/v1/system/api-key/{created.json['id']}"),
    ]:
        refused = getattr(client, method)(path, headers=bearer(admin))
        assert refused.status_code == 401
        assert refused.json["message"] == "Instance is in Multi-User mode. Method denied."
    assert client.get("/v1/api-keys", headers=bearer(admin)).status_code == 200


def test_admin_endpoints_need_multi_user_mode(client):
    for method, path in [
        ("get", "/v1/admin/api-keys"),
        ("post", "/v1/admin/api-keys"),
        ("post", "/v1/admin/generate-api-key"),
        ("delete", "/v1/admin/api-keys/key_x"),
        ("delete", "/v1/admin/api-key/key_x"),
    ]:
        answer = getattr(client, method)(path, json={"user_id": "x"})
        assert answer.status_code == 401
        assert answer.json["message"] == "Instance is not in Multi-User mode. Method denied."


def test_admin_manages_every_users_keys(app, client):
    alice = make_user(app)
    alice_key_id, alice_secret = make_key(app, alice, "alice key")
    store_settings(app, multi_user=True)
    _, admin = make_key(app, owner_id(app), "admin key")
    listed = client.get("/v1/admin/api-keys", headers=bearer(admin)).json
    owners = {item["name"]: item["user"]["username"] for item in listed["data"]}
    assert owners == {"alice key": "alice", "admin key": "owner"}
    for path in ["/v1/admin/api-keys", "/v1/admin/generate-api-key"]:
        issued = client.post(
            path, json={"user_id": alice, "name": "for alice"}, headers=bearer(admin)
        )
        assert issued.status_code == 201
        assert (issued.json["owner"], issued.json["created_via"]) == (alice, "admin")
        assert (
            client.get("/v1/auth", headers=bearer(issued.json["api_key"])).json["user"]["id"]
            == alice
        )
    before = counts(app)
    unknown = client.post(
        "/v1/admin/api-keys", json={"user_id": "usr_nobody", "name": "x"}, headers=bearer(admin)
    )
    assert unknown.status_code == 404
    assert counts(app) == before
    assert client.get("/v1/admin/api-keys", headers=bearer(alice_secret)).status_code == 403
    assert (
        client.delete(f"/v1/admin/api-key/{alice_key_id}", headers=bearer(admin)).status_code == 204
    )
    assert client.get("/v1/auth", headers=bearer(alice_secret)).status_code == 401
    assert client.delete("/v1/admin/api-keys/key_nope", headers=bearer(admin)).status_code == 404
