"""The outermost WSGI layer: every answer names the API version, and what escapes Flask still
answers in the JSON error shape.

Flask's handlers see what views and hooks raise while the answer is being made. What is raised
after that (in a teardown, or by an ``after_request`` hook while an error is being answered)
would reach gunicorn, which answers an HTML page without our headers. This layer answers
instead: 503 with ``Retry-After`` when the database is unavailable, else 500.
"""

import json
import logging
import sys
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import Flask

from .errors import RETRY_AFTER_SECONDS, error_body, is_unavailable
from .wire import ANYTYPE_VERSION

log = logging.getLogger(__name__)
VERSION_HEADER = ("Anytype-Version", ANYTYPE_VERSION)


def error_answer(error: Exception) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body for an error that escaped Flask."""
    if is_unavailable(error):
        log.warning("database unavailable, outside the app's handlers: %s", error)
        status = HTTPStatus.SERVICE_UNAVAILABLE
        body = error_body(status, "database unreachable", retry_after=RETRY_AFTER_SECONDS)
        extra = [("Retry-After", str(RETRY_AFTER_SECONDS))]
    else:
        log.exception("error outside the app's handlers", exc_info=error)
        status = HTTPStatus.INTERNAL_SERVER_ERROR
        body, extra = error_body(status, "internal server error"), []
    encoded = json.dumps(body).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(encoded))),
        *extra,
        VERSION_HEADER,
    ]
    return f"{status.value} {status.phrase}", headers, encoded


class Outermost:
    """Wrap a WSGI app: add the version header to every answer; answer what it raises."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(name, value) for name, value in headers if name.lower() != "anytype-version"]
            return start_response(status, [*kept, VERSION_HEADER], exc_info)

        try:
            return self.app(environ, start)
        except Exception as error:
            status, headers, body = error_answer(error)
            start_response(status, headers, sys.exc_info())
            return [body]


def init_app(app: Flask) -> None:
    """Wrap the app's WSGI callable; call last, so that this layer is the outermost."""
    app.wsgi_app = Outermost(app.wsgi_app)  # type: ignore[method-assign]
