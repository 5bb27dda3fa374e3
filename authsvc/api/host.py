"""Host endpoints: see pending challenges with their codes, deny or claim them; decide on a
device's request by the user code it shows."""

from typing import Any, Literal

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field, StrictStr

from .. import device, pairing
from ..auth import Caller, forbidden, require_caller
from ..clock import utcnow
from ..listing import PageQuery, page
from ..wire import no_store
from .key_schemas import MAX_ENTRIES, ExpiryTime, Rule
from .resources import Claimed, DeviceDecided, DeviceRequest, HostChallengeList
from .schemas import NO_CONTENT, SECURITY, IdPath, errors, ok

api = APIBlueprint("host", __name__, abp_tags=[Tag(name="host")])
ERRORS = errors(401, 403, 404, 410)
DEVICE_ERRORS = errors(400, 401, 403, 404, 409, 410)


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


class UserCodeBody(BaseModel):
    user_code: StrictStr = Field(max_length=64)


class DeviceDecisionBody(UserCodeBody):
    action: Literal["approve", "deny"]
    organization: StrictStr | None = None
    expires_at: ExpiryTime | None = None
    allowed_endpoints: list[Rule] | None = Field(None, max_length=MAX_ENTRIES)


@api.post(
    "/v1/pairing/device/lookup", security=SECURITY, responses=ok(DeviceRequest, DEVICE_ERRORS)
)
def look_up_device(body: UserCodeBody) -> dict[str, Any]:
    """The pending device request with the code its app shows; a code matching none is a
    wrong code for the failure budget."""
    caller = require_pairing_host()
    return device.request_for_host(device.find_pending(body.user_code, caller.user))


@api.post("/v1/pairing/device", security=SECURITY, responses=ok(DeviceDecided, DEVICE_ERRORS))
def decide_device(body: DeviceDecisionBody) -> dict[str, Any]:
    """Approve or deny a device's request by its user code; the key will be the approver's."""
    caller = require_pairing_host()
    grant = {
        "organization_id": body.organization,
        "expires_at": body.expires_at,
        "allowed_endpoints": body.allowed_endpoints,
    }
    challenge = device.decide(body.user_code, caller.user, body.action == "approve", grant)
    status = "approved" if body.action == "approve" else "denied"
    return {"app_name": challenge.app_name, "client_ip": challenge.client_ip, "status": status}
