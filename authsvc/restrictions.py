"""Pure checks behind key restrictions: the one path parser, endpoint rules, IP allowlists."""

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote

from .errors import ApiError

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
AMBIGUOUS = "ambiguous request path"
# What upstreams read differently (SPEC §3): encoded "/", "\", "." or "%", a ";", a "\", a
# doubled "/", a dot segment; and our additions: malformed escapes, control characters, a "#"
# (some servers read it as part of the path) and, once decoded, a "?".
REFUSED = re.compile(
    r"%(?:2f|5c|2e|25)"  # encoded separator, dot or percent
    r"|%(?![0-9a-f]{2})"  # a "%" that is not an escape
    r"|[\\;?#\x00-\x1f\x7f]"  # backslash, path parameters, query, fragment, control characters
    r"|//"  # doubled slash
    r"|/\.\.?(?:/|$)",  # dot segment
    re.IGNORECASE,
)
SPACES_PREFIX = ("v1", "spaces")


def clean_path(target: str) -> str:
    """The decoded path of a request target, or 403 when any reader could see another path.

    The query string is not part of the path. Nothing is normalised: a path that
    would need it is refused, so what is matched here is what the upstream serves.
    """
    path = target.partition("?")[0]
    if not path.startswith("/") or REFUSED.search(path):
        raise ApiError(403, AMBIGUOUS)
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise ApiError(403, AMBIGUOUS) from None
    # "%3b" decodes to ";"; "%EF%BC%8F" to a fullwidth "/" that some servers fold to "/".
    if REFUSED.search(decoded) or unicodedata.normalize("NFKC", decoded) != decoded:
        raise ApiError(403, AMBIGUOUS)
    return decoded


def rule_path(path: str) -> str:
    """A rule's path, clean and without a trailing slash (``/`` stays ``/``)."""
    return clean_path(path).rstrip("/") or "/"


def split_rule(rule: str) -> tuple[str | None, str]:
    """Split ``"GET /v1/spaces"`` into an optional method and the path as written."""
    parts = rule.strip().split(None, 1)
    if len(parts) == 2 and parts[0].upper() in METHODS:
        return parts[0].upper(), parts[1]
    return None, rule.strip()


def parse_rule(rule: str) -> tuple[str | None, str]:
    """Split a rule into an optional method and a clean path (403 when the path is not)."""
    method, path = split_rule(rule)
    return method, rule_path(path)


def is_valid_rule(rule: str) -> bool:
    """A rule is a clean path starting with ``/``, optionally after a method."""
    path = split_rule(rule)[1]
    if " " in path or "?" in path or "#" in path:
        return False
    try:
        clean_path(path)
    except ApiError:
        return False
    return True


def endpoint_allowed(rules: Iterable[str], method: str, path: str) -> bool:
    """True when a rule equals the clean ``path`` or is a whole-segment prefix of it.

    A stored rule that is not a clean path matches nothing.
    """
    for rule in rules:
        try:
            rule_method, prefix = parse_rule(rule)
        except ApiError:
            continue
        if rule_method is not None and rule_method != method.upper():
            continue
        if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
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
    """The space id addressed by a clean Anytype-style path ``/v1/spaces/{id}/…``, any case."""
    segments = path.split("/")[1:]
    if len(segments) >= 3 and tuple(s.lower() for s in segments[:2]) == SPACES_PREFIX:
        return segments[2].lower() or None
    return None
