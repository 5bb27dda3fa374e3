"""Settings (GET/PATCH /v1/settings) and the audit log (SPEC §6–7)."""

import pytest

from authsvc.extensions import db
from authsvc.models import Setting
from tests import conftest
from tests.conftest import bearer, pair
from tests.test_accounts import REMOTE, enable, login

FIELDS = {
    "enable_api_keys",
    "pairing_enabled",
    "pairing_requires_approval",
    "api_key_endpoint_restrictions_enabled",
    "api_key_allowed_endpoints",
    "default_permissions",
    "challenge_ttl_seconds",
    "challenge_max_attempts",
    "one_key_per_organization",
}


def test_settings_defaults_come_from_environment(make_app):
    client = conftest.host_client(make_app(ENABLE_API_KEYS=False, AUTHSVC_CHALLENGE_TTL=60))
    values = client.get("/v1/settings").json
    assert set(values) == FIELDS
    assert values["enable_api_keys"] is False
    assert values["challenge_ttl_seconds"] == 60
    assert values["default_permissions"] == {"api_keys": True, "verify_keys": False}


def test_patch_merges_and_returns_everything(client):
    response = client.patch(
        "/v1/settings",
        json={
            "challenge_max_attempts": 3,
            "api_key_allowed_endpoints": ["GET /v1/spaces"],
            "default_permissions": {"verify_keys": True},
            "unknown_field": "ignored",
        },
    )
    assert response.status_code == 200
    assert set(response.json) == FIELDS
    assert response.json["challenge_max_attempts"] == 3
    assert response.json["default_permissions"] == {"api_keys": True, "verify_keys": True}
    assert client.get("/v1/settings").json == response.json
    event = client.get("/v1/audit?type=settings.updated").json["data"][0]
    assert event["details"]["changes"] == [
        "api_key_allowed_endpoints",
        "challenge_max_attempts",
        "default_permissions",
    ]
    assert event["actor_id"] is not None


@pytest.mark.parametrize(
    "body",
    [
        {"enable_api_keys": "false"},
        {"enable_api_keys": 0},
        {"challenge_ttl_seconds": "60"},
        {"challenge_ttl_seconds": 0},
        {"challenge_max_attempts": True},
        {"api_key_allowed_endpoints": "GET /v1/spaces"},
        {"api_key_allowed_endpoints": [1]},
        {"api_key_allowed_endpoints": ["/v1/spaces/../admin"]},
        {"api_key_allowed_endpoints": ["GET /v1/%2fspaces"]},
        {"api_key_allowed_endpoints": ["v1/spaces"]},
        {"default_permissions": {"api_keys": "yes"}},
        {"default_permissions": {"admin": True}},
        {"default_permissions": []},
    ],
)
def test_patch_rejects_wrong_types(app, client, body):
    response = client.patch("/v1/settings", json=body)
    assert response.status_code == 400
    assert response.json["code"] == "bad_request"
    with app.app_context():
        assert db.session.query(Setting).count() == 0


@pytest.mark.parametrize("environ", [{}, REMOTE])
def test_settings_need_owner_or_admin(anon, environ):
    assert anon.get("/v1/settings", environ_base=environ).status_code == 401
    assert anon.patch("/v1/settings", json={}, environ_base=environ).status_code == 401
    assert anon.get("/v1/audit", environ_base=environ).status_code == 401


def test_audit_filters_and_pagination(client):
    first = pair(client, "One")
    pair(client, "Two")
    everything = client.get("/v1/audit?limit=1000").json
    total = everything["pagination"]["total"]
    assert total == len(everything["data"]) >= 6
    ids = [int(event["id"]) for event in everything["data"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    event = everything["data"][0]
    assert set(event) >= {"id", "type", "created_at", "actor_id", "key_id", "client_ip", "details"}
    second_page = client.get("/v1/audit?offset=1&limit=2").json
    assert [e["id"] for e in second_page["data"]] == [e["id"] for e in everything["data"][1:3]]
    assert second_page["pagination"] == {"total": total, "offset": 1, "limit": 2, "has_more": True}
    created = client.get("/v1/audit?type=key.created").json["data"]
    assert len(created) == 2
    by_key = client.get(f"/v1/audit?key_id={first['key_id']}").json["data"]
    assert by_key and all(e["key_id"] == first["key_id"] for e in by_key)
    assert "sk-" not in str(everything)  # never a secret


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=-1", "limit=abc"])
def test_audit_bad_pagination(client, query):
    assert client.get(f"/v1/audit?{query}").status_code == 400


def test_admin_audit_and_user_filter(client):
    assert client.get("/v1/admin/audit").status_code == 401  # single-user instance
    enable(client)
    admin = bearer(login(client).json["token"])
    bob = client.post(
        "/v1/admin/users", json={"username": "bob", "password": "pw"}, headers=admin
    ).json
    login(client, "bob", "wrong")
    events = client.get(f"/v1/admin/audit?user_id={bob['id']}", headers=admin).json["data"]
    assert [e["type"] for e in events] == ["login.failed", "user.created"]
    assert events[1]["subject_user_id"] == bob["id"]
    assert events[1]["actor_id"] != bob["id"]
    assert client.get("/v1/audit", headers=admin).status_code == 200
