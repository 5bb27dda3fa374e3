"""Who is calling: the one reader of ``Authorization`` and the key checks of SPEC §2."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import g, request
from limits import RateLimitItemPerSecond

from . import (
    keycache,
    keys,
    ratelimits,
    restrictions,
    sessions,
    tokens,
    usage,
    usage_limits,
    users,
)
from .clock import utcnow
from .errors import ApiError
from .models import ApiKey, AuthSession, User

REALM = 'Bearer realm="authsvc"'
LAST_USED_EVERY = timedelta(minutes=1)
KEY_ONLY_HINT = "this endpoint takes an api key, not a session token"
SCOPE_REFUSALS = {"manage": "this api key may not manage", "api": "this api key may only manage"}
# check_key's 401 messages, as verification codes; its 403s and 429s map by status.
REFUSAL_CODES = {
    "invalid api key": "NOT_FOUND",
    "api key revoked": "REVOKED",
    "api key disabled": "DISABLED",
    "api key expired": "EXPIRED",
}


@dataclass
class Caller:
    """An authenticated caller: a user, through a key or a session."""

    user: User
    key: ApiKey | None = None
    session: AuthSession | None = None
    permissions: frozenset[str] | None = None  # known already when a key was checked
    decision: keycache.Decision | None = None  # a key's, as the key cache keeps it

    def may(self, permission: str) -> bool:
        """Whether the caller's user has a feature permission."""
        if self.permissions is not None:
            return permission in self.permissions
        return users.has_permission(self.user, permission)


def unauthorized(message: str, token_sent: bool = True, **extra: str) -> ApiError:
    challenge = f'{REALM}, error="invalid_token"' if token_sent else REALM
    return ApiError(401, message, headers={"WWW-Authenticate": challenge}, **extra)


def forbidden(message: str) -> ApiError:
    return ApiError(
        403, message, headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'}
    )


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``, None when no header was sent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise unauthorized("invalid authorization header format", token_sent=False)
    return parts[1]


def check_key(secret: str, method: str, path: str | None, client_ip: str | None) -> Caller:
    """Apply every rule of SPEC §2–3 to one request made with ``secret``, in order; record use.

    ``path`` is None only for a verification that names no request target. Malformed
    secrets never reach the database; the rest is decided from the key cache. Every outcome
    is counted (usage and metrics) beside the check, never written on its way.
    """
    key_id = None
    try:
        decision, values = find_key(secret)
        key_id = decision.key.id
        caller = apply_rules(decision, values, method, path, client_ip)
    except ApiError as error:
        usage.record(key_id, refusal_code(error).lower())
        raise
    usage.record(key_id, "valid")
    return caller


def refusal_code(error: ApiError) -> str:
    """The verification code for one of check_key's refusals."""
    if error.status == 429:
        return "USAGE_EXCEEDED" if error.message == usage_limits.EXHAUSTED else "RATE_LIMITED"
    if error.status == 403:
        return "FORBIDDEN"
    return REFUSAL_CODES.get(error.message, "NOT_FOUND")


def find_key(secret: str) -> tuple[keycache.Decision, dict[str, Any]]:
    """The key a secret names, from the key cache; 401 when there is none."""
    if not tokens.is_well_formed(secret, keys.key_prefix()):
        raise unauthorized("invalid api key")
    decision, values = keycache.lookup(tokens.digest(secret))
    if decision is None:
        raise unauthorized("invalid api key")
    return decision, values


def apply_rules(
    decision: keycache.Decision,
    values: dict[str, Any],
    method: str,
    path: str | None,
    client_ip: str | None,
) -> Caller:
    """The rules on a key that exists, in order; record its use."""
    key, owner = decision.key, decision.owner
    if keys.is_revoked(key):
        raise unauthorized("api key revoked")
    if not key.enabled:
        raise unauthorized("api key disabled")
    if keys.is_expired(key):
        raise unauthorized("api key expired")
    if owner is None or owner.suspended:
        raise unauthorized("invalid api key")
    check_restrictions(decision, values, method, path, client_ip)
    check_rate_limits(decision)
    if key.usage_limit is not None:
        usage_limits.take(key)
    touch(decision, client_ip)
    # The kept rows themselves, detached: callers read them; changes go through a fresh load.
    return Caller(user=owner, key=key, permissions=decision.permissions, decision=decision)


def check_restrictions(
    decision: keycache.Decision,
    values: dict[str, Any],
    method: str,
    path: str | None,
    client_ip: str | None,
) -> None:
    """The 403 rules: toggle, permission, IP, endpoints, organization."""
    key = decision.key
    if not values["enable_api_keys"]:
        raise forbidden("api keys are disabled on this instance")
    if "api_keys" not in decision.permissions:
        raise forbidden("the key's owner lacks the api_keys permission")
    if key.allowed_ips is not None and not restrictions.ip_allowed(key.allowed_ips, client_ip):
        raise forbidden("client address not allowed for this api key")
    if path is None:
        # A verification that names no request target cannot pass an endpoint restriction.
        if key.allowed_endpoints is not None or values["api_key_endpoint_restrictions_enabled"]:
            raise forbidden("endpoint not allowed for this api key: no path given")
        return
    try:
        path = restrictions.clean_path(path)
    except ApiError as error:
        raise forbidden(error.message) from None
    if values["api_key_endpoint_restrictions_enabled"] and not restrictions.endpoint_allowed(
        values["api_key_allowed_endpoints"], method, path
    ):
        raise forbidden("endpoint not allowed for api keys on this instance")
    if key.allowed_endpoints is not None and not restrictions.endpoint_allowed(
        key.allowed_endpoints, method, path
    ):
        raise forbidden("endpoint not allowed for this api key")
    space = restrictions.organization_in_path(path)
    if space is not None and not reaches_organization(decision, space):
        raise forbidden("api key is scoped to another organization")


def reaches_organization(decision: keycache.Decision, organization_id: str) -> bool:
    """Whether the key may act in an organization: its scope and its owner's membership.

    Ids are compared without regard to case, as the path parser recognises them.
    """
    wanted = organization_id.lower()
    scope = decision.key.organization_id
    if scope is not None and scope.lower() != wanted:
        return False
    return wanted in {member.lower() for member in decision.organization_ids}


def check_rate_limits(decision: keycache.Decision) -> None:
    """The key's own ``rate_limit``, then those of the keys that created it: a limited key
    cannot multiply its rate by minting children. Each request counts in every bucket."""
    key = decision.key
    if key.rate_limit:
        enforce_key_limit(key.id, key.rate_limit, "rate limit exceeded for this api key")
    for creator_id, rate_limit in decision.creator_limits:
        message = "rate limit exceeded for the api key that created this one"
        enforce_key_limit(creator_id, rate_limit, message)


def enforce_key_limit(key_id: str, rate_limit: dict[str, int], message: str) -> None:
    item = RateLimitItemPerSecond(rate_limit["requests"], rate_limit["per_seconds"])
    ratelimits.enforce([item], message, "api-key", key_id)


def touch(decision: keycache.Decision, client_ip: str | None) -> None:
    """Record use at most once a minute per key, so the hot path rarely writes."""
    now = utcnow()
    last = decision.key.last_used_at
    if last is None or now - last >= LAST_USED_EVERY:
        keys.record_use(decision.key, now, now - LAST_USED_EVERY, client_ip)


def request_target() -> str:
    """The path as the client sent it, still encoded, so the path parser sees what it meant."""
    environ = request.environ
    return str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path)


def require_key(method: str | None = None, path: str | None = None) -> Caller:
    """Authenticate the request's API key for the guarded API (the ``api`` scope).

    Forward-auth passes the forwarded method and path.
    """
    token = bearer_token()
    if token is None:
        raise unauthorized("missing authorization header", token_sent=False)
    if not token.startswith(keys.key_prefix()) and sessions.is_session_token(token):
        raise unauthorized("invalid api key", hint=KEY_ONLY_HINT)
    return require_scope(authenticate_key(token, method, path), "api")


def require_scope(caller: Caller, scope: str) -> Caller:
    """403 unless the caller's key has ``scope``; sessions have every scope."""
    if caller.key is not None and scope not in caller.key.scopes:
        raise forbidden(SCOPE_REFUSALS[scope])
    return caller


def authenticate_key(token: str, method: str | None = None, path: str | None = None) -> Caller:
    """Check a key against every rule for this request, record its use, remember the caller."""
    target = path or request_target()
    caller = check_key(token, method or request.method, target, request.remote_addr)
    g.caller = caller
    return caller


def require_caller(allow_keys: bool = True, scope: str = "manage") -> Caller:
    """A management caller: a session (token, or the pages' cookie and CSRF token) or an API
    key with ``scope``.

    Being on loopback grants nothing. The pages' credential counts only from the server's own
    origin, and the cookie alone never counts: another port of the host may have read or set it.
    """
    token = bearer_token()
    if token is not None and token.startswith(keys.key_prefix()):
        if not allow_keys:
            raise forbidden("this endpoint needs a host session, not an api key")
        return require_scope(authenticate_key(token), scope)
    if token is not None:
        resolved = sessions.resolve(token)
        if resolved is None:
            raise unauthorized("invalid or expired session")
        caller = Caller(user=resolved[0], session=resolved[1])
    elif sends_page_credential():
        caller = page_caller()
    else:
        raise unauthorized("missing authorization header", token_sent=False)
    g.caller = caller
    return caller


def sends_page_credential() -> bool:
    """Whether the request carries either half of the web pages' credential."""
    return sessions.COOKIE in request.cookies or sessions.CSRF_HEADER in request.headers


def page_caller() -> Caller:
    """The web pages' caller: a cookie and the CSRF token (from origin storage) of one session.

    Of several cookies of that name (another port may add its own), the one of the CSRF token's
    session counts; a cookie without its token, or of another session, counts for nothing.
    Another origin's requests (listed for CORS) never ride on the pages' credential.
    """
    if g.get("cross_origin", False):
        raise unauthorized("missing authorization header", token_sent=False)
    session_id = sessions.csrf_session_id(request.headers.get(sessions.CSRF_HEADER))
    cookies = request.cookies.getlist(sessions.COOKIE)
    resolved = (sessions.resolve(cookie, sessions.COOKIE_SALT) for cookie in cookies)
    live = [found for found in resolved if found is not None]
    for user, session in live:
        if session.id == session_id:
            return Caller(user=user, session=session)
    if session_id is None or live:
        raise ApiError(403, "missing or invalid csrf token")
    raise unauthorized("invalid or expired session")


def require_role(caller: Caller, role: str) -> None:
    """403 unless the caller's role is at least ``role``."""
    if users.ROLES.get(caller.user.role, 0) < users.ROLES[role]:
        raise forbidden(f"this needs the {role} role")


def require_admin_api(role: str = "admin") -> Caller:
    """A ``/v1/admin/*`` caller: multi-user mode only, with at least ``role``."""
    if not users.is_multi_user():
        raise ApiError(401, "Instance is not in Multi-User mode. Method denied.")
    caller = require_caller()
    require_role(caller, role)
    return caller
