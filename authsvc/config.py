"""Configuration: defaults, then ``instance/config.py``, then the environment."""

import os
from typing import Any

from flask import Flask

DEFAULTS: dict[str, Any] = {
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "AUTHSVC_KEY_PREFIX": "sk-",
    "AUTHSVC_CHALLENGE_TTL": 300,
    "AUTHSVC_CHALLENGE_MAX_ATTEMPTS": 5,
    "AUTHSVC_CHALLENGE_RATE_LIMIT": "30 per minute",
    "AUTHSVC_MAX_PENDING_PER_CLIENT": 10,
    "AUTHSVC_MAX_PENDING_TOTAL": 1000,
    "AUTHSVC_PAIRING_FAILURE_BUDGET": 20,
    "AUTHSVC_PAIRING_LOG_CODES": False,
    "AUTHSVC_PAIRING_REQUIRES_APPROVAL": False,
    "AUTHSVC_ONE_KEY_PER_ORGANIZATION": False,
    "AUTHSVC_MULTI_USER": False,
    "AUTHSVC_ADMIN_USERNAME": None,
    "AUTHSVC_ADMIN_PASSWORD": None,
    "AUTHSVC_TRUSTED_PROXIES": "",
    "AUTHSVC_ALLOWED_HOSTS": [],
    "AUTHSVC_CORS_ORIGINS": [],
    "AUTHSVC_LOGIN_RATE_LIMIT": "10 per minute",
    "AUTHSVC_AUDIT_RETENTION_DAYS": 365,
    "AUTHSVC_PURGE_INTERVAL": 3600,
    "AUTHSVC_USAGE_FLUSH_INTERVAL": 10,
    "AUTHSVC_LOG_FORMAT": "text",
    "AUTHSVC_INVALIDATION": "read",
    "AUTH_TOKEN": None,
    "JWT_SECRET": None,
    "JWT_EXPIRY": "30d",
    "DISABLE_SWAGGER_DOCS": False,
    "ENABLE_API_KEYS": True,
    "ENABLE_API_KEYS_ENDPOINT_RESTRICTIONS": False,
    "API_KEYS_ALLOWED_ENDPOINTS": [],
    "RATELIMIT_STORAGE_URI": "",  # the instance's own store, shared by its workers
}

# Environment names that map onto a differently named Flask setting.
RENAMED = {
    "AUTHSVC_DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
    "AUTHSVC_RATELIMIT_STORAGE_URI": "RATELIMIT_STORAGE_URI",
}


def parse_env_value(raw: str, default: Any) -> Any:
    """Convert an environment string to the type of the setting's default."""
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, list):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def load_environment(app: Flask) -> None:
    """Apply every known setting found in the environment."""
    for name, default in DEFAULTS.items():
        if name in os.environ:
            app.config[name] = parse_env_value(os.environ[name], default)
    for env_name, setting in RENAMED.items():
        if os.environ.get(env_name):
            app.config[setting] = os.environ[env_name]


def instance_path(test_config: dict[str, Any] | None) -> str | None:
    """``AUTHSVC_INSTANCE_PATH`` (tests pass it in their configuration), made absolute."""
    chosen = (test_config or {}).get("AUTHSVC_INSTANCE_PATH") or os.environ.get(
        "AUTHSVC_INSTANCE_PATH"
    )
    return os.path.abspath(chosen) if chosen else None


def load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Fill ``app.config`` in the documented order; tests skip the instance file."""
    app.config.from_mapping(DEFAULTS)
    database = os.path.join(app.instance_path, "authsvc.sqlite3")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{database}"
    if test_config is None:
        app.config.from_pyfile(os.path.join(app.instance_path, "config.py"), silent=True)
    load_environment(app)
    if test_config is not None:
        app.config.from_mapping(test_config)
