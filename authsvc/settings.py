"""Instance settings: stored values over configuration defaults (SPEC §6)."""

from typing import Any

from flask import current_app, g
from sqlalchemy import select

from . import audit, counters, restrictions
from .database import AnySession, serialize
from .errors import ApiError
from .extensions import db
from .models import Setting

# Public setting name -> the configuration value that is its default.
CONFIG_DEFAULTS = {
    "enable_api_keys": "ENABLE_API_KEYS",
    "pairing_requires_approval": "AUTHSVC_PAIRING_REQUIRES_APPROVAL",
    "api_key_endpoint_restrictions_enabled": "ENABLE_API_KEYS_ENDPOINT_RESTRICTIONS",
    "api_key_allowed_endpoints": "API_KEYS_ALLOWED_ENDPOINTS",
    "challenge_ttl_seconds": "AUTHSVC_CHALLENGE_TTL",
    "challenge_max_attempts": "AUTHSVC_CHALLENGE_MAX_ATTEMPTS",
    "one_key_per_organization": "AUTHSVC_ONE_KEY_PER_ORGANIZATION",
}
FIXED_DEFAULTS: dict[str, Any] = {
    "pairing_enabled": True,
    "default_permissions": {"api_keys": True, "verify_keys": False},
}
PUBLIC = [*CONFIG_DEFAULTS, *FIXED_DEFAULTS]
# Internal state kept in the same table, never shown or patched directly.
INTERNAL_DEFAULTS: dict[str, Any] = {"multi_user": False}


def defaults() -> dict[str, Any]:
    """Every setting's value before anything was stored."""
    values = {name: current_app.config[key] for name, key in CONFIG_DEFAULTS.items()}
    values.update(FIXED_DEFAULTS)
    values.update(INTERNAL_DEFAULTS)
    return values


def current(fresh: bool = False) -> dict[str, Any]:
    """All settings, read once per request (or now, if ``fresh``) so every worker sees changes."""
    if fresh:
        g.pop("settings", None)
    if "settings" not in g:
        g.settings = read(db.session)
    return dict(g.settings)


def read(session: AnySession) -> dict[str, Any]:
    """All settings as ``session`` sees them."""
    values = defaults()
    values.update({row.name: row.value for row in session.scalars(select(Setting))})
    return values


def public() -> dict[str, Any]:
    """The settings object shown by ``GET /v1/settings``."""
    values = current()
    return {name: values[name] for name in PUBLIC}


def store(changes: dict[str, Any]) -> None:
    """Write setting values into the current transaction (the caller commits).

    Writers take turns, so two first writes of one setting cannot both insert it.
    """
    serialize("settings")
    for name, value in changes.items():
        db.session.merge(Setting(name=name, value=value))
    g.pop("settings", None)


BOOLEAN = {
    "enable_api_keys",
    "pairing_enabled",
    "pairing_requires_approval",
    "api_key_endpoint_restrictions_enabled",
    "one_key_per_organization",
}
# Bounds of the integer settings a PATCH may set; the environment variables accept any
# positive value, so tests can use short lives.
BOUNDED_INT = {"challenge_ttl_seconds": (30, 3600), "challenge_max_attempts": (1, 20)}


def check_value(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for setting ``name``, or None when it is."""
    if name in BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    if name in BOUNDED_INT:
        low, high = BOUNDED_INT[name]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"must be an integer from {low} to {high}"
    if name == "api_key_allowed_endpoints":
        ok = isinstance(value, list) and all(
            isinstance(item, str) and restrictions.is_valid_rule(item) for item in value
        )
        return None if ok else 'must be a list of "/path" or "METHOD /path" rules, each unambiguous'
    ok = isinstance(value, dict) and all(
        key in ("api_keys", "verify_keys") and isinstance(flag, bool) for key, flag in value.items()
    )
    return None if ok else "must map api_keys and/or verify_keys to true or false"


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """The known public settings of a PATCH body, type-checked (400); unknown ones ignored."""
    changes = {name: body[name] for name in PUBLIC if name in body}
    for name, value in changes.items():
        problem = check_value(name, value)
        if problem:
            raise ApiError(400, f"bad input: {name} {problem}")
    if "default_permissions" in changes:
        merged = {**current()["default_permissions"], **changes["default_permissions"]}
        changes["default_permissions"] = merged
    return changes


def update(changes: dict[str, Any], actor_id: str | None) -> dict[str, Any]:
    """Merge public settings, record the change, commit and return the whole object."""
    if changes.get("pairing_enabled") is True and not current()["pairing_enabled"]:
        counters.reset(counters.PAIRING_FAILURES)  # turning pairing on starts a fresh budget
    store(changes)
    audit.record("settings.updated", actor_id=actor_id, changes=sorted(changes))
    db.session.commit()
    return public()
