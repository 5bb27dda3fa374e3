"""Values no column can hold answer 400 naming the bound, and nothing is written."""

import pytest

from tests.conftest import host_client
from tests.keyhelpers import counts

OFFSET_BOUND = "9007199254740991"


def create_key(client, **fields):
    answer = client.post("/v1/api-keys", json={"name": "target", **fields})
    assert answer.status_code == 201, answer.json
    return answer.json


def assert_refused(app, before, response, words):
    assert response.status_code == 400, response.json
    assert response.json["code"] == "bad_request"
    assert words in response.json["message"], response.json
    assert counts(app) == before


@pytest.mark.parametrize("path", ["/v1/api-keys", "/v1/audit", "/v1/pairing/challenges"])
@pytest.mark.parametrize("offset", ["9223372036854775808", "9007199254740992", "10" * 40])
def test_offsets_beyond_the_bound(app, client, path, offset):
    before = counts(app)
    assert_refused(app, before, client.get(f"{path}?offset={offset}"), OFFSET_BOUND)


def test_the_largest_offset_is_an_empty_page(client):
    answer = client.get(f"/v1/api-keys?offset={OFFSET_BOUND}")
    assert answer.status_code == 200
    assert answer.json["data"] == [] and answer.json["pagination"]["has_more"] is False


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"expires_at": "9999-12-31T23:59:59-01:00"}, "between 0001-01-01 and 9999-12-31"),
        ({"expires_at": "0001-01-01T00:30:00+01:00"}, "between 0001-01-01 and 9999-12-31"),
        ({"expires_in_days": 10**6}, "36500"),
        ({"expires_in_days": 2**63}, "36500"),
        ({"rate_limit": {"requests": 2**63, "per_seconds": 1}}, "1000000000"),
        ({"rate_limit": {"requests": 1, "per_seconds": 2**63}}, "31536000"),
        ({"rate_limit": {"requests": 0, "per_seconds": 1}}, "greater than or equal to 1"),
    ],
)
def test_key_fields_beyond_what_can_be_stored(app, client, fields, words):
    before = counts(app)
    assert_refused(app, before, client.post("/v1/api-keys", json={"name": "x", **fields}), words)


def test_a_change_beyond_the_bounds_writes_nothing(app, client):
    key = create_key(client)
    before = counts(app)
    changed = client.patch(
        f"/v1/api-keys/{key['id']}", json={"expires_at": "9999-12-31T23:59:59-01:00"}
    )
    assert_refused(app, before, changed, "9999-12-31")
    assert client.get(f"/v1/api-keys/{key['id']}").json["expires_at"] is None


@pytest.mark.parametrize("grace", [2**63, 30 * 24 * 3600 + 1, -1])
def test_grace_beyond_the_bound(app, client, grace):
    key = create_key(client)
    before = counts(app)
    rotated = client.post(f"/v1/api-keys/{key['id']}/rotate", json={"grace_seconds": grace})
    assert_refused(app, before, rotated, "grace_seconds")
    assert client.get(f"/v1/api-keys/{key['id']}").json["revoked_at"] is None


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("challenge_ttl_seconds", 10**12, "from 30 to 3600"),
        ("challenge_ttl_seconds", 3601, "from 30 to 3600"),
        ("challenge_ttl_seconds", 29, "from 30 to 3600"),
        ("challenge_ttl_seconds", 0, "from 30 to 3600"),
        ("challenge_ttl_seconds", 300.0, "from 30 to 3600"),
        ("challenge_max_attempts", 21, "from 1 to 20"),
        ("challenge_max_attempts", 0, "from 1 to 20"),
        ("challenge_max_attempts", 2**63, "from 1 to 20"),
    ],
)
def test_settings_beyond_their_bounds(app, client, name, value, words):
    before = counts(app)
    assert_refused(app, before, client.patch("/v1/settings", json={name: value}), words)
    assert (
        client.get("/v1/settings").json[name]
        == app.config[
            "AUTHSVC_CHALLENGE_TTL"
            if name == "challenge_ttl_seconds"
            else "AUTHSVC_CHALLENGE_MAX_ATTEMPTS"
        ]
    )


@pytest.mark.parametrize(
    "values",
    [
        {"challenge_ttl_seconds": 30, "challenge_max_attempts": 1},
        {"challenge_ttl_seconds": 3600, "challenge_max_attempts": 20},
    ],
)
def test_settings_at_their_bounds_take_effect(client, values):
    assert client.patch("/v1/settings", json=values).status_code == 200
    created = client.post("/v1/auth/challenges", json={"app_name": "Bounds"})
    assert created.status_code == 201
    listed = client.get("/v1/pairing/challenges").json["data"][0]
    assert listed["attempts_left"] == values["challenge_max_attempts"]


def test_the_environment_may_set_short_lives(make_app):
    app = make_app(AUTHSVC_CHALLENGE_TTL=2, AUTHSVC_CHALLENGE_MAX_ATTEMPTS=50)
    client = host_client(app)
    assert client.get("/v1/settings").json["challenge_ttl_seconds"] == 2
    assert client.post("/v1/auth/challenges", json={"app_name": "Short"}).status_code == 201


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "x", "meta": {"x": NaN}}',
        '{"name": "x", "meta": {"x": Infinity}}',
        '{"name": "x", "meta": {"list": [1, [2, -Infinity]]}}',
        '{"name": "x", "meta": {"x": 1e400}}',
        '{"name": "x", "unknown": NaN}',
    ],
)
def test_non_finite_numbers_anywhere_in_a_body(app, client, raw):
    before = counts(app)
    response = client.post("/v1/api-keys", data=raw, content_type="application/json")
    assert_refused(app, before, response, "finite")


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("post", "/v1/auth/challenges", '{"app_name": "x", "extra": NaN}'),
        ("patch", "/v1/settings", '{"challenge_ttl_seconds": NaN}'),
        ("post", "/v1/auth/api_keys", '{"challenge_id": "x", "code": Infinity}'),
    ],
)
def test_non_finite_numbers_on_every_endpoint(app, client, method, path, raw):
    before = counts(app)
    response = getattr(client, method)(path, data=raw, content_type="application/json")
    assert_refused(app, before, response, "finite")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/api-keys/key%00x", None),
        ("get", "/v1/audit?type=%00", None),
        ("get", "/v1/audit?user%00=x", None),
        ("post", "/v1/api-keys", {"name": "x", "meta": {"a\u0000": 1}}),
        ("post", "/v1/api-keys", {"name": "x", "allowed_endpoints": ["/v1/\u0000"]}),
        ("post", "/v1/session", {"username": "a\u0000", "password": "p"}),
    ],
)
def test_nul_characters_are_refused(app, client, method, path, body):
    before = counts(app)
    response = getattr(client, method)(path, json=body)
    assert_refused(app, before, response, "NUL")


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("patch", "/v1/settings", '{"api_key_allowed_endpoints": ["/v1/\\ud800"]}'),
        ("post", "/v1/api-keys", '{"name": "x", "meta": {"\\udfff": 1}}'),
        ("post", "/v1/auth/challenges", '{"app_name": "x", "extra": ["\\ud800"]}'),
    ],
)
def test_lone_surrogates_are_refused(app, client, method, path, raw):
    before = counts(app)
    response = getattr(client, method)(path, data=raw, content_type="application/json")
    assert_refused(app, before, response, "lone surrogates")
    assert client.get("/v1/settings").json["api_key_allowed_endpoints"] == []
