"""The authorization table of SPEC §2–3: each rule alone denies, and changes apply at once."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from authsvc.clock import utcnow
from authsvc.extensions import db
from authsvc.models import Organization
from tests.conftest import bearer
from tests.keyhelpers import change_key, make_key, make_org, make_user, store_settings, suspend

INVALID = 'Bearer realm="authsvc", error="invalid_token"'
SCOPE = 'Bearer realm="authsvc", error="insufficient_scope"'


def personal_org(app: Any) -> str:
    with app.app_context():
        return db.session.scalars(
            select(Organization.id).where(Organization.name == "Personal")
        ).one()


def forward_to(uri: str, method: str = "GET") -> dict[str, Any]:
    return {
        "path": "/v1/auth/forward",
        "headers": {"X-Forwarded-Uri": uri, "X-Forwarded-Method": method},
    }


# id, change(app, key_id, user_id, other_org_id), request, status, message
TABLE = [
    (
        "revoked",
        lambda a, k, u, o: change_key(a, k, revoked_at=utcnow()),
        {},
        401,
        "api key revoked",
    ),
    ("disabled", lambda a, k, u, o: change_key(a, k, enabled=False), {}, 401, "api key disabled"),
    (
        "expired",
        lambda a, k, u, o: change_key(a, k, expires_at=utcnow() - timedelta(seconds=1)),
        {},
        401,
        "api key expired",
    ),
    ("owner suspended", lambda a, k, u, o: suspend(a, u), {}, 401, "invalid api key"),
    (
        "api keys off",
        lambda a, k, u, o: store_settings(a, enable_api_keys=False),
        {},
        403,
        "api keys are disabled on this instance",
    ),
    (
        "no api_keys permission",
        lambda a, k, u, o: store_settings(
            a, default_permissions={"api_keys": False, "verify_keys": False}
        ),
        {},
        403,
        "the key's owner lacks the api_keys permission",
    ),
    (
        "ip outside allowed_ips",
        lambda a, k, u, o: change_key(a, k, allowed_ips=["10.0.0.0/8", "::1"]),
        {},
        403,
        "client address not allowed for this api key",
    ),
    (
        "instance endpoint list",
        lambda a, k, u, o: store_settings(
            a, api_key_endpoint_restrictions_enabled=True, api_key_allowed_endpoints=["/v1/spaces"]
        ),
        {},
        403,
        "endpoint not allowed for api keys on this instance",
    ),
    (
        "key endpoint list",
        lambda a, k, u, o: change_key(a, k, allowed_endpoints=["/v1/spaces"]),
        {},
        403,
        "endpoint not allowed for this api key",
    ),
    (
        "key endpoint method",
        lambda a, k, u, o: change_key(a, k, allowed_endpoints=["POST /v1/auth"]),
        {},
        403,
        "endpoint not allowed for this api key",
    ),
    (
        "organization scope",
        lambda a, k, u, o: None,
        {"other_org": True},
        403,
        "api key is scoped to another organization",
    ),
    (
        "key scoped to another organization",
        lambda a, k, u, o: change_key(a, k, organization_id=o),
        {"own_org": True},
        403,
        "api key is scoped to another organization",
    ),
]


@pytest.mark.parametrize(
    ("change", "options", "status", "message"),
    [case[1:] for case in TABLE],
    ids=[case[0] for case in TABLE],
)
def test_each_rule_alone_denies_from_the_next_request(
    app, client, change, options, status, message
):
    user_id = make_user(app)
    other_org = make_org(app, "Elsewhere", user_id)
    key_id, secret = make_key(app, user_id)
    personal = personal_org(app)
    if options.get("other_org"):
        # The key's owner is not a member of this organization at all.
        stranger = make_org(app, "Stranger")
        request = forward_to(f"/v1/spaces/{stranger}/objects")
    elif options.get("own_org"):
        request = forward_to(f"/v1/spaces/{personal}/objects")
    else:
        request = {"path": "/v1/auth", "headers": {}}
    send = lambda: client.get(request["path"], headers={**request["headers"], **bearer(secret)})  # noqa: E731
    if not options.get("other_org"):
        assert send().status_code == 200
    change(app, key_id, user_id, other_org)
    denied = send()
    assert denied.status_code == status
    assert denied.json == {
        "object": "error",
        "status": status,
        "code": "unauthorized" if status == 401 else "forbidden",
        "message": message,
    }
    assert denied.headers["WWW-Authenticate"] == (INVALID if status == 401 else SCOPE)
    assert denied.headers["Anytype-Version"] == "2025-11-08"


@pytest.fixture
def alice_key(app):
    """(key id, secret) of a plain user's key."""
    return make_key(app, make_user(app))


def test_missing_and_malformed_headers(client, anon):
    missing = anon.get("/v1/auth")
    assert (missing.status_code, missing.json["message"]) == (401, "missing authorization header")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="authsvc"'
    for header in ["Basic abc", "Bearer", "Bearer a b", "sk-abc"]:
        bad = client.get("/v1/auth", headers={"Authorization": header})
        assert (bad.status_code, bad.json["message"]) == (
            401,
            "invalid authorization header format",
        )
    unknown = client.get("/v1/auth", headers=bearer("sk-" + "A" * 46))
    assert (unknown.status_code, unknown.json["message"]) == (401, "invalid api key")
    assert unknown.headers["WWW-Authenticate"] == INVALID


def test_a_change_back_takes_effect_too(app, client, alice_key):
    key_id, secret = alice_key
    change_key(app, key_id, enabled=False)
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 401
    change_key(app, key_id, enabled=True)
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200
    store_settings(app, enable_api_keys=False)
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 403
    store_settings(app, enable_api_keys=True)
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200


@pytest.mark.parametrize(
    ("allowed_ips", "address", "status"),
    [
        (["10.0.0.0/8"], "10.1.2.3", 200),
        (["10.0.0.0/8"], "11.1.2.3", 403),
        (["192.0.2.7"], "192.0.2.7", 200),
        (["2001:db8::/32"], "2001:db8::1", 200),
        (["2001:db8::/32"], "10.1.2.3", 403),
        ([], "127.0.0.1", 403),
    ],
)
def test_allowed_ips(app, client, alice_key, allowed_ips, address, status):
    key_id, secret = alice_key
    change_key(app, key_id, allowed_ips=allowed_ips)
    answer = client.get("/v1/auth", headers=bearer(secret), environ_base={"REMOTE_ADDR": address})
    assert answer.status_code == status


@pytest.mark.parametrize(
    ("rules", "method", "uri", "status"),
    [
        (["GET /v1/spaces"], "GET", "/v1/spaces", 200),
        (["GET /v1/spaces"], "POST", "/v1/spaces", 403),
        (["get /v1/spaces"], "GET", "/v1/spaces?offset=1", 200),
        (["/v1/spaces"], "DELETE", "/v1/spaces/", 200),
        (["/v1/spaces"], "GET", "/v1/spacesX", 403),
        (["/v1/spaces"], "GET", "/v1/spaces/../auth", 403),
        (["/v1/spaces"], "GET", "/v1/spaces%2f..%2fauth", 403),
        (["/v1/spaces"], "GET", "/v1/spaces/%2e%2e/auth", 403),
        (["/v1/spaces"], "GET", "/v1/spaces/..%252fauth", 403),
        (["/v1/spaces"], "GET", "/v1/spaces//..//..//v1/auth", 403),
        (["/v1/spaces"], "GET", "//v1/spaces/../../v1/auth", 403),
        (["/v1/spaces"], "GET", "/v1/spaces\\..\\auth", 403),
    ],
)
def test_key_endpoint_rules_through_forward_auth(
    app, client, alice_key, rules, method, uri, status
):
    key_id, secret = alice_key
    change_key(app, key_id, allowed_endpoints=rules)
    request = forward_to(uri, method)
    answer = client.get(request["path"], headers={**request["headers"], **bearer(secret)})
    assert answer.status_code == status, answer.json


def test_instance_rules_apply_to_every_key(app, client, alice_key):
    _, secret = alice_key
    store_settings(
        app, api_key_endpoint_restrictions_enabled=True, api_key_allowed_endpoints=["GET /v1/auth"]
    )
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200
    assert client.get("/v1/spaces", headers=bearer(secret)).status_code == 403
    store_settings(app, api_key_endpoint_restrictions_enabled=False)
    assert client.get("/v1/spaces", headers=bearer(secret)).status_code == 200


def test_key_rate_limit(app, client, alice_key):
    key_id, secret = alice_key
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200
    change_key(app, key_id, rate_limit={"requests": 2, "per_seconds": 60})
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200
    limited = client.get("/v1/auth", headers=bearer(secret))
    assert limited.status_code == 429
    assert limited.json["code"] == "rate_limit_exceeded"
    assert limited.json["message"] == "rate limit exceeded for this api key"
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert limited.json["retry_after"] == int(limited.headers["Retry-After"])
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) > 0
    change_key(app, key_id, rate_limit=None)
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200


def test_a_key_reaches_its_organization_only(app, client):
    user_id = make_user(app)
    elsewhere = make_org(app, "Elsewhere", user_id)
    _, scoped = make_key(app, user_id, organization_id=elsewhere)
    _, unscoped = make_key(app, user_id)
    for secret, org, status in [
        (scoped, elsewhere, 200),
        (scoped, personal_org(app), 403),
        (unscoped, elsewhere, 200),
        (unscoped, personal_org(app), 200),
    ]:
        request = forward_to(f"/v1/spaces/{org}/objects")
        answer = client.get(request["path"], headers={**request["headers"], **bearer(secret)})
        assert answer.status_code == status
