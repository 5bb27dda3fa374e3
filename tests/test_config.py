"""Configuration order (defaults, instance file, environment, test overrides) and migrations."""

import pytest
from flask import Flask
from flask_migrate import check

from authsvc import config, create_app
from authsvc.extensions import db


@pytest.fixture
def instance_app(tmp_path):
    """A bare Flask app whose instance folder holds a developer's config.py."""
    (tmp_path / "config.py").write_text(
        'AUTHSVC_KEY_PREFIX = "inst-"\nAUTHSVC_CHALLENGE_TTL = 42\nINSTANCE_ONLY = "yes"\n'
    )
    return Flask("instance_test", instance_path=str(tmp_path), instance_relative_config=True)


def test_instance_file_read_without_test_config(instance_app):
    config.load_config(instance_app, None)
    assert instance_app.config["AUTHSVC_KEY_PREFIX"] == "inst-"
    assert instance_app.config["AUTHSVC_CHALLENGE_TTL"] == 42
    assert instance_app.config["INSTANCE_ONLY"] == "yes"
    assert instance_app.config["AUTHSVC_MAX_PENDING_PER_CLIENT"] == 10  # defaults below it


def test_instance_file_skipped_with_test_config(instance_app):
    config.load_config(instance_app, {"TESTING": True})
    assert instance_app.config["AUTHSVC_KEY_PREFIX"] == "sk-"
    assert instance_app.config["AUTHSVC_CHALLENGE_TTL"] == 300
    assert "INSTANCE_ONLY" not in instance_app.config
    assert instance_app.config["TESTING"] is True


def test_missing_instance_file_is_fine(tmp_path):
    app = Flask("empty_instance", instance_path=str(tmp_path), instance_relative_config=True)
    config.load_config(app, None)
    assert app.config["AUTHSVC_KEY_PREFIX"] == "sk-"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'authsvc.sqlite3'}"


def test_environment_over_instance_file_and_test_config_over_both(instance_app, monkeypatch):
    monkeypatch.setenv("AUTHSVC_KEY_PREFIX", "env-")
    monkeypatch.setenv("AUTHSVC_PAIRING_LOG_CODES", "true")
    monkeypatch.setenv("API_KEYS_ALLOWED_ENDPOINTS", "/v1/spaces, GET /v1/auth ,")
    monkeypatch.setenv("AUTHSVC_DATABASE_URL", "postgresql+psycopg://db/authsvc")
    config.load_config(instance_app, None)
    assert instance_app.config["AUTHSVC_KEY_PREFIX"] == "env-"
    assert instance_app.config["AUTHSVC_CHALLENGE_TTL"] == 42
    assert instance_app.config["AUTHSVC_PAIRING_LOG_CODES"] is True
    assert instance_app.config["API_KEYS_ALLOWED_ENDPOINTS"] == ["/v1/spaces", "GET /v1/auth"]
    assert instance_app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db/authsvc"
    other = Flask(
        "overridden", instance_path=instance_app.instance_path, instance_relative_config=True
    )
    config.load_config(other, {"AUTHSVC_KEY_PREFIX": "test-"})
    assert other.config["AUTHSVC_KEY_PREFIX"] == "test-"


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("true", False, True),
        ("1", False, True),
        ("YES", False, True),
        ("on", False, True),
        ("false", True, False),
        ("0", True, False),
        ("", True, False),
        ("15", 10, 15),
        ("a,b", [], ["a", "b"]),
        ("", [], []),
        ("30 per minute", "10 per minute", "30 per minute"),
    ],
)
def test_parse_env_value(raw, default, expected):
    assert config.parse_env_value(raw, default) == expected


def test_factory_defaults(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert app.config["AUTHSVC_CHALLENGE_TTL"] == 300
    assert app.config["AUTHSVC_CHALLENGE_MAX_ATTEMPTS"] == 5
    assert app.config["AUTHSVC_CHALLENGE_RATE_LIMIT"] == "30 per minute"
    assert app.config["AUTHSVC_MAX_PENDING_PER_CLIENT"] == 10
    assert app.config["AUTHSVC_MAX_PENDING_TOTAL"] == 1000
    assert app.config["AUTHSVC_PAIRING_FAILURE_BUDGET"] == 20
    assert app.config["AUTHSVC_KEY_PREFIX"] == "sk-"


def test_factory_applies_test_config(make_app):
    assert make_app(AUTHSVC_KEY_PREFIX="zz-").config["AUTHSVC_KEY_PREFIX"] == "zz-"


def test_models_and_migrations_do_not_drift(app):
    with app.app_context():
        check()  # raises SystemExit(1) when autogenerate finds a difference


def test_flask_db_check_command(runner):
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    assert result.exception is None


def test_db_check_detects_drift(app):
    from sqlalchemy import Column, Integer, Table

    extra = Table("drift_probe", db.metadata, Column("id", Integer, primary_key=True))
    try:
        with app.app_context(), pytest.raises(SystemExit):
            check()
    finally:
        db.metadata.remove(extra)


def test_factory_reads_the_instance_file_only_without_test_config(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text('AUTHSVC_KEY_PREFIX = "inst-"\n')
    monkeypatch.delenv("AUTHSVC_INSTANCE_PATH")
    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(tmp_path))
    production = create_app()
    assert production.instance_path == str(tmp_path)
    assert production.config["AUTHSVC_KEY_PREFIX"] == "inst-"
    tested = create_app({"TESTING": True, "JWT_SECRET": "a-test-secret-123"})
    assert tested.config["AUTHSVC_KEY_PREFIX"] == "sk-"


def test_instance_path_moves_the_instance_folder(tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "config.py").write_text('AUTHSVC_KEY_PREFIX = "moved-"\n')
    monkeypatch.setenv("AUTHSVC_INSTANCE_PATH", str(moved))
    app = create_app()
    assert app.instance_path == str(moved)
    assert app.config["AUTHSVC_KEY_PREFIX"] == "moved-"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{moved / 'authsvc.sqlite3'}"
    assert sorted(path.name for path in moved.iterdir()) == [
        "authsvc.sqlite3",  # created 0600 before SQLite would create it under the umask
        "config.py",
        "jwt_secret",
        "owner_token",
    ]
