"""Seeing use: a key's usage by hour or day, and the Prometheus metrics."""

from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, BeforeValidator

from .. import keyfields, keys, metrics, usage, users
from ..auth import Caller, require_caller
from ..models import ApiKey
from .resources import UsageReport
from .schemas import SECURITY, IdPath, Responses, errors, ok

api = APIBlueprint("usage", __name__, abp_tags=[Tag(name="usage")])
ERRORS = errors(400, 401, 403, 404, 429)


class UsageQuery(BaseModel):
    granularity: Literal["hour", "day"] = "hour"
    since: Annotated[datetime | None, BeforeValidator(keyfields.parse_time)] = None


def visible_key(caller: Caller, key_id: str) -> ApiKey:
    """The caller's own key, or any key for an admin; another user's key is 404."""
    is_admin = users.ROLES.get(caller.user.role, 0) >= users.ROLES["admin"]
    return keys.get_key(key_id, None if is_admin else caller.user)


@api.get("/v1/api-keys/<id>/usage", security=SECURITY, responses=ok(UsageReport, ERRORS))
def key_usage(path: IdPath, query: UsageQuery) -> dict[str, Any]:
    """A key's requests by hour (the last 24 h) or day (the last 30 days), by outcome."""
    key = visible_key(require_caller(), path.id)
    return usage.report(key.id, query.granularity, query.since)


PROMETHEUS_TEXT: Responses = {
    200: {
        "description": "Prometheus's text format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@api.get("/metrics", security=SECURITY, responses={**PROMETHEUS_TEXT, **errors(401, 403, 429)})
def prometheus_metrics() -> Response:
    """Prometheus metrics, summed over every worker process."""
    require_caller()
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)
