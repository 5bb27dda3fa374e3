"""Request models and OpenAPI annotations shared by several blueprints."""

from http import HTTPStatus
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, StringConstraints

from ..errors import ErrorBody

Responses = dict[str | int | HTTPStatus, Any]
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def errors(*statuses: int) -> Responses:
    """OpenAPI responses: each status answers the error shape."""
    return {status: ErrorBody for status in statuses}


NO_CONTENT: Responses = {204: None}


def ok(model: type[BaseModel], failures: Responses) -> Responses:
    """OpenAPI responses: 200 answering ``model``, besides ``failures``."""
    return {200: model, **failures}


def printable_name(value: str) -> str:
    """1–64 printable characters after trimming."""
    value = value.strip()
    if not 1 <= len(value) <= 64:
        raise ValueError("must be 1 to 64 characters after trimming")
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    return value


Name = Annotated[str, StringConstraints(strict=True), AfterValidator(printable_name)]


class IdPath(BaseModel):
    """A path with one opaque id."""

    id: str
