"""SPEC §1 wire conventions shared by every endpoint: JSON bodies, headers, lists."""

from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, request
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select

from .errors import ApiError
from .extensions import db

ANYTYPE_VERSION = "2025-11-08"
BIGGEST_INTEGER = 2**63 - 1  # what SQLite and PostgreSQL store; beyond it is a 400, not a 500


class PageQuery(BaseModel):
    """Pagination parameters of every list endpoint."""

    offset: int = Field(0, ge=0, le=BIGGEST_INTEGER)
    limit: int = Field(100, ge=1, le=1000)


def parse_json_body() -> None:
    """Parse any non-empty body as JSON whatever its Content-Type; it must be an object."""
    if request.method in {"GET", "HEAD", "OPTIONS"} or not request.get_data(cache=True):
        return
    try:
        body = request.get_json(force=True)
    except Exception as error:  # werkzeug raises BadRequest with the decoder's message
        raise ApiError(400, "bad input: the request body is not valid JSON") from error
    if not isinstance(body, dict):
        raise ApiError(400, "bad input: the request body must be a JSON object")


def add_version_header(response: Response) -> Response:
    """Every response, errors included, names the Anytype API version it speaks."""
    response.headers["Anytype-Version"] = ANYTYPE_VERSION
    return response


def no_store(response: Response) -> Response:
    """Mark a response that carries a secret as never to be cached."""
    response.headers["Cache-Control"] = "no-store"
    return response


def page(query: Select[Any], params: PageQuery, render: Any) -> dict[str, Any]:
    """Run ``query`` for one page and wrap the rendered rows in the list shape."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows: Sequence[Any] = db.session.scalars(query.offset(params.offset).limit(params.limit)).all()
    return listing([render(row) for row in rows], int(total or 0), params)


def listing(items: list[Any], total: int, params: PageQuery) -> dict[str, Any]:
    """The paginated list shape of SPEC §1."""
    return {
        "data": items,
        "pagination": {
            "total": total,
            "offset": params.offset,
            "limit": params.limit,
            "has_more": params.offset + len(items) < total,
        },
    }


def init_app(app: Flask) -> None:
    """Install the body parser and the version header."""
    app.before_request(parse_json_body)
    app.after_request(add_version_header)
