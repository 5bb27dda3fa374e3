"""The users, keys and audit commands, on the same database as the server."""

import pytest
from click.testing import CliRunner

from authsvc.cli import main
from authsvc.extensions import db
from authsvc.models import ApiKey
from tests.conftest import bearer

pytestmark = pytest.mark.usefixtures("app")  # the app fixture empties the tables afterwards


@pytest.fixture
def cli(monkeypatch, database_url):
    monkeypatch.setenv("AUTHSVC_DATABASE_URL", database_url)
    monkeypatch.setenv("JWT_SECRET", "cli-test-secret-0123456789")
    runner = CliRunner()

    def run(*args, **kwargs):
        return runner.invoke(main, list(args), catch_exceptions=False, **kwargs)

    return run


def test_users_commands(cli):
    created = cli("users", "create", "bob", "--password", "pw", "--role", "manager")
    assert created.exit_code == 0, created.output
    assert "bob (manager)" in created.output
    duplicate = cli("users", "create", "bob", "--password", "pw")
    assert duplicate.exit_code == 1 and "taken" in duplicate.output
    assert cli("users", "set-role", "bob", "user").exit_code == 0
    assert cli("users", "suspend", "bob").exit_code == 0
    listed = cli("users", "list").output
    assert "bob" in listed and "suspended" in listed and "owner" in listed
    assert cli("users", "suspend", "bob", "--undo").exit_code == 0
    assert "active" in cli("users", "list").output.splitlines()[-1]
    assert cli("users", "set-role", "owner", "user").exit_code == 1  # the last admin
    assert cli("users", "delete", "nobody").exit_code == 1
    assert cli("users", "delete", "bob").exit_code == 0
    assert "bob" not in cli("users", "list").output


def test_users_create_prompts_for_password(cli):
    result = cli("users", "create", "carol", input="pw\npw\n")
    assert result.exit_code == 0, result.output
    assert "pw" not in result.output.split("created")[-1]


def test_keys_create_with_restrictions(cli, app, client):
    assert cli("users", "create", "bob", "--password", "pw").exit_code == 0
    with app.app_context():
        from authsvc.models import Organization

        personal = db.session.query(Organization).one().id
    result = cli(
        "keys",
        "create",
        "restricted",
        "--user",
        "owner",
        "--org",
        personal,
        "--expires-in-days",
        "7",
        "--allow",
        "GET /v1/spaces",
        "--allow",
        "GET /v1/auth",
    )
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert client.get("/v1/spaces", headers=bearer(secret)).status_code == 200
    assert client.get("/v1/pairing/challenges", headers=bearer(secret)).status_code == 403
    with app.app_context():
        key = db.session.query(ApiKey).one()
        assert key.organization_id == personal and key.expires_at is not None
        assert key.allowed_endpoints == ["GET /v1/spaces", "GET /v1/auth"]
        assert key.created_via == "cli"
    assert cli("keys", "create", "x", "--user", "nobody").exit_code == 1
    assert cli("keys", "create", "x", "--org", "org_nope").exit_code == 1
    assert cli("keys", "create", "x", "--expires-in-days", "0").exit_code == 2
    # The API's checks apply: bob is not in Personal, rules and names are validated.
    refused = [
        ("x", "--user", "bob", "--org", personal),
        ("x", "--allow", "spaces"),
        ("n" * 65,),
    ]
    for args in refused:
        result = cli("keys", "create", *args)
        assert result.exit_code == 1 and "Error:" in result.output, result.output
    with app.app_context():
        assert db.session.query(ApiKey).count() == 1
    bob_key = cli("keys", "create", "bobs", "--user", "bob")
    assert bob_key.exit_code == 0


def test_audit_tail(cli):
    cli("users", "create", "bob", "--password", "pw")
    cli("users", "delete", "bob")
    lines = cli("audit", "tail", "-n", "2").output.strip().splitlines()
    assert len(lines) == 2
    assert "user.deleted" in lines[0] and "user.created" in lines[1]
    assert " pw" not in cli("audit", "tail").output  # no password in any event


def test_owner_token_and_login_link(cli, app, anon, monkeypatch):
    printed = cli("owner-token")
    assert printed.exit_code == 0
    token = printed.output.strip()
    assert anon.post("/v1/session", json={"password": token}).status_code == 200
    link = cli("open", "--port", "8080").stdout.strip()
    assert link == f"http://127.0.0.1:8080/ui/login#token={token}"
    monkeypatch.setenv("AUTH_TOKEN", "chosen-by-the-operator")
    with_auth_token = cli("owner-token")
    assert with_auth_token.exit_code == 1 and "AUTH_TOKEN is set" in with_auth_token.output
    assert "chosen-by-the-operator" not in with_auth_token.output
    assert cli("open").stdout.strip() == "http://127.0.0.1:31009/ui/login"


def test_pairing_list_says_when_nothing_waits(cli, anon):
    assert cli("pairing", "list").output.strip() == "no pending challenges"
    anon.post(
        "/v1/auth/challenges", json={"app_name": "Notes"}, headers={"User-Agent": "NotesApp/2"}
    )
    listed = cli("pairing", "list").output
    assert "app 'Notes'" in listed and "agent 'NotesApp/2'" in listed and "origin None" in listed
