"""OAuth's face of pairing, in-process: discovery, the device flow, introspection, revocation."""

import hashlib
import re
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from authsvc import device, tokens, users
from authsvc.clock import utcnow
from authsvc.extensions import db
from authsvc.models import ApiKey, Challenge
from tests.conftest import bearer, host_client
from tests.keyhelpers import (
    audit_types,
    change_key,
    make_key,
    make_user,
    owner_id,
    store_settings,
    suspend,
)

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")
START = "2030-01-01 12:00:00"


def authorize(anon, client_id="My Script", **extra):
    answer = anon.post("/oauth/device_authorization", data={"client_id": client_id, **extra})
    assert answer.status_code == 200, answer.json
    return answer.json


def poll(anon, started, client_id="My Script"):
    return anon.post(
        "/oauth/token",
        data={"grant_type": GRANT, "device_code": started["device_code"], "client_id": client_id},
    )


def error_of(answer):
    """The OAuth error code, after checking the body is OAuth's error shape and nothing else."""
    assert set(answer.json) == {"error", "error_description"}, answer.json
    return answer.json["error"]


def decide(client, user_code, action="approve", **fields):
    return client.post(
        "/v1/pairing/device", json={"user_code": user_code, "action": action, **fields}
    )


def test_discovery_names_every_endpoint_from_the_base_the_client_used(anon):
    answer = anon.get("/.well-known/oauth-authorization-server", base_url="http://127.0.0.1:8080")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    base = "http://127.0.0.1:8080"
    assert answer.json == {
        "issuer": base,
        "device_authorization_endpoint": f"{base}/oauth/device_authorization",
        "token_endpoint": f"{base}/oauth/token",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "grant_types_supported": [GRANT],
        "scopes_supported": ["api"],
        "token_endpoint_auth_methods_supported": ["none"],
    }


def test_device_authorization_answers_codes_and_stores_only_a_digest(app, anon):
    answer = anon.post(
        "/oauth/device_authorization",
        data={"client_id": "  My Script ", "scope": "api"},
        headers={"User-Agent": "curl/8"},
    )
    assert answer.status_code == 200, answer.json
    assert answer.headers["Cache-Control"] == "no-store"
    started = answer.json
    assert USER_CODE.match(started["user_code"])
    assert len(started["device_code"]) >= 22  # ≥ 128 bits in base64url
    assert started["verification_uri"] == "http://localhost/ui/device"
    assert started["verification_uri_complete"] == (
        f"http://localhost/ui/device?user_code={started['user_code']}"
    )
    assert (started["expires_in"], started["interval"]) == (300, 5)
    with app.app_context():
        challenge = db.session.scalars(select(Challenge)).one()
        stored = [str(getattr(challenge, column.key)) for column in Challenge.__table__.columns]
        assert started["device_code"] not in " ".join(stored)
        digest = hashlib.sha256(started["device_code"].encode()).hexdigest()
        assert challenge.device_code_digest == digest
        assert (challenge.kind, challenge.app_name, challenge.user_agent) == (
            "device",
            "My Script",
            "curl/8",
        )
        assert challenge.user_code == started["user_code"].replace("-", "")
    assert "challenge.created" in audit_types(app)


def test_a_json_body_works_as_a_form_does(anon):
    answer = anon.post("/oauth/device_authorization", json={"client_id": "Json App"})
    assert answer.status_code == 200, answer.json
    pending = anon.post(
        "/oauth/token",
        json={
            "grant_type": GRANT,
            "device_code": answer.json["device_code"],
            "client_id": "Json App",
        },
    )
    assert (pending.status_code, error_of(pending)) == (400, "authorization_pending")


def test_the_whole_flow_approved_through_the_api(app, anon, client):
    with freeze_time(START) as frozen:
        started = authorize(anon)
        pending = poll(anon, started)
        assert (pending.status_code, error_of(pending)) == (400, "authorization_pending")
        assert pending.headers["Cache-Control"] == "no-store"
        # the person types the code in any case, with spaces instead of the dash
        typed = started["user_code"].lower().replace("-", " ")
        decided = decide(client, f" {typed} ")
        assert decided.status_code == 200, decided.json
        assert decided.json == {
            "app_name": "My Script",
            "client_ip": "127.0.0.1",
            "status": "approved",
        }
        frozen.tick(timedelta(seconds=5))
        issued = poll(anon, started)
        assert issued.status_code == 200, issued.json
        assert issued.headers["Cache-Control"] == "no-store"
        token = issued.json
        assert set(token) == {"access_token", "token_type", "scope", "key_id"}
        assert (token["token_type"], token["scope"]) == ("Bearer", "api")
        me = anon.get("/v1/auth", headers=bearer(token["access_token"]))
        assert me.status_code == 200, me.json
        key = me.json["key"]
        assert (key["id"], key["name"], key["created_via"], key["scopes"]) == (
            token["key_id"],
            "My Script",
            "device",
            ["api"],
        )
        assert key["owner"] == owner_id(app)
        frozen.tick(timedelta(seconds=5))
        again = poll(anon, started)
        assert (again.status_code, error_of(again)) == (400, "invalid_grant")
    types = audit_types(app)
    for event in ("challenge.created", "challenge.claimed", "key.created", "pairing.succeeded"):
        assert event in types


def test_polling_too_soon_slows_down_by_five_seconds_each_time(anon):
    with freeze_time(START) as frozen:
        started = authorize(anon)
        assert error_of(poll(anon, started)) == "authorization_pending"
        frozen.tick(timedelta(seconds=4))
        assert error_of(poll(anon, started)) == "slow_down"  # the interval is now 10 s
        frozen.tick(timedelta(seconds=5))  # 9 s after the last accepted poll
        assert error_of(poll(anon, started)) == "slow_down"  # now 15 s
        frozen.tick(timedelta(seconds=5))  # 14 s
        assert error_of(poll(anon, started)) == "slow_down"  # now 20 s
        frozen.tick(timedelta(seconds=6))  # 20 s
        assert error_of(poll(anon, started)) == "authorization_pending"
        frozen.tick(timedelta(seconds=19))
        assert error_of(poll(anon, started)) == "slow_down"


def test_a_denied_request_answers_access_denied(app, anon, client):
    with freeze_time(START) as frozen:
        started = authorize(anon)
        denied = decide(client, started["user_code"], "deny")
        assert denied.json == {
            "app_name": "My Script",
            "client_ip": "127.0.0.1",
            "status": "denied",
        }
        frozen.tick(timedelta(seconds=5))
        answer = poll(anon, started)
        assert (answer.status_code, error_of(answer)) == (400, "access_denied")
        again = decide(client, started["user_code"])
        assert again.status_code == 404
    assert "challenge.denied" in audit_types(app)


def test_a_request_expires_with_the_challenge_ttl(anon, client):
    with freeze_time(START) as frozen:
        started = authorize(anon)
        frozen.tick(timedelta(seconds=299))
        assert error_of(poll(anon, started)) == "authorization_pending"
        frozen.tick(timedelta(seconds=1))
        assert error_of(poll(anon, started)) == "expired_token"
        assert decide(client, started["user_code"]).status_code == 404


def test_an_approval_that_comes_too_late_gives_no_key(app, anon, client):
    with freeze_time(START) as frozen:
        started = authorize(anon)
        assert decide(client, started["user_code"]).status_code == 200
        frozen.tick(timedelta(seconds=300))
        assert error_of(poll(anon, started)) == "expired_token"
    with app.app_context():
        assert db.session.scalars(select(ApiKey)).all() == []


def test_the_host_narrows_the_key_while_approving(app, anon, client):
    with app.app_context():
        (personal_id,) = users.organization_ids(users.get_owner())
    with freeze_time(START):
        started = authorize(anon)
        approved = decide(
            client,
            started["user_code"],
            organization=personal_id,
            expires_at="2030-01-02T12:00:00Z",
            allowed_endpoints=["GET /v1/spaces"],
        )
        assert approved.status_code == 200, approved.json
        issued = poll(anon, started)
        assert issued.status_code == 200, issued.json
        assert issued.json["expires_in"] == 24 * 3600
        key = client.get(f"/v1/api-keys/{issued.json['key_id']}").json
        assert (key["organization"], key["expires_at"], key["allowed_endpoints"]) == (
            personal_id,
            "2030-01-02T12:00:00Z",
            ["GET /v1/spaces"],
        )
        secret = bearer(issued.json["access_token"])
        assert anon.get("/v1/spaces", headers=secret).status_code == 200
        assert anon.get("/v1/auth/whoami", headers=secret).status_code == 403


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"organization": "org_unknown"}, "organization not found"),
        ({"expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"allowed_endpoints": ["not a path"]}, "allowed_endpoints"),
        ({"action": "maybe"}, "action"),
    ],
)
def test_a_bad_narrowing_is_refused_and_the_request_stays_pending(anon, client, fields, message):
    started = authorize(anon)
    refused = decide(client, started["user_code"], **{"action": "approve", **fields})
    assert refused.status_code in {400, 404}, refused.json
    assert message in refused.json["message"]
    assert decide(client, started["user_code"]).status_code == 200


def test_polls_that_cannot_succeed(anon):
    started = authorize(anon)
    cases = [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": GRANT, "client_id": "My Script"}, "invalid_request"),
        ({"grant_type": GRANT, "device_code": started["device_code"]}, "invalid_request"),
        ({"device_code": started["device_code"], "client_id": "My Script"}, "invalid_request"),
        (
            {"grant_type": GRANT, "device_code": "unknown", "client_id": "My Script"},
            "invalid_grant",
        ),
        (
            {"grant_type": GRANT, "device_code": started["device_code"], "client_id": "Other"},
            "invalid_grant",
        ),
    ]
    for data, error in cases:
        answer = anon.post("/oauth/token", data=data)
        assert (answer.status_code, error_of(answer)) == (400, error), data


@pytest.mark.parametrize(
    ("send", "error"),
    [
        ({"data": "client_id=A&client_id=B"}, "invalid_request"),
        ({"data": {"client_id": "A\x00"}}, "invalid_request"),
        ({"data": {"client_id": "x" * 65}}, "invalid_request"),
        ({"data": {"client_id": "A", "scope": "api manage"}}, "invalid_scope"),
        ({"json": {"client_id": 5}}, "invalid_request"),
        ({"data": "{not json", "content_type": "application/json"}, "invalid_request"),
        ({"json": ["client_id"]}, "invalid_request"),
        ({"json": {}}, "invalid_request"),
    ],
)
def test_bad_device_authorizations_answer_in_oauths_shape(anon, send, error):
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if "data" in send else {}
    answer = anon.post("/oauth/device_authorization", headers=headers, **send)
    assert (answer.status_code, error_of(answer)) == (400, error)


def test_other_endpoints_keep_their_own_error_shape_and_json_bodies(anon):
    answer = anon.post("/v1/auth/challenges", data={"app_name": "Form App"})
    assert answer.status_code == 400
    assert answer.json["code"] == "bad_request"


def test_device_requests_are_challenges_on_the_host_list(anon, client):
    started = authorize(anon)
    listed = client.get("/v1/pairing/challenges").json["data"]
    (entry,) = listed
    assert (entry["kind"], entry["app_name"], entry["code"], entry["scope"]) == (
        "device",
        "My Script",
        None,
        "api",
    )
    claimed = client.post(f"/v1/pairing/challenges/{entry['challenge_id']}/claim")
    assert claimed.status_code == 409
    redeemed = anon.post(
        "/v1/auth/api_keys", json={"challenge_id": entry["challenge_id"], "code": "0000"}
    )
    assert redeemed.status_code == 404
    looked_up = client.post("/v1/pairing/device/lookup", json={"user_code": started["user_code"]})
    assert looked_up.json["challenge_id"] == entry["challenge_id"]
    denied = client.post(f"/v1/pairing/challenges/{entry['challenge_id']}/deny")
    assert denied.status_code == 204
    assert error_of(poll(anon, started)) == "access_denied"


def test_device_requests_share_the_pending_caps(make_app):
    app = make_app(AUTHSVC_MAX_PENDING_PER_CLIENT=2)
    anon = app.test_client()
    assert anon.post("/v1/auth/challenges", json={"app_name": "Anytype"}).status_code == 201
    authorize(anon)
    refused = anon.post("/oauth/device_authorization", data={"client_id": "Third"})
    assert (refused.status_code, error_of(refused)) == (429, "temporarily_unavailable")
    assert int(refused.headers["Retry-After"]) >= 1
    assert anon.post("/v1/auth/challenges", json={"app_name": "Fourth"}).status_code == 429


def test_device_requests_share_the_creation_rate_limit(make_app):
    app = make_app(AUTHSVC_CHALLENGE_RATE_LIMIT="2 per minute")
    anon = app.test_client()
    authorize(anon)
    assert anon.post("/oauth/device_authorization", data={}).status_code == 400  # counts too
    refused = anon.post("/oauth/device_authorization", data={"client_id": "Third"})
    assert (refused.status_code, error_of(refused)) == (429, "temporarily_unavailable")
    assert refused.headers["X-RateLimit-Limit"] == "2"


def test_wrong_user_codes_spend_the_budget_and_lock_pairing(make_app):
    app = make_app(AUTHSVC_PAIRING_FAILURE_BUDGET=3)
    client, anon = host_client(app), app.test_client()
    started = authorize(anon)
    for _ in range(4):  # a right code spends nothing
        looked_up = client.post(
            "/v1/pairing/device/lookup", json={"user_code": started["user_code"]}
        )
        assert looked_up.status_code == 200
    for wrong in ("BBBB-BBBB", "bbbbbbbc", "nonsense"):
        assert decide(client, wrong).status_code == 404
    assert audit_types(app).count("pairing.failed") == 3
    assert "pairing.locked" in audit_types(app)
    refused = decide(client, started["user_code"])
    assert (refused.status_code, refused.json["message"]) == (403, "pairing is disabled")
    locked = anon.post("/oauth/device_authorization", data={"client_id": "Late"})
    assert (locked.status_code, error_of(locked)) == (403, "access_denied")
    assert error_of(poll(anon, started)) == "access_denied"
    assert anon.post("/v1/auth/challenges", json={"app_name": "Any"}).status_code == 403
    client.patch("/v1/settings", json={"pairing_enabled": True})
    assert decide(client, started["user_code"]).status_code == 200


def test_only_hosts_decide_and_only_with_the_api_keys_permission(app, anon):
    started = authorize(anon)
    assert decide(anon, started["user_code"]).status_code == 401
    _, api_only = make_key(app, owner_id(app), scopes=["api"])
    refused = anon.post(
        "/v1/pairing/device",
        json={"user_code": started["user_code"], "action": "approve"},
        headers=bearer(api_only),
    )
    assert refused.status_code == 403


def introspect(client, token, **headers):
    return client.post("/oauth/introspect", data={"token": token}, headers=headers)


def test_introspection_needs_a_verifier(app, anon, api_key):
    missing = introspect(anon, api_key)
    assert (missing.status_code, error_of(missing)) == (401, "invalid_client")
    plain_user = make_user(app, "plain")
    _, plain_key = make_key(app, plain_user)
    refused = introspect(anon, api_key, **bearer(plain_key))
    assert (refused.status_code, error_of(refused)) == (401, "invalid_client")
    verifier = make_user(app, "gateway", verify_keys=True, api_keys=True)
    _, verifier_key = make_key(app, verifier, scopes=["api"])
    assert introspect(anon, api_key, **bearer(verifier_key)).json["active"] is True


def test_introspection_of_a_usable_key(app, client, anon):
    with freeze_time(START):
        key_id, secret = make_key(app, owner_id(app), "Gateway App", scopes=["api"])
        change_key(app, key_id, expires_at=None)
        answer = introspect(client, secret)
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-store"
        owner = client.get("/v1/me").json
        assert answer.json == {
            "active": True,
            "scope": "api",
            "client_id": "Gateway App",
            "username": owner["username"],
            "sub": owner["id"],
            "token_type": "Bearer",
            "iat": 1893499200,
            "key_id": key_id,
            "organization": None,
        }
        expiring_id, expiring = make_key(app, owner_id(app))
        change_key(app, expiring_id, expires_at=None)
    with freeze_time(START):
        change_key(app, expiring_id, expires_at=datetime(2030, 1, 2, 12, 0, 0))
        assert introspect(client, expiring).json["exp"] == 1893499200 + 24 * 3600


@pytest.mark.parametrize(
    "state", ["unknown", "malformed", "revoked", "disabled", "expired", "suspended"]
)
def test_introspection_says_only_inactive(app, client, state):
    user = make_user(app, "holder")
    key_id, secret = make_key(app, user)
    if state == "unknown":
        body = secret[:-7] + ("A" if secret[-7] != "A" else "B")
        secret = body + tokens.checksum(body)
    elif state == "malformed":
        secret = "not a key"
    elif state == "revoked":
        change_key(app, key_id, revoked_at=datetime(2000, 1, 1))
    elif state == "disabled":
        change_key(app, key_id, enabled=False)
    elif state == "expired":
        change_key(app, key_id, expires_at=datetime(2000, 1, 1))
    else:
        suspend(app, user)
    answer = introspect(client, secret)
    assert (answer.status_code, answer.json) == (200, {"active": False})


def test_introspection_says_inactive_while_keys_are_off_on_the_instance(app, client, api_key):
    store_settings(app, enable_api_keys=False)
    assert introspect(client, api_key).json == {"active": False}


def test_introspection_needs_a_token(client):
    answer = client.post("/oauth/introspect", data={})
    assert (answer.status_code, error_of(answer)) == (400, "invalid_request")


def test_revocation_by_the_token_itself(app, anon, api_key):
    answer = anon.post("/oauth/revoke", data={"token": api_key, "token_type_hint": "access_token"})
    assert (answer.status_code, answer.json) == (200, {})
    refused = anon.get("/v1/auth", headers=bearer(api_key))
    assert (refused.status_code, refused.json["message"]) == (401, "api key revoked")
    assert audit_types(app).count("key.revoked") == 1
    assert anon.post("/oauth/revoke", data={"token": api_key}).status_code == 200
    assert audit_types(app).count("key.revoked") == 1
    for unknown in ("sk-unknown", "x"):
        assert anon.post("/oauth/revoke", data={"token": unknown}).status_code == 200
    missing = anon.post("/oauth/revoke", data={})
    assert (missing.status_code, error_of(missing)) == (400, "invalid_request")


def test_a_poll_that_read_the_approval_before_another_won_gets_no_key(app, anon, client):
    """What a race comes to: a poll still holding the approved row after a rival took it."""
    with freeze_time(START):
        started = authorize(anon)
        assert decide(client, started["user_code"]).status_code == 200
        with app.app_context():
            stale = db.session.scalars(select(Challenge)).one()
            assert poll(anon, started).status_code == 200
            with pytest.raises(device.DeviceError) as refused:
                device.issue_key(stale, utcnow())
            assert refused.value.error == "invalid_grant"
            assert len(db.session.scalars(select(ApiKey)).all()) == 1


def test_the_pairing_commands_show_a_device_request_without_a_code(app, anon, monkeypatch):
    from click.testing import CliRunner

    from authsvc.cli import main

    monkeypatch.setenv("AUTHSVC_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("JWT_SECRET", "cli-test-secret-0123456789")
    authorize(anon, "Kiosk")
    listed = CliRunner().invoke(main, ["pairing", "list"], catch_exceptions=False).output
    assert listed.startswith("device (type its code)  app 'Kiosk'"), listed
    with app.app_context():
        assert db.session.scalars(select(Challenge)).one().code == ""
