"""OAuth's face of pairing: discovery (RFC 8414), the device flow (RFC 8628), introspection
(RFC 7662) and revocation (RFC 7009), in OAuth's error shape."""

from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from .. import device, introspection
from ..auth import require_caller
from ..errors import ApiError
from ..wire import no_store
from .pairing import example
from .schemas import SECURITY, Responses, printable_name

api = APIBlueprint("oauth", __name__, abp_tags=[Tag(name="oauth")])
# OAuth error codes for refusals raised by the shared modules and hooks, by status.
ERROR_CODES = {
    400: "invalid_request",
    401: "invalid_client",
    403: "access_denied",
    429: "temporarily_unavailable",
}
PATHS = {
    "device_authorization_endpoint": "/oauth/device_authorization",
    "token_endpoint": "/oauth/token",
    "introspection_endpoint": "/oauth/introspect",
    "revocation_endpoint": "/oauth/revoke",
}
DEVICE_CODE = "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS"


class OAuthError(Exception):
    """An answer in OAuth's error shape (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400, **headers: str) -> None:
        super().__init__(description)
        self.error, self.description, self.status, self.headers = (
            error,
            description,
            status,
            headers,
        )


class OAuthErrorBody(BaseModel):
    """OAuth's error shape, used by every ``/oauth/`` endpoint."""

    error: str
    error_description: str


class Metadata(BaseModel):
    issuer: str
    device_authorization_endpoint: str
    token_endpoint: str
    introspection_endpoint: str
    revocation_endpoint: str
    grant_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]


class DeviceAuthorization(BaseModel):
    model_config = example(
        device_code=DEVICE_CODE,
        user_code="BCDF-GHJK",
        verification_uri="http://127.0.0.1:31009/ui/device",
        verification_uri_complete="http://127.0.0.1:31009/ui/device?user_code=BCDF-GHJK",
        expires_in=300,
        interval=5,
    )

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class TokenIssued(BaseModel):
    access_token: str
    token_type: str
    scope: str
    key_id: str
    expires_in: int | None = None


class Introspection(BaseModel):
    active: bool
    scope: str | None = None
    client_id: str | None = None
    username: str | None = None
    sub: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    key_id: str | None = None
    organization: str | None = None


class Revoked(BaseModel):
    """An empty object."""


def form_body(**fields: Any) -> dict[str, Any]:
    """The OpenAPI request body: form-encoded, or the same fields as a JSON object."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", **extra} for name, extra in fields.items()},
    }
    content = {
        "application/x-www-form-urlencoded": {"schema": schema},
        "application/json": {"schema": schema},
    }
    return {"requestBody": {"required": True, "content": content}}


def oauth_responses(model: type[BaseModel], *statuses: int) -> Responses:
    return {200: model, **{status: OAuthErrorBody for status in statuses}}


def parameters() -> dict[str, str]:
    """The request's parameters: a form (OAuth's encoding) or a JSON object; each once."""
    if request.mimetype == "application/x-www-form-urlencoded":
        lists = list(request.form.lists())
        if any(len(values) > 1 for _, values in lists):
            raise OAuthError("invalid_request", "a parameter was sent more than once")
        source: dict[str, Any] = {name: values[0] for name, values in lists}
    else:
        # Any other body was checked to be a JSON object (or empty) before the view ran.
        source = request.get_json(force=True, silent=True) or {}
    found = {}
    for name, value in source.items():
        if not isinstance(value, str):
            raise OAuthError("invalid_request", f"{name} must be a string")
        if value:  # RFC 6749 §3.1: a parameter sent without a value is omitted
            found[name] = value
    return found


def required(values: dict[str, str], name: str) -> str:
    if name not in values:
        raise OAuthError("invalid_request", f"missing {name}")
    return values[name]


def base_url() -> str:
    """The base URL as the client reached it."""
    return request.url_root.rstrip("/")


@api.errorhandler(OAuthError)
def answer_oauth_error(error: OAuthError) -> Response:
    response = jsonify({"error": error.error, "error_description": error.description})
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


@api.errorhandler(device.DeviceError)
def answer_device_error(error: device.DeviceError) -> Response:
    return answer_oauth_error(OAuthError(error.error, error.description))


@api.errorhandler(ApiError)
def answer_api_error(error: ApiError) -> Response:
    """Refusals of shared hooks and modules (body parsing, limits, pairing off) in OAuth's shape."""
    code = ERROR_CODES.get(error.status, "invalid_request")
    return answer_oauth_error(OAuthError(code, error.message, error.status, **error.headers))


@api.after_request
def never_cached(response: Response) -> Response:
    """Answers carry secrets or say whether a key works: for this request only."""
    return no_store(response)


@api.get("/.well-known/oauth-authorization-server", responses={200: Metadata})
def metadata() -> dict[str, Any]:
    """Authorization server metadata (RFC 8414)."""
    base = base_url()
    return {
        "issuer": base,
        **{name: base + path for name, path in PATHS.items()},
        "grant_types_supported": [device.GRANT_TYPE],
        "scopes_supported": [device.SCOPE],
        "token_endpoint_auth_methods_supported": ["none"],
    }


@api.post(
    "/oauth/device_authorization",
    responses=oauth_responses(DeviceAuthorization, 400, 403, 429),
    openapi_extensions=form_body(client_id={"example": "My Script"}, scope={"enum": ["api"]}),
)
def device_authorization() -> dict[str, Any]:
    """Start the device flow: the app shows the user code, the host types it in."""
    values = parameters()
    try:
        client_id = printable_name(required(values, "client_id"))
    except ValueError as error:
        raise OAuthError("invalid_request", f"client_id {error}") from None
    if set(values.get("scope", device.SCOPE).split()) != {device.SCOPE}:
        raise OAuthError("invalid_scope", 'the only scope is "api"')
    headers = request.headers
    challenge, device_code = device.authorize(
        client_id, request.remote_addr, headers.get("User-Agent"), headers.get("Origin")
    )
    assert challenge.user_code is not None
    user_code = device.shown_user_code(challenge.user_code)
    verification_uri = f"{base_url()}/ui/device"
    return {
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
        "expires_in": int((challenge.expires_at - challenge.created_at).total_seconds()),
        "interval": device.INTERVAL,
    }


@api.post(
    "/oauth/token",
    responses=oauth_responses(TokenIssued, 400, 403),
    openapi_extensions=form_body(
        grant_type={"example": device.GRANT_TYPE},
        device_code={"example": DEVICE_CODE},
        client_id={"example": "My Script"},
    ),
)
def token() -> dict[str, Any]:
    """Poll for the key of a device authorization."""
    values = parameters()
    grant_type = required(values, "grant_type")
    if grant_type != device.GRANT_TYPE:
        raise OAuthError("unsupported_grant_type", f"grant_type must be {device.GRANT_TYPE}")
    key, secret = device.poll(required(values, "device_code"), required(values, "client_id"))
    answer: dict[str, Any] = {
        "access_token": secret,
        "token_type": "Bearer",
        "scope": " ".join(key.scopes),
        "key_id": key.id,
    }
    if key.expires_at is not None:
        answer["expires_in"] = max(0, int((key.expires_at - key.created_at).total_seconds()))
    return answer


@api.post(
    "/oauth/introspect",
    security=SECURITY,
    responses=oauth_responses(Introspection, 400, 401, 429),
    openapi_extensions=form_body(token={}, token_type_hint={}),
)
def introspect() -> dict[str, Any]:
    """Whether a key is usable, for gateways (a session, or a key allowed to verify keys)."""
    try:
        caller = require_caller(scope="api")
    except ApiError as error:
        if error.status == 429:
            raise
        raise OAuthError("invalid_client", error.message, 401) from None
    if not caller.may("verify_keys"):
        raise OAuthError("invalid_client", "you lack the verify_keys permission", 401)
    return introspection.introspect(required(parameters(), "token"))


@api.post(
    "/oauth/revoke",
    responses=oauth_responses(Revoked, 400),
    openapi_extensions=form_body(token={}, token_type_hint={}),
)
def revoke() -> dict[str, Any]:
    """A key revokes itself; an unknown token is answered the same way."""
    introspection.revoke_token(required(parameters(), "token"))
    return {}
