"""The request gate (SPEC §1): the Host check against DNS rebinding, cross-site refusal, CORS.

One pure function, :func:`judge`, decides from a request's headers; one hook applies it before
anything else runs. Nothing else decides on ``Host`` or ``Origin``: pairing only records the
``Origin`` an app sent, as untrusted text for the host to read.
"""

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request
from werkzeug.datastructures import Headers

from .errors import ApiError

HOST_REFUSED = "host not allowed: add it to AUTHSVC_ALLOWED_HOSTS"
CROSS_ORIGIN_REFUSED = "cross-origin request refused"
# The contract fixes the message; the hint names the setting, as the Host check's message does.
CROSS_ORIGIN_HINT = (
    "to let a browser app at this origin call authsvc, add it to AUTHSVC_CORS_ORIGINS"
)
CROSS_SITE = {"cross-site", "same-site"}
DEFAULT_PORTS = {"http": 80, "https": 443}
HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
# Pages a link from elsewhere may open (a top-level GET navigation); never the JSON API.
WEB_PAGES = re.compile(r"^/(ui(/.*)?|docs/|api/docs)?$")
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Anytype-Version",
    "Access-Control-Max-Age": "600",
}
EXPOSED = "Anytype-Version, Retry-After, WWW-Authenticate, " + ", ".join(
    f"X-RateLimit-{name}" for name in ("Limit", "Remaining", "Reset")
)


@dataclass(frozen=True)
class Verdict:
    """What the gate decided: a refusal message, or the CORS origin to answer (if any)."""

    refusal: str | None = None
    cors_origin: str | None = None
    cross_origin: bool = False


def host_name(host: str) -> str | None:
    """The name of a ``Host`` value without port or trailing dot, lower case; None if malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, port = host[1:].partition("]")
        if not bracket or (port and not re.fullmatch(r":\d{1,5}", port)):
            return None
        return name
    if host.count(":") == 1:
        host, _, port = host.partition(":")
        if not port.isdigit():
            return None
    return host.rstrip(".")


def host_allowed(host: str, allowed_hosts: list[str]) -> bool:
    """IP literals, ``localhost``, ``*.localhost`` and the listed names (``*`` allows all)."""
    if "*" in allowed_hosts:
        return True
    name = host_name(host)
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if not HOST_NAME.fullmatch(name):
        return False
    listed = {entry.strip().lower().rstrip(".") for entry in allowed_hosts}
    return name == "localhost" or name.endswith(".localhost") or name in listed


def origin_key(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port of an origin, normalised; None when it is not a web origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.rstrip("."), port or DEFAULT_PORTS[parts.scheme]


def is_navigation(headers: Headers, method: str, path: str) -> bool:
    """A top-level GET navigation to one of the web pages (a link someone followed)."""
    return (
        method == "GET"
        and headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
        and headers.get("Sec-Fetch-Dest", "document").lower() == "document"
        and WEB_PAGES.match(path) is not None
    )


def judge(
    headers: Headers,
    method: str,
    path: str,
    scheme: str,
    allowed_hosts: list[str],
    cors_origins: list[str],
) -> Verdict:
    """Decide on a request from its headers alone (SPEC §1)."""
    host = headers.get("Host")
    if host is not None and not host_allowed(host, allowed_hosts):
        return Verdict(refusal=HOST_REFUSED)
    origin = headers.get("Origin")
    site = headers.get("Sec-Fetch-Site", "").lower()
    if origin is not None and origin != "null" and origin in cors_origins:
        own = host is not None and origin_key(origin) == origin_key(f"{scheme}://{host}")
        return Verdict(cors_origin=origin, cross_origin=not own)
    # A browser's own-origin form POST under Referrer-Policy: no-referrer says "Origin: null";
    # Sec-Fetch-Site, which no page can set, tells it from an opaque (sandboxed) origin's.
    same_origin = (
        origin is None
        or (origin == "null" and site == "same-origin")
        or (
            host is not None
            and origin_key(origin) is not None
            and origin_key(origin) == origin_key(f"{scheme}://{host}")
        )
    )
    if same_origin and site not in CROSS_SITE:
        return Verdict()
    if origin is None and is_navigation(headers, method, path):
        return Verdict()
    return Verdict(refusal=CROSS_ORIGIN_REFUSED)


def check_request() -> Response | None:
    """Apply :func:`judge` before anything else; answer CORS preflights of listed origins."""
    config = current_app.config
    verdict = judge(
        request.headers,
        request.method,
        request.path,
        request.scheme,
        config["AUTHSVC_ALLOWED_HOSTS"],
        config["AUTHSVC_CORS_ORIGINS"],
    )
    if verdict.refusal == CROSS_ORIGIN_REFUSED:
        raise ApiError(403, verdict.refusal, hint=CROSS_ORIGIN_HINT)
    if verdict.refusal is not None:
        raise ApiError(403, verdict.refusal)
    g.cross_origin = verdict.cross_origin
    g.cors_origin = verdict.cors_origin
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    if verdict.cors_origin and preflight:
        return Response(status=204, headers=CORS_HEADERS)
    return None


def add_cors_headers(response: Response) -> Response:
    """Listed origins may read the answer; credentials are never allowed."""
    origin = g.get("cors_origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED
        response.vary.add("Origin")
    return response


def init_app(app: Flask) -> None:
    """Run the gate first of all before-request hooks."""
    app.before_request_funcs.setdefault(None, []).insert(0, check_request)
    app.after_request(add_cors_headers)
