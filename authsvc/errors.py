"""The one place that turns every failure into SPEC §1's JSON error shape."""

import logging
from typing import Any

from flask import Flask, Response, jsonify
from limits.errors import StorageError
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
# PostgreSQL's deadlock_detected and serialization_failure.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "object_not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    429: "rate_limit_exceeded",
    500: "internal_server_error",
    503: "service_unavailable",
}


class ErrorBody(BaseModel):
    """The error shape of every failed request (for the OpenAPI document)."""

    object: str = "error"
    status: int
    code: str
    message: str


class ApiError(Exception):
    """An error answered to the client: status, message, extra fields and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """The error shape itself (also answered by the layers outside Flask)."""
    code = CODES.get(status, "internal_server_error" if status >= 500 else "bad_request")
    return {"object": "error", "status": status, "code": code, "message": message, **extra}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """Build a response in the error shape."""
    response = jsonify(error_body(status, message, **extra))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def describe_validation_error(error: ValidationError) -> str:
    """Summarise pydantic's errors as one readable sentence."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(loc) for loc in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "bad input: " + "; ".join(parts)


def validation_error_callback(error: ValidationError) -> Response:
    """flask-openapi3's hook: request validation fails with 400, not 422."""
    return error_response(400, describe_validation_error(error))


def handle_api_error(error: ApiError) -> Response:
    return error_response(error.status, error.message, error.headers, **error.extra)


def handle_http_exception(error: HTTPException) -> Response:
    if isinstance(error.response, Response) and error.response.is_json:
        return error.response  # already in our shape (validation callback)
    status = error.code or 500
    message = (error.description or error.name).rstrip(".")
    if status == 413:
        message = "request body too large: the limit is 64 KB"
    elif status == 500:  # an error Flask met outside the views (a failing hook)
        message = "internal server error"
    response = error_response(status, message)
    allowed = getattr(error, "valid_methods", None)
    if status == 405 and allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def is_unavailable(error: Exception) -> bool:
    """Whether a database error means "not reachable now" (lost, refused, timed out, locked,
    read-only or full) rather than a fault in our own statements."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def is_conflict(error: Exception) -> bool:
    """Whether the database gave up a transaction because another one needed what it held
    (a deadlock, or a serialization failure): the database is well, the change may be
    tried again."""
    return getattr(getattr(error, "orig", None), "sqlstate", None) in CONFLICT_SQLSTATES


def handle_database_error(error: Exception) -> Response:
    """409 for a change that collided with another; 503 while the database cannot serve (the
    pool reconnects by itself afterwards)."""
    if is_conflict(error):
        log.warning("change refused, it collided with another: %s", getattr(error, "orig", error))
        return error_response(409, "another change to the same data ran at once: try again")
    if not is_unavailable(error):
        return handle_unexpected(error)
    log.warning("database unavailable: %s", getattr(error, "orig", None) or error)
    return error_response(
        503,
        "database unreachable",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
        retry_after=RETRY_AFTER_SECONDS,
    )


def handle_limit_store_error(error: StorageError) -> Response:
    """503 while the rate-limit store cannot count: no request goes through uncounted."""
    log.warning("rate-limit store unavailable: %s", error.storage_error)
    return error_response(
        503,
        "rate-limit store unavailable",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
        retry_after=RETRY_AFTER_SECONDS,
    )


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error", exc_info=error)
    return error_response(500, "internal server error")


def init_app(app: Flask) -> None:
    """Register the handlers on the app, so routing 404/405 are covered too."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeoutError, handle_database_error)
    app.register_error_handler(StorageError, handle_limit_store_error)
    app.register_error_handler(Exception, handle_unexpected)
