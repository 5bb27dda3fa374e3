"""Wire conventions (SPEC §1): bad input, the version header, the error shape, health."""

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from authsvc import create_app
from authsvc.extensions import db
from authsvc.models import ApiKey, Challenge
from tests import conftest
from tests.conftest import VERSION, assert_error, bearer
from tests.keyhelpers import counts


def row_counts(app: Flask) -> dict[str, int]:
    """Rows in every table."""
    with app.app_context():
        return {
            table.name: int(db.session.scalar(select(func.count()).select_from(table)) or 0)
            for table in db.metadata.sorted_tables
        }


@pytest.fixture
def warm(app: Flask, client: Any) -> dict[str, int]:
    """The app after its first request (which creates the owner); the row counts then."""
    assert client.get("/").status_code == 200
    return row_counts(app)


CHALLENGE_BAD_BODIES = [
    pytest.param('{"app_name": "x"', id="malformed-json"),
    pytest.param("not json at all", id="not-json"),
    pytest.param('["app_name"]', id="array"),
    pytest.param('"app_name"', id="string"),
    pytest.param("42", id="number"),
    pytest.param("null", id="null"),
    pytest.param("{}", id="missing-app_name"),
    pytest.param(json.dumps({"name": "x"}), id="wrong-field"),
    pytest.param(json.dumps({"app_name": 5}), id="app_name-number"),
    pytest.param(json.dumps({"app_name": True}), id="app_name-bool"),
    pytest.param(json.dumps({"app_name": ["x"]}), id="app_name-list"),
    pytest.param(json.dumps({"app_name": None}), id="app_name-null"),
    pytest.param(json.dumps({"app_name": ""}), id="app_name-empty"),
    pytest.param(json.dumps({"app_name": "   "}), id="app_name-whitespace"),
    pytest.param(json.dumps({"app_name": "a" * 65}), id="app_name-65"),
    pytest.param(json.dumps({"app_name": "ab\x00c"}), id="app_name-nul"),
    pytest.param(json.dumps({"app_name": "ab\ncd"}), id="app_name-newline"),
    pytest.param(json.dumps({"app_name": "ab\x1b[31mc"}), id="app_name-escape"),
    pytest.param(json.dumps({"app_name": "ab\u202ecd"}), id="app_name-bidi"),
    pytest.param(json.dumps({"app_name": "x", "code_challenge": "short"}), id="code_challenge"),
    pytest.param(json.dumps({"app_name": "x", "code_challenge": 5}), id="code_challenge-type"),
    pytest.param(b'{"app_name": "\xff"}', id="not-utf8"),
]


@pytest.mark.parametrize("body", CHALLENGE_BAD_BODIES)
def test_bad_challenge_bodies(app, client, warm, body):
    response = client.post("/v1/auth/challenges", data=body, content_type="application/json")
    assert_error(response, 400, "bad_request")
    assert response.json["message"].startswith("bad input")
    assert row_counts(app) == warm


REDEEM_BAD_BODIES = [
    pytest.param('{"challenge_id": "x", "code": "1234"', id="malformed-json"),
    pytest.param("[1, 2]", id="array"),
    pytest.param("true", id="bool"),
    pytest.param(json.dumps({"challenge_id": "x", "code": True}), id="code-true"),
    pytest.param(json.dumps({"challenge_id": "x", "code": [1]}), id="code-list"),
    pytest.param(json.dumps({"challenge_id": "x", "code": 12.5}), id="code-float"),
    pytest.param(json.dumps({"challenge_id": "x", "code": {"a": 1}}), id="code-object"),
    pytest.param(json.dumps({"challenge_id": 5, "code": "1234"}), id="challenge_id-number"),
    pytest.param(json.dumps({"challenge_id": None, "code": "1234"}), id="challenge_id-null"),
    pytest.param(
        json.dumps({"challenge_id": "x", "code": "1234", "code_verifier": 7}), id="verifier-type"
    ),
    pytest.param("{}", id="missing-fields"),
    pytest.param(json.dumps({"challenge_id": "", "code": ""}), id="empty"),
]


@pytest.mark.parametrize("body", REDEEM_BAD_BODIES)
def test_bad_redeem_bodies(app, client, warm, body):
    response = client.post("/v1/auth/api_keys", data=body, content_type="application/json")
    assert_error(response, 400, "bad_request")
    assert response.json["message"].startswith("bad input")
    assert row_counts(app) == warm


def test_bad_redeem_of_a_real_challenge_writes_nothing(app, client):
    challenge_id = client.post("/v1/auth/challenges", json={"app_name": "x"}).json["challenge_id"]
    before = row_counts(app)
    for body in ({"challenge_id": challenge_id, "code": True}, {"challenge_id": challenge_id}):
        assert client.post("/v1/auth/api_keys", json=body).status_code == 400
    assert client.post("/v1/auth/api_keys", data="[", content_type="text/plain").status_code == 400
    assert row_counts(app) == before
    with app.app_context():
        assert db.session.get(Challenge, challenge_id).failed_attempts == 0


@pytest.mark.parametrize(
    "path",
    ["/v1/auth/challenges", "/v1/auth/api_keys", "/v1/auth/display_code?app_name=x"],
)
def test_body_over_64_kb(app, client, warm, path):
    body = json.dumps({"app_name": "x", "challenge_id": "x", "code": "1", "pad": "a" * 66_000})
    response = client.post(path, data=body, content_type="application/json")
    assert_error(response, 413, "payload_too_large")
    assert row_counts(app) == warm


def test_body_just_under_64_kb_is_accepted(client):
    body = json.dumps({"app_name": "x", "pad": ""})
    body = body.replace('""', '"' + "a" * (64 * 1024 - len(body)) + '"')
    assert len(body.encode()) == 64 * 1024
    response = client.post("/v1/auth/challenges", data=body, content_type="application/json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    "name",
    [
        "Café Notes",
        "日本語のアプリ",
        "Émile’s 📝 app",
        "a" * 64,
        "日" * 64,
        "📝" * 64,
        "  padded  ",
        "\tTabbed App\t",
    ],
)
def test_printable_app_names_accepted(app, client, name):
    response = client.post("/v1/auth/challenges", json={"app_name": name})
    assert response.status_code == 201, response.json
    listing = client.get("/v1/pairing/challenges").json["data"]
    assert listing[0]["app_name"] == name.strip()


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream", None],
)
def test_json_accepted_whatever_the_content_type(client, content_type):
    response = client.post(
        "/v1/auth/challenges", data='{"app_name": "Plain"}', content_type=content_type
    )
    assert response.status_code == 201, response.json


def test_unknown_fields_ignored(client):
    response = client.post("/v1/auth/challenges", json={"app_name": "x", "colour": "blue"})
    assert response.status_code == 201


@pytest.mark.parametrize("version", ["2025-05-20", "2025-11-08", "1999-01-01", "garbage", ""])
def test_request_version_header_is_ignored(client, version):
    headers = {"Anytype-Version": version}
    response = client.post("/v1/auth/challenges", json={"app_name": "x"}, headers=headers)
    assert response.status_code == 201
    assert response.headers["Anytype-Version"] == VERSION
    assert client.get("/", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/nowhere", 404, "object_not_found"),
        ("get", "/v1/auth/nowhere", 404, "object_not_found"),
        ("delete", "/health", 405, "method_not_allowed"),
        ("get", "/v1/auth/challenges", 405, "method_not_allowed"),
        ("put", "/v1/auth/api_keys", 405, "method_not_allowed"),
        ("get", "/v1/auth", 401, "unauthorized"),
        ("post", "/v1/auth/api_keys", 400, "bad_request"),
    ],
)
def test_every_error_has_the_shape_and_version(client, method, path, status, code):
    response = getattr(client, method)(path)
    assert_error(response, status, code)


def test_405_names_the_allowed_methods(client):
    response = client.delete("/v1/auth/challenges")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_success_responses_carry_the_version(client, api_key):
    for response in (
        client.get("/"),
        client.get("/health"),
        client.get("/openapi.json"),
        client.get("/v1/auth", headers=bearer(api_key)),
        client.post("/v1/auth/challenges", json={"app_name": "x"}),
        client.get("/v1/pairing/challenges"),
    ):
        assert response.status_code in (200, 201)
        assert response.headers["Anytype-Version"] == VERSION


def test_unexpected_errors_answer_500_in_the_shape(app):
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom: internal detail")

    response = app.test_client().get("/boom")
    assert_error(response, 500, "internal_server_error")
    assert "kaboom" not in response.get_data(as_text=True)


def test_index(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.json["name"] == "authsvc"
    assert isinstance(response.json["version"], str) and response.json["version"]


@pytest.mark.parametrize("path", ["/health", "/health/"])
def test_health(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/none",
        "sqlite:///{tmp}/no/such/directory/authsvc.sqlite3",
    ],
)
@pytest.mark.parametrize("path", ["/health", "/health/"])
def test_health_when_the_database_is_unreachable(tmp_path, url, path):
    app = create_app(conftest.base_config(url.format(tmp=tmp_path)))
    try:
        response = app.test_client().get(path)
        assert_error(response, 503, "service_unavailable")
        assert app.test_client().get("/").status_code == 200
    finally:
        with app.app_context():
            db.engine.dispose()


def test_openapi_lists_the_pairing_paths(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert "post" in paths["/v1/auth/challenges"]
    assert "post" in paths["/v1/auth/api_keys"]
    assert "post" in paths["/v1/auth/display_code"]
    assert "post" in paths["/v1/auth/token"]
    assert "get" in paths["/v1/pairing/challenges"]
    assert "post" in paths["/v1/pairing/challenges/{id}/deny"]
    assert "post" in paths["/v1/pairing/challenges/{id}/claim"]
    assert "get" in paths["/v1/auth"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=-1", "limit=abc", "offset=1.5"])
def test_bad_pagination(client, query):
    assert_error(client.get(f"/v1/pairing/challenges?{query}"), 400, "bad_request")


def test_pagination(client):
    for n in range(3):
        client.post("/v1/auth/challenges", json={"app_name": f"App {n}"})
    first = client.get("/v1/pairing/challenges?limit=2").json
    assert [c["app_name"] for c in first["data"]] == ["App 0", "App 1"]
    assert first["pagination"] == {"total": 3, "offset": 0, "limit": 2, "has_more": True}
    rest = client.get("/v1/pairing/challenges?limit=2&offset=2").json
    assert [c["app_name"] for c in rest["data"]] == ["App 2"]
    assert rest["pagination"]["has_more"] is False


def test_secret_responses_are_not_cached(app, client):
    challenge_id = client.post("/v1/auth/challenges", json={"app_name": "x"}).json["challenge_id"]
    with app.app_context():
        code = db.session.get(Challenge, challenge_id).code
    issued = client.post("/v1/auth/api_keys", json={"challenge_id": challenge_id, "code": code})
    assert issued.headers["Cache-Control"] == "no-store"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 1


@pytest.mark.parametrize(
    "body",
    [b"[" * 30000, b'{"a":' * 12000, b"\xff\xfe{}", b"{'a': 1}", b'{"app_name": "x"', b"\x00"],
    ids=["deep-list", "deep-object", "not-utf8", "single-quotes", "truncated", "nul"],
)
def test_bodies_no_decoder_takes_are_400_and_change_nothing(app, client, body):
    before = counts(app)
    for path in ("/v1/auth/challenges", "/v1/api-keys"):
        answer = client.post(path, data=body, content_type="application/json")
        assert answer.status_code == 400, (path, answer.status_code, answer.get_data()[:200])
        assert answer.json["code"] == "bad_request"
    assert counts(app) == before
