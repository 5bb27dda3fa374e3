"""Fixtures: the real app from the factory on real databases (SQLite, and PostgreSQL if set)."""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade

from authsvc import create_app, sessions
from authsvc.config import DEFAULTS, RENAMED
from authsvc.extensions import db
from tests.services import redis_server, reset_schema

POSTGRES_URL = os.environ.get("AUTHSVC_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
TEST_SECRET = "test-jwt-secret-0123456789"


def base_config(database_url: str, **overrides: Any) -> dict[str, Any]:
    """The configuration every test app starts from."""
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "JWT_SECRET": TEST_SECRET,
        "JWT_EXPIRY": "3650d",  # the host's session outlives the years freezegun jumps
        "RATELIMIT_STORAGE_URI": "memory://",
        **overrides,
    }


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The instance folder of every app in the session (owner token, generated secrets)."""
    return str(tmp_path_factory.mktemp("instance"))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, instance_dir: str) -> None:
    """A developer's own settings and instance folder never leak into a test."""
    for name in [*DEFAULTS, *RENAMED]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTHSVC_INSTANCE_PATH", instance_dir)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for the whole session, one per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'authsvc.sqlite3'}"
    else:
        assert POSTGRES_URL is not None
        url = POSTGRES_URL
        reset_schema(url)
    app = create_app(base_config(url))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of the suite's own, started on a free port (no Redis needs to be running)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def empty_tables() -> None:
    """Delete every row, children first."""
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def make_app(database_url: str) -> Iterator[Any]:
    """Build apps with extra configuration; their tables are emptied afterwards."""
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        app = create_app(base_config(database_url, **overrides))
        built.append(app)
        return app

    yield build
    for app in built[:1]:
        with app.app_context():
            empty_tables()
    for app in built:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app: Any) -> Flask:
    """The app with the test configuration."""
    return make_app()  # type: ignore[no-any-return]


def login(client: FlaskClient) -> str:
    """Log the single-user owner in with the owner token; return the session token."""
    password = sessions.owner_password(client.application)
    response = client.post("/v1/session", json={"password": password})
    assert response.status_code == 200, response.json
    client.delete_cookie(sessions.COOKIE)  # the token alone speaks for this client
    return str(response.json["token"])


def host_client(app: Flask) -> FlaskClient:
    """A test client logged in as the owner: it sends the session token unless told otherwise."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {login(client)}"
    return client


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """The host: logged in as the owner (an explicit ``Authorization`` header overrides it)."""
    return host_client(app)


@pytest.fixture
def anon(app: Flask) -> FlaskClient:
    """A client with no credentials at all."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def pair(client: FlaskClient, app_name: str = "Test App", **extra: Any) -> dict[str, Any]:
    """Run the whole pairing dance as the app and the host would; return the 201 body."""
    created = client.post("/v1/auth/challenges", json={"app_name": app_name, **extra})
    assert created.status_code == 201, created.json
    listing = client.get("/v1/pairing/challenges").json
    code = next(
        c["code"] for c in listing["data"] if c["challenge_id"] == created.json["challenge_id"]
    )
    redeemed = client.post(
        "/v1/auth/api_keys", json={"challenge_id": created.json["challenge_id"], "code": code}
    )
    assert redeemed.status_code == 201, redeemed.json
    return redeemed.json  # type: ignore[no-any-return]


@pytest.fixture
def api_key(client: FlaskClient) -> str:
    """A key obtained by pairing."""
    return str(pair(client)["api_key"])


# The contract's error codes (SPEC §1), spelled out.
ERROR_CODES = {
    "bad_request",
    "unauthorized",
    "forbidden",
    "object_not_found",
    "method_not_allowed",
    "conflict",
    "gone",
    "payload_too_large",
    "rate_limit_exceeded",
    "internal_server_error",
    "service_unavailable",
}
VERSION = "2025-11-08"


def assert_error(response: Any, status: int, code: str, message: str | None = None) -> Any:
    """The one error shape, with its status, code, version header and (if given) message, from
    a test-client or a ``requests`` answer; return the body."""
    body = response.json() if callable(response.json) else response.json
    assert response.status_code == status, body
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Anytype-Version"] == VERSION
    assert (body["object"], body["status"], body["code"]) == ("error", status, code)
    assert code in ERROR_CODES
    assert isinstance(body["message"], str) and body["message"]
    if message is not None:
        assert body["message"] == message
    return body


def wrong_code(code: str) -> str:
    """A 4-digit code that is certainly not ``code``."""
    return f"{(int(code) + 1) % 10_000:04d}"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
