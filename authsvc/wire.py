"""SPEC §1 wire conventions shared by every endpoint: JSON bodies and their values, headers."""

import math
import re
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import BadRequest

from .errors import ApiError

ANYTYPE_VERSION = "2025-11-08"
# The largest integer every JSON client reads exactly (JavaScript's Number.MAX_SAFE_INTEGER);
# far below what the databases' 64-bit OFFSET takes.
MAX_SAFE_INTEGER = 2**53 - 1
SURROGATE = re.compile("[\ud800-\udfff]")
# OAuth's endpoints take form-encoded bodies too (RFC 6749 §4.1.3, RFC 8628 §3.1).
FORM_PATHS = "/oauth/"
FORM = "application/x-www-form-urlencoded"


def parse_json_body() -> None:
    """Parse any non-empty body as JSON whatever its Content-Type; it must be an object."""
    refuse_unstorable(request.path, *request.args.keys(), *request.args.values())
    if request.method in {"GET", "HEAD", "OPTIONS"} or not request.get_data(cache=True):
        return
    if request.mimetype == FORM and request.path.startswith(FORM_PATHS):
        refuse_unstorable(*(text for pair in request.form.items(multi=True) for text in pair))
        return
    try:
        body = request.get_json(force=True)
    # BadRequest: werkzeug's answer to a body the decoder refuses; nesting deeper than the
    # decoder's recursion reaches raises RecursionError.
    except (BadRequest, RecursionError) as error:
        raise ApiError(400, "bad input: the request body is not valid JSON") from error
    if not isinstance(body, dict):
        raise ApiError(400, "bad input: the request body must be a JSON object")
    check_values(body)


def check_values(body: Any) -> None:
    """400 for what no column can hold: NaN, Infinity (or a number that overflows to it), NUL
    characters (PostgreSQL refuses them in text) and lone surrogates (not UTF-8)."""
    pending = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            refuse_unstorable(*value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, "bad input: numbers must be finite (no NaN or Infinity)")
        elif isinstance(value, str):
            refuse_unstorable(value)


def refuse_unstorable(*texts: str) -> None:
    """400 when a text holds a NUL character or a lone surrogate (not UTF-8)."""
    for text in texts:
        if "\x00" in text or SURROGATE.search(text):
            raise ApiError(
                400, "bad input: text must not contain NUL characters or lone surrogates"
            )


def no_store(response: Response) -> Response:
    """Mark a response that carries a secret as never to be cached."""
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Install the body parser (the version header is added by ``outermost``)."""
    app.before_request(parse_json_body)
