"""The paginated list shape of SPEC §1, shared by every list endpoint and page."""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select

from .extensions import db
from .wire import MAX_SAFE_INTEGER


class PageQuery(BaseModel):
    """Pagination parameters of every list endpoint."""

    offset: int = Field(0, ge=0, le=MAX_SAFE_INTEGER)
    limit: int = Field(100, ge=1, le=1000)


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
