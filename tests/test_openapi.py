"""The OpenAPI document, checked by an independent validator and against the app's routes."""

import re

import pytest
from openapi_spec_validator import validate

# The document and its viewer describe the API; they are not operations of it.
PLUMBING = {
    "/openapi.json",
    "/schema/",
    "/docs/openapi.json",
    "/docs/openapi.yaml",
    "/docs/",
    "/api/docs",
    "/docs/swagger/<path:filename>",
    "/static/<path:filename>",
}
CREATED = [
    ("post", "/v1/auth/challenges", "ChallengeCreated"),
    ("post", "/v1/auth/api_keys", "KeyIssued"),
    ("post", "/v1/api-keys", "KeyCreated"),
    ("post", "/v1/api-keys/{id}/rotate", "KeyCreated"),
    ("post", "/v1/system/generate-api-key", "KeyCreated"),
    ("post", "/v1/admin/api-keys", "KeyCreated"),
    ("post", "/v1/admin/generate-api-key", "KeyCreated"),
    ("post", "/v1/admin/users", "UserResource"),
    ("post", "/v1/admin/groups", "GroupResource"),
    ("post", "/v1/admin/organizations", "OrganizationResource"),
    ("post", "/v1/admin/groups/{id}/members", "GroupResource"),
    ("post", "/v1/admin/organizations/{id}/members", "OrganizationResource"),
]


@pytest.fixture
def document(anon):
    return anon.get("/openapi.json").json


def test_an_independent_validator_accepts_the_document(document):
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_registered_route_is_documented(app, document):
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule in PLUMBING or rule.rule.startswith("/ui"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []


@pytest.mark.parametrize(("method", "path", "schema"), CREATED)
def test_every_201_answer_is_described(document, method, path, schema):
    responses = document["paths"][path][method]["responses"]
    assert "200" not in responses
    content = responses["201"]["content"]["application/json"]["schema"]
    assert content == {"$ref": f"#/components/schemas/{schema}"}


def test_the_answers_to_create_are_the_documented_201(document, client):
    created = client.post("/v1/api-keys", json={"name": "documented"})
    assert created.status_code == 201
    schema = document["components"]["schemas"]["KeyCreated"]
    assert set(schema["required"]) == set(created.json)
    rotated = client.post(f"/v1/api-keys/{created.json['id']}/rotate", json={})
    assert rotated.status_code == 201 and set(schema["required"]) == set(rotated.json)


def test_pairing_calls_carry_examples(document):
    schemas = document["components"]["schemas"]
    for name in ["ChallengeBody", "ChallengeCreated", "RedeemBody", "KeyIssued", "AppKey"]:
        assert schemas[name]["example"], name
    redeem = schemas["RedeemBody"]["example"]
    assert set(redeem) == {"challenge_id", "code", "code_verifier"}
    assert schemas["ChallengeBody"]["example"]["code_challenge"]


def test_deletions_are_documented_as_204(document):
    for path in ["/v1/api-keys/{id}", "/v1/admin/users/{id}", "/v1/session"]:
        assert document["paths"][path]["delete"]["responses"]["204"]["description"]


def test_every_error_answer_is_documented_as_one_error_object(document):
    """The server answers one error object, never a list; and any operation may answer bad
    input, a refused Host, gunicorn's limits and an unreachable database."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"400", "403", "414", "431", "503"} <= set(responses), (method, path)
            # OAuth's endpoints answer their own refusals in OAuth's shape (tested by
            # schemathesis against the server in test_fuzz.py); the rest is one error object.
            oauth = "oauth" in operation.get("tags", [])
            for status, response in responses.items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    name = (
                        "OAuthErrorBody"
                        if oauth and int(status) in (400, 401, 403, 429)
                        else "ErrorBody"
                    )
                    assert schema == {"$ref": f"#/components/schemas/{name}"}, (method, path)
