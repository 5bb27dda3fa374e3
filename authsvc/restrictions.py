"""Pure checks behind key restrictions: endpoint rules, IP allowlists, organization paths."""

import ipaddress
import posixpath
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def normalize_path(raw: str) -> str:
    """Decode and collapse a path so ``..``, ``%2e`` and doubled slashes cannot escape."""
    # urlsplit would read "//host/v1/x" as a host and a path; only a full URL has a host.
    if ABSOLUTE_URL.match(raw):
        path = urlsplit(raw).path or "/"
    else:
        path = raw.split("?", 1)[0].split("#", 1)[0] or "/"
    for _ in range(3):  # undo double encoding such as %252e
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    normalized = posixpath.normpath("/" + path.replace("\\", "/"))
    return "/" + normalized.lstrip("/")


def parse_rule(rule: str) -> tuple[str | None, str]:
    """Split ``"GET /v1/spaces"`` into an optional method and a normalized path."""
    parts = rule.strip().split(None, 1)
    if len(parts) == 2 and parts[0].upper() in METHODS:
        return parts[0].upper(), normalize_path(parts[1])
    return None, normalize_path(rule.strip())


def is_valid_rule(rule: str) -> bool:
    """A rule is a path starting with ``/``, optionally after a method."""
    parts = rule.strip().split(None, 1)
    path = parts[1] if len(parts) == 2 and parts[0].upper() in METHODS else rule.strip()
    return path.startswith("/") and " " not in path


def endpoint_allowed(rules: Iterable[str], method: str, path: str) -> bool:
    """True when a rule equals the path or is a whole-segment prefix of it."""
    target = normalize_path(path)
    for rule in rules:
        rule_method, rule_path = parse_rule(rule)
        if rule_method is not None and rule_method != method.upper():
            continue
        if rule_path == "/" or target == rule_path or target.startswith(rule_path + "/"):
            return True
    return False


def is_valid_network(entry: str) -> bool:
    """Whether ``entry`` is an IP address or a CIDR range."""
    try:
        ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return False
    return True


def ip_allowed(networks: Iterable[str], address: str | None) -> bool:
    """Whether the client address lies in one of the allowed networks."""
    if not address:
        return False
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(net, strict=False) for net in networks)


def organization_in_path(path: str) -> str | None:
    """The space id addressed by an Anytype-style path ``/v1/spaces/{id}/…``."""
    segments = normalize_path(path).strip("/").split("/")
    if len(segments) >= 3 and segments[0] == "v1" and segments[1] == "spaces":
        return segments[2]
    return None
