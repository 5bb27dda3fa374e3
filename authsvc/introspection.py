"""Keys seen through OAuth: introspection (RFC 7662) for gateways, revocation (RFC 7009)."""

from typing import Any

from . import keycache, keys, tokens
from .clock import epoch

INACTIVE: dict[str, Any] = {"active": False}


def introspect(secret: str) -> dict[str, Any]:
    """What a gateway needs to know about a key; only ``{"active": false}`` unless usable.

    Usable means what a Bearer check asks before a request's own restrictions: known, not
    revoked, enabled, not expired, its owner active and allowed keys, keys on for the instance.
    Nothing is counted against the key's rate limit and its last use is not recorded.
    """
    if not tokens.is_well_formed(secret, keys.key_prefix()):
        return INACTIVE
    decision, values = keycache.lookup(tokens.digest(secret))
    if decision is None or decision.owner is None:
        return INACTIVE
    key, owner = decision.key, decision.owner
    usable = (
        not keys.is_revoked(key)
        and key.enabled
        and not keys.is_expired(key)
        and not owner.suspended
        and values["enable_api_keys"]
        and "api_keys" in decision.permissions
    )
    if not usable:
        return INACTIVE
    answer = {
        "active": True,
        "scope": " ".join(key.scopes),
        "client_id": key.name,
        "username": owner.username,
        "sub": owner.id,
        "token_type": "Bearer",
        "iat": epoch(key.created_at),
        "key_id": key.id,
        "organization": key.organization_id,
    }
    if key.expires_at is not None:
        answer["exp"] = epoch(key.expires_at)
    return answer


def revoke_token(secret: str) -> None:
    """A key revokes itself, as its owner deleting it would; an unknown token changes nothing."""
    key = keys.find_by_secret(secret)
    if key is not None:
        keys.revoke(key, key.owner_id)
