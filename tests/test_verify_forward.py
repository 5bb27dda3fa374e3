"""Key verification for app servers and forward-auth for reverse proxies."""

from datetime import timedelta

import pytest

from authsvc.clock import utcnow
from tests.conftest import bearer
from tests.keyhelpers import (
    change_key,
    counts,
    make_key,
    make_org,
    make_user,
    store_settings,
    suspend,
)

AMBIGUOUS = "ambiguous request path"
CONFLICT = "conflicting forwarded headers"
CHANGES = {
    "VALID": {},
    "REVOKED": {"revoked_at": utcnow() - timedelta(seconds=1)},
    "DISABLED": {"enabled": False},
    "EXPIRED": {"expires_at": utcnow() - timedelta(seconds=1)},
    "FORBIDDEN": {"allowed_ips": ["10.0.0.0/8"]},
}


@pytest.mark.parametrize("code", sorted(CHANGES))
def test_verify_codes(app, client, code):
    user_id = make_user(app)
    key_id, secret = make_key(app, user_id, meta={"plan": "pro"})
    change_key(app, key_id, **CHANGES[code])
    answer = client.post("/v1/keys/verify", json={"key": secret, "ip": "192.0.2.1"})
    assert answer.status_code == 200
    assert answer.json["code"] == code
    assert answer.json["valid"] is (code == "VALID")
    assert answer.json["key"]["id"] == key_id
    assert answer.json["key"]["meta"] == {"plan": "pro"}
    assert answer.json["user"]["id"] == user_id
    assert secret not in answer.get_data(as_text=True)


@pytest.mark.parametrize("secret", ["sk-" + "A" * 46, "garbage", "", "Bearer x"])
def test_verify_unknown_keys(client, secret):
    answer = client.post("/v1/keys/verify", json={"key": secret})
    assert answer.status_code == 200
    assert answer.json == {"valid": False, "code": "NOT_FOUND", "key": None, "user": None}


def test_verify_hides_suspended_owners(app, client):
    user_id = make_user(app)
    _, secret = make_key(app, user_id)
    suspend(app, user_id)
    answer = client.post("/v1/keys/verify", json={"key": secret}).json
    assert answer == {"valid": False, "code": "NOT_FOUND", "key": None, "user": None}


def test_verify_rate_limit_and_endpoint_rules(app, client):
    _key_id, secret = make_key(
        app, make_user(app), rate_limit={"requests": 1, "per_seconds": 60},
        allowed_endpoints=["GET /v1/spaces"],
    )  # fmt: skip
    target = {"key": secret, "method": "POST", "path": "/v1/spaces"}
    assert client.post("/v1/keys/verify", json=target).json["code"] == "FORBIDDEN"
    # Without a path, endpoint restrictions fail closed.
    assert client.post("/v1/keys/verify", json={"key": secret}).json["code"] == "FORBIDDEN"
    allowed = {"key": secret, "method": "GET", "path": "/v1/spaces"}
    assert client.post("/v1/keys/verify", json=allowed).json["code"] == "VALID"
    limited = client.post("/v1/keys/verify", json=allowed)
    assert (limited.status_code, limited.json["code"]) == (200, "RATE_LIMITED")


def test_verify_needs_the_verify_keys_permission(app, client):
    plain = make_user(app)
    _, plain_key = make_key(app, plain)
    _, checked = make_key(app, plain)
    refused = client.post("/v1/keys/verify", json={"key": checked}, headers=bearer(plain_key))
    assert refused.status_code == 403 and refused.json["code"] == "forbidden"
    verifier = make_user(app, "verifier", verify_keys=True)
    _, verifier_key = make_key(app, verifier)
    allowed = client.post("/v1/keys/verify", json={"key": checked}, headers=bearer(verifier_key))
    assert allowed.json["code"] == "VALID"
    store_settings(app, default_permissions={"api_keys": True, "verify_keys": True})
    again = client.post("/v1/keys/verify", json={"key": checked}, headers=bearer(plain_key))
    assert again.json["code"] == "VALID"


@pytest.mark.parametrize("body", [{}, {"key": 5}, {"key": None}, {"key": "x", "path": 3}])
def test_verify_bad_input(app, client, body):
    client.get("/v1/api-keys")
    before = counts(app)
    answer = client.post("/v1/keys/verify", json=body)
    assert answer.status_code == 400 and answer.json["code"] == "bad_request"
    assert counts(app) == before


def test_forward_auth_answers_with_identity_headers(app, client):
    user_id = make_user(app)
    org = make_org(app, "Team", user_id)
    key_id, secret = make_key(app, user_id, organization_id=org)
    answer = client.get(
        "/v1/auth/forward",
        headers={
            **bearer(secret),
            "X-Forwarded-Method": "POST",
            "X-Forwarded-Uri": f"/v1/spaces/{org}/objects?x=1",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["X-Auth-User"] == "alice"
    assert answer.headers["X-Auth-User-Id"] == user_id
    assert answer.headers["X-Auth-Role"] == "user"
    assert answer.headers["X-Auth-Key-Id"] == key_id
    assert answer.headers["X-Auth-Organization"] == org
    _, unscoped = make_key(app, user_id)
    plain = client.get("/v1/auth/forward", headers={**bearer(unscoped), "X-Original-URI": "/x"})
    assert plain.status_code == 200 and plain.headers["X-Auth-Organization"] == ""


def test_forward_auth_nginx_headers_and_methods(app, client):
    _key_id, secret = make_key(app, make_user(app), allowed_endpoints=["GET /app"])
    nginx = {**bearer(secret), "X-Original-URI": "/app/page", "X-Original-Method": "GET"}
    assert client.get("/v1/auth/forward", headers=nginx).status_code == 200
    # nginx may pass the original method through; the forwarded one still decides.
    assert client.post("/v1/auth/forward", headers=nginx).status_code == 200
    posted = {**nginx, "X-Original-Method": "POST"}
    assert client.get("/v1/auth/forward", headers=posted).status_code == 403
    assert client.options("/v1/auth/forward", headers=nginx).status_code == 405


def test_forward_auth_refusals(app, client, anon):
    missing = anon.get("/v1/auth/forward", headers={"X-Forwarded-Uri": "/app"})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="authsvc"'
    key_id, secret = make_key(app, make_user(app), rate_limit={"requests": 1, "per_seconds": 60})
    headers = {**bearer(secret), "X-Forwarded-Uri": "/app"}
    assert client.get("/v1/auth/forward", headers=headers).status_code == 200
    limited = client.get("/v1/auth/forward", headers=headers)
    assert limited.status_code == 429
    assert {
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    } <= set(limited.headers.keys())
    change_key(app, key_id, revoked_at=utcnow())
    revoked = client.get("/v1/auth/forward", headers=headers)
    assert (revoked.status_code, revoked.json["message"]) == (401, "api key revoked")


FORWARD_PAIRS = [
    ({"X-Forwarded-Uri": "/app/public", "X-Original-URI": "/app/admin"}, "uri"),
    ({"X-Forwarded-Method": "GET", "X-Original-Method": "DELETE"}, "method"),
    ({"X-Forwarded-Method": "GET", "X-Original-Method": "get"}, "method case"),
]


@pytest.mark.parametrize(("headers", "what"), FORWARD_PAIRS, ids=[w for _, w in FORWARD_PAIRS])
def test_forward_auth_refuses_conflicting_pairs(app, client, headers, what):
    _, secret = make_key(app, make_user(app), allowed_endpoints=["GET /app/public"])
    answer = client.get("/v1/auth/forward", headers={**bearer(secret), **headers})
    assert (answer.status_code, answer.json["message"]) == (403, "conflicting forwarded headers")
    assert answer.headers["Cache-Control"] == "no-store"


def test_forward_auth_accepts_agreeing_pairs(app, client):
    _, secret = make_key(app, make_user(app), allowed_endpoints=["GET /app/public"])
    both = {
        "X-Forwarded-Uri": "/app/public?x=1",
        "X-Original-URI": "/app/public?x=1",
        "X-Forwarded-Method": "GET",
        "X-Original-Method": "GET",
    }
    assert client.get("/v1/auth/forward", headers={**bearer(secret), **both}).status_code == 200


def test_every_forward_auth_answer_is_never_cached(app, client):
    _key_id, secret = make_key(
        app, make_user(app), allowed_endpoints=["GET /app"],
        rate_limit={"requests": 1, "per_seconds": 60},
    )  # fmt: skip
    allowed = {**bearer(secret), "X-Original-URI": "/app/x", "X-Original-Method": "GET"}
    answers = {
        200: client.get("/v1/auth/forward", headers=allowed),
        401: client.get("/v1/auth/forward", headers={"X-Original-URI": "/app/x"}),
        403: client.get("/v1/auth/forward", headers={**allowed, "X-Original-URI": "/other"}),
        429: client.get("/v1/auth/forward", headers=allowed),
    }
    for status, answer in answers.items():
        assert answer.status_code == status, answer.json
        assert answer.headers["Cache-Control"] == "no-store", status


BYPASSES = [
    "/app/admin/x%2f..%2f..%2fpublic",
    "/app/public%2f..%2fadmin",
    "/app/public/%252e%252e%252fadmin",
    "/app/public/%2E%2E/admin",
    "/app/public/..;/admin",
    "/app/public/../admin",
    "/app/public//../admin",
    "/app/public\\..\\admin",
]


@pytest.mark.parametrize("uri", BYPASSES)
def test_ambiguous_paths_are_refused_by_forward_auth_and_verification(app, client, uri):
    _, secret = make_key(app, make_user(app), allowed_endpoints=["GET /app/public"])
    forward = {**bearer(secret), "X-Original-URI": uri, "X-Original-Method": "GET"}
    answer = client.get("/v1/auth/forward", headers=forward)
    assert (answer.status_code, answer.json["message"]) == (403, "ambiguous request path")
    assert "insufficient_scope" in answer.headers["WWW-Authenticate"]
    verified = client.post("/v1/keys/verify", json={"key": secret, "path": uri})
    assert (verified.status_code, verified.json["code"]) == (200, "FORBIDDEN")


def test_ambiguous_paths_are_refused_without_endpoint_rules(app, client):
    _, secret = make_key(app, make_user(app))
    forward = {**bearer(secret), "X-Original-URI": "/v1/spaces;/x"}
    answer = client.get("/v1/auth/forward", headers=forward)
    assert (answer.status_code, answer.json["message"]) == (403, "ambiguous request path")


def test_organization_scope_holds_in_any_spelling(app, client):
    user_id = make_user(app)
    mine = make_org(app, "Mine", user_id)
    other = make_org(app, "Other", user_id)
    _, scoped = make_key(app, user_id, organization_id=mine)
    for uri, status in [
        (f"/v1/spaces/{mine}/objects", 200),
        (f"/V1/SPACES/{mine.upper()}/objects", 200),
        (f"/V1/spaces/{other}/objects", 403),
        (f"/v1/Spaces/{other}", 403),
        (f"/v1/spaces/{other.upper()}", 403),
        (f"/v1/spaces;/{other}", 403),
        (f"/v1/spaces/%2e/{other}", 403),
    ]:
        answer = client.get("/v1/auth/forward", headers={**bearer(scoped), "X-Forwarded-Uri": uri})
        assert answer.status_code == status, (uri, answer.json)


# Issue 15: a key allowed /v1/auth passed when the proxy sent no X-Forwarded-Uri.
MISSING = [
    {},
    {"X-Forwarded-Uri": ""},
    {"X-Original-URI": ""},
    {"X-Forwarded-Method": "GET"},
    {"X-Original-Method": "GET", "X-Forwarded-Uri": ""},
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("headers", MISSING, ids=lambda headers: ",".join(headers) or "none")
def test_forward_auth_without_its_headers_judges_nothing(app, client, anon, headers, method):
    _, secret = make_key(app, make_user(app), allowed_endpoints=["/v1/auth"])
    for sender, sent in [(client, {**bearer(secret), **headers}), (anon, headers)]:
        answer = sender.open("/v1/auth/forward", method=method, headers=sent)
        assert (answer.status_code, answer.json["message"]) == (403, "missing forwarded headers")
        assert answer.headers["Cache-Control"] == "no-store"


# Envoy's ext_authz appends the original path to /v1/auth/forward: (method, target, headers,
# status, message) for a key that may GET /app/public and below.
APPENDED = [
    ("GET", "/v1/auth/forward/app/public", {}, 200, None),
    ("GET", "/v1/auth/forward/app/public/a?x=%2e%2e/admin", {}, 200, None),
    ("HEAD", "/v1/auth/forward/app/public", {}, 403, "endpoint not allowed for this api key"),
    ("POST", "/v1/auth/forward/app/public", {}, 403, "endpoint not allowed for this api key"),
    ("OPTIONS", "/v1/auth/forward/app/public", {}, 403, "endpoint not allowed for this api key"),
    ("DELETE", "/v1/auth/forward/app/public", {}, 403, "endpoint not allowed for this api key"),
    ("GET", "/v1/auth/forward/app/admin", {}, 403, "endpoint not allowed for this api key"),
    ("GET", "/v1/auth/forward/", {}, 403, "endpoint not allowed for this api key"),
    ("GET", "/v1/auth/forward/app/publicity", {}, 403, "endpoint not allowed for this api key"),
    # Routing decodes the path; the rules see the one that was sent.
    ("GET", "/v1/auth/forward/app/public/%2e%2e/admin", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app/public/../admin", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app/public/./x", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app/public%2f..%2fadmin", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app/public/%252e%252e/admin", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app/public/%5c..%5cadmin", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app/public/..;/admin", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app/public\\..\\admin", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward//app/public", {}, 403, AMBIGUOUS),
    # Decoded, "%3f" would end the path: /app/public, where the upstream serves /admin.
    ("GET", "/v1/auth/forward/app/public%3f/../../admin", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app/public%3Fx", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward/app//public", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/forward%2fapp/public", {}, 403, AMBIGUOUS),
    ("GET", "/v1/auth/%66orward/app/public", {}, 403, AMBIGUOUS),
    # Forwarded headers, when sent, must name this very request.
    ("GET", "/v1/auth/forward/app/public?x=1", {"X-Forwarded-Uri": "/app/public?x=1"}, 200, None),
    ("GET", "/v1/auth/forward/app/public", {"X-Original-Method": "GET"}, 200, None),
    ("GET", "/v1/auth/forward/app/admin", {"X-Forwarded-Uri": "/app/public"}, 403, CONFLICT),
    ("GET", "/v1/auth/forward/app/admin", {"X-Original-URI": "/app/public"}, 403, CONFLICT),
    ("GET", "/v1/auth/forward/app/public?x=1", {"X-Forwarded-Uri": "/app/public"}, 403, CONFLICT),
    ("DELETE", "/v1/auth/forward/app/public", {"X-Forwarded-Method": "GET"}, 403, CONFLICT),
    ("DELETE", "/v1/auth/forward/app/public", {"X-Original-Method": "GET"}, 403, CONFLICT),
]


@pytest.mark.parametrize(("method", "target", "headers", "status", "message"), APPENDED)
def test_forward_auth_with_the_path_appended(app, client, method, target, headers, status, message):
    _, secret = make_key(app, make_user(app), allowed_endpoints=["GET /app/public"])
    answer = client.open(target, method=method, headers={**bearer(secret), **headers})
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    if method != "HEAD":
        assert answer.json.get("message") == message
    if status == 200:
        assert answer.headers["X-Auth-User"] == "alice"


def test_forward_auth_with_the_path_appended_needs_a_key(anon):
    answer = anon.get("/v1/auth/forward/app/public")
    assert (answer.status_code, answer.json["message"]) == (401, "missing authorization header")
