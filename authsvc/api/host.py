"""Host endpoints: see pending challenges with their codes, deny or claim them."""

from typing import Any

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from .. import pairing
from ..auth import Caller, forbidden, require_caller
from ..clock import utcnow
from ..wire import PageQuery, no_store, page
from .resources import Claimed, HostChallengeList
from .schemas import NO_CONTENT, SECURITY, IdPath, errors, ok

api = APIBlueprint("host", __name__, abp_tags=[Tag(name="host")])
ERRORS = errors(401, 403, 404, 410)


def require_pairing_host() -> Caller:
    """A host caller who may hand out keys: pending codes are for users with ``api_keys``."""
    caller = require_caller()
    if not caller.may("api_keys"):
        raise forbidden("you lack the api_keys permission")
    return caller


@api.get("/v1/pairing/challenges", security=SECURITY, responses=ok(HostChallengeList, ERRORS))
def list_challenges(query: PageQuery) -> Response:
    """Pending challenges with their codes, for the person at the host (never cached)."""
    caller = require_pairing_host()
    now = utcnow()
    listing = page(
        pairing.host_query(caller.user, now),
        query,
        lambda challenge: pairing.challenge_for_host(challenge, caller.user, now),
    )
    return no_store(jsonify(listing))


@api.post("/v1/pairing/challenges/<id>/deny", security=SECURITY, responses={**NO_CONTENT, **ERRORS})
def deny_challenge(path: IdPath) -> tuple[str, int]:
    """Refuse a pending challenge."""
    caller = require_pairing_host()
    pairing.deny_challenge(path.id, caller.user)
    return "", 204


@api.post("/v1/pairing/challenges/<id>/claim", security=SECURITY, responses=ok(Claimed, ERRORS))
def claim_challenge(path: IdPath) -> dict[str, Any]:
    """Approve a pending challenge; the key will belong to the claimer."""
    caller = require_pairing_host()
    challenge = pairing.claim_challenge(path.id, caller.user)
    return {"code": challenge.code, "challenge_id": challenge.id}
