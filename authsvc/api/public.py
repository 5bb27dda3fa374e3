"""Public endpoints: service identity, health and the OpenAPI document."""

from typing import Any

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag

from .. import __version__, database
from ..errors import ApiError

api = APIBlueprint("public", __name__, abp_tags=[Tag(name="public")])


@api.get("/")
def index() -> dict[str, Any]:
    """Name and version of the service."""
    return {"name": "authsvc", "version": __version__}


@api.get("/health")
def health() -> dict[str, Any]:
    """Liveness with a database check."""
    if not database.is_reachable():
        raise ApiError(503, "database unreachable", database="unreachable")
    return {"status": "ok", "database": "ok"}


api.get("/health/", doc_ui=False)(health)


@api.get("/openapi.json", doc_ui=False)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document generated from the routes."""
    return current_app.api_doc  # type: ignore[attr-defined]
