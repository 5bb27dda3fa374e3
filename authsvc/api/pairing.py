"""Pairing endpoints for apps (SPEC §4), including the 2025-04-22 legacy pair."""

from typing import Any

from flask import Response, current_app, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from .. import pairing, ratelimits
from ..clock import iso
from ..models import Challenge
from ..wire import no_store
from .schemas import Name, errors

api = APIBlueprint("pairing", __name__, abp_tags=[Tag(name="pairing")])
ERRORS = errors(400, 403, 404, 410)


CREATION_ENDPOINTS = {
    "pairing.create_challenge",
    "pairing.display_code",
    "oauth.device_authorization",
}


def count_challenge_creation() -> None:
    """Every creation request counts toward the per-client limit, refused ones included.

    It runs before the body is parsed or validated, so malformed requests count too; a
    disabled pairing still answers 403 first, as SPEC §4 orders.
    """
    if request.endpoint in CREATION_ENDPOINTS:
        limits = ratelimits.parse(current_app.config["AUTHSVC_CHALLENGE_RATE_LIMIT"])
        client = request.remote_addr or "unknown"
        message = "rate limit exceeded: too many challenges from this client"
        over_limit = ratelimits.count(limits, message, "challenges", client)
        pairing.require_pairing_enabled()
        if over_limit is not None:
            raise over_limit


# Examples for the document: one pairing, from challenge to key, with the PKCE-style binding.
CHALLENGE_ID = "Qm9vdHN0cmFwQ2hhbGxlbmdlSWQ"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CODE_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # base64url(SHA-256(verifier))
SECRET = "sk-3tTq0eAPmVbC1zR7yXwNf8LkD2hG5sJ9uQ4oIaW6eBcZ1x0nM"


def example(**values: Any) -> ConfigDict:
    """A model's example for the OpenAPI document (flask-openapi3 keeps ``example``)."""
    return ConfigDict(json_schema_extra={"example": values})


class ChallengeBody(BaseModel):
    model_config = example(app_name="My Script", code_challenge=CODE_CHALLENGE)

    app_name: Name
    code_challenge: StrictStr | None = Field(None, pattern=r"^[A-Za-z0-9_-]{43}$")


class ChallengeCreated(BaseModel):
    model_config = example(challenge_id=CHALLENGE_ID, expires_at="2026-11-23T10:05:00Z")

    challenge_id: str
    expires_at: str


class RedeemBody(BaseModel):
    model_config = example(challenge_id=CHALLENGE_ID, code="0482", code_verifier=VERIFIER)

    challenge_id: StrictStr = ""
    code: StrictStr | StrictInt = ""
    code_verifier: StrictStr | None = None


class KeyIssued(BaseModel):
    model_config = example(
        api_key=SECRET, key_id="key_5f0c2a9e4b7d1c3a8e6f0b2d", name="My Script", expires_at=None
    )

    api_key: str
    key_id: str
    name: str
    expires_at: str | None


class DisplayCodeQuery(BaseModel):
    model_config = example(app_name="My Script")

    app_name: Name


class ChallengeStarted(BaseModel):
    model_config = example(challenge_id=CHALLENGE_ID)

    challenge_id: str


class TokenQuery(BaseModel):
    model_config = example(challenge_id=CHALLENGE_ID, code="0482")

    challenge_id: str = ""
    code: str = ""


class AppKey(BaseModel):
    model_config = example(app_key=SECRET)

    app_key: str


def normalize_code(code: str | int) -> str:
    """A code sent as a number is zero-padded to four digits."""
    return f"{code:04d}" if isinstance(code, int) and code >= 0 else str(code)


def issue_for_request(app_name: str, code_challenge: str | None) -> Challenge:
    """A challenge for the app making this request, with what it says about itself."""
    headers = request.headers
    return pairing.issue_challenge(
        app_name,
        request.remote_addr,
        code_challenge,
        headers.get("User-Agent"),
        headers.get("Origin"),
    )


@api.post("/v1/auth/challenges", responses={201: ChallengeCreated, **ERRORS, **errors(429)})
def create_challenge(body: ChallengeBody) -> tuple[dict[str, Any], int]:
    """Start pairing: the host is shown a 4-digit code for this app."""
    challenge = issue_for_request(body.app_name, body.code_challenge)
    return {"challenge_id": challenge.id, "expires_at": iso(challenge.expires_at)}, 201


@api.post("/v1/auth/api_keys", responses={201: KeyIssued, **ERRORS})
def create_api_key(body: RedeemBody) -> Response:
    """Finish pairing: exchange the challenge and the code for an API key."""
    key, secret, _ = pairing.redeem_challenge(
        body.challenge_id, normalize_code(body.code), body.code_verifier
    )
    response = jsonify(
        {"api_key": secret, "key_id": key.id, "name": key.name, "expires_at": iso(key.expires_at)}
    )
    response.status_code = 201
    return no_store(response)


@api.post("/v1/auth/display_code", responses={200: ChallengeStarted, **ERRORS, **errors(429)})
def display_code(query: DisplayCodeQuery) -> dict[str, Any]:
    """Legacy (2025-04-22) start of pairing."""
    challenge = issue_for_request(query.app_name, None)
    return {"challenge_id": challenge.id}


@api.post("/v1/auth/token", responses={200: AppKey, **ERRORS})
def token(query: TokenQuery) -> Response:
    """Legacy (2025-04-22) end of pairing: answers ``{"app_key"}``."""
    _, secret, _ = pairing.redeem_challenge(query.challenge_id, query.code, None)
    return no_store(jsonify({"app_key": secret}))
