"""Key fields: validation of what clients send, and the rule that a key never widens access."""

import ipaddress
import json
from datetime import UTC, datetime
from typing import Any

from . import restrictions
from .clock import utcnow
from .errors import ApiError
from .models import ApiKey

META_LIMIT = 4096
# The columns a client may set, as stored on ApiKey.
SETTABLE = (
    "name",
    "organization_id",
    "allowed_endpoints",
    "allowed_ips",
    "rate_limit",
    "enabled",
    "meta",
    "expires_at",
    "scopes",
)
# The restrictions a key passes on to the keys it creates.
NARROWING = ("organization_id", "allowed_endpoints", "allowed_ips", "rate_limit", "expires_at")
# Default scopes: what a key made for an app may do, and what a key made for a person may do.
API = ("api",)
API_AND_MANAGE = ("api", "manage")


def parse_time(value: Any) -> datetime:
    """An ISO 8601 string as a naive UTC datetime; a time without offset is taken as UTC."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 date and time") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
            raise ValueError("must lie between 0001-01-01 and 9999-12-31 UTC") from None
    return moment


def future_time(moment: datetime) -> datetime:
    """An expiry must lie in the future."""
    if moment <= utcnow():
        raise ValueError("must lie in the future")
    return moment


def endpoint_rule(rule: str) -> str:
    """``/path`` or ``METHOD /path``."""
    if not restrictions.is_valid_rule(rule):
        raise ValueError('must be "/path" or "METHOD /path"')
    return rule.strip()


def network(entry: str) -> str:
    """An IP address or a CIDR range."""
    if not restrictions.is_valid_network(entry):
        raise ValueError(f"{entry!r} is not an IP address or CIDR range")
    return entry.strip()


def small_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """At most 4 KB once serialized."""
    size = len(json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode())
    if size > META_LIMIT:
        raise ValueError(f"must be at most {META_LIMIT} bytes serialized, not {size}")
    return meta


def distinct_scopes(scopes: list[str]) -> list[str]:
    """Each scope at most once."""
    if len(set(scopes)) != len(scopes):
        raise ValueError("must not repeat a scope")
    return scopes


def fields_of(key: ApiKey) -> dict[str, Any]:
    """The settable fields of a stored key."""
    return {name: getattr(key, name) for name in SETTABLE}


def inherit(parent: ApiKey, fields: dict[str, Any]) -> dict[str, Any]:
    """Fill the restrictions a new key leaves open with those of the key creating it."""
    inherited = dict(fields)
    for name in NARROWING:
        if inherited.get(name) is None:
            inherited[name] = getattr(parent, name)
    return inherited


def require_within(parent: ApiKey, fields: dict[str, Any]) -> None:
    """403 when ``fields`` would reach further than the key ``parent`` acting for its owner."""
    if not set(fields["scopes"]) <= set(parent.scopes):
        raise ApiError(403, "an api key cannot widen access: scopes exceeds its own")
    if parent.usage_limit is not None and "usage_limit" in fields:
        # Its children's requests would not take from its own limit.
        raise ApiError(403, "an api key with a usage limit cannot create keys or change limits")
    for name in NARROWING:
        if getattr(parent, name) is not None and not within(name, getattr(parent, name), fields):
            raise ApiError(403, f"an api key cannot widen access: {name} exceeds its own")


def within(name: str, limit: Any, fields: dict[str, Any]) -> bool:
    """Whether one field of ``fields`` stays inside ``limit``."""
    value = fields.get(name)
    if value is None:
        return False
    if name == "organization_id":
        return bool(value == limit)
    if name == "allowed_endpoints":
        return all(rule_within(limit, rule) for rule in value)
    if name == "allowed_ips":
        return all(network_within(limit, entry) for entry in value)
    if name == "rate_limit":  # requests per second, compared without rounding
        return bool(
            value["requests"] * limit["per_seconds"] <= limit["requests"] * value["per_seconds"]
        )
    return bool(value <= limit)  # expires_at


def rule_within(rules: list[str], rule: str) -> bool:
    """Whether every request ``rule`` matches is also matched by ``rules``."""
    method, path = restrictions.parse_rule(rule)
    methods = [method] if method else sorted(restrictions.METHODS)
    return all(restrictions.endpoint_allowed(rules, each, path) for each in methods)


def network_within(networks: list[str], entry: str) -> bool:
    """Whether the range ``entry`` lies inside one of ``networks``."""
    inner = ipaddress.ip_network(entry, strict=False)
    for outer in (ipaddress.ip_network(net, strict=False) for net in networks):
        if inner.version == outer.version and inner.subnet_of(outer):  # type: ignore[arg-type]
            return True
    return False
