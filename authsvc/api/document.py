"""The OpenAPI document, completed with the error answers every operation may give."""

from http import HTTPStatus
from typing import Any

from flask_openapi3 import OpenAPI

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}
# Answers any request may get before or around its operation: bad input in the query or body
# (400), a refused Host or cross-site request (403), a request line or headers over the
# server's limits (414, 431), the database unreachable (503).
ANY_OPERATION = (400, 403, 414, 431, 503)
# Requests whose body is read and that may write: the body may be too large (413), the change
# may collide with another one (409, a deadlock the database broke).
WRITES = {"post", "put", "patch", "delete"}
# Operations whose blueprint answers the app's own refusals (bad input, a refused Host or
# origin) in another shape: OAuth's endpoints answer {"error", "error_description"}.
OWN_ERROR_SHAPES = {"oauth": {"$ref": "#/components/schemas/OAuthErrorBody"}}
OWN_SHAPE_STATUSES = (400, 403)


def error_response(status: int, schema: dict[str, str] = ERROR_SCHEMA) -> dict[str, Any]:
    """An OpenAPI response answering one error object."""
    return {
        "description": HTTPStatus(status).phrase,
        "content": {"application/json": {"schema": schema}},
    }


class App(OpenAPI):
    """flask-openapi3's app, whose document states the error answers common to every operation
    as the one error object the server sends (flask-openapi3 alone describes an undeclared 400
    as a list of errors)."""

    def generate_spec_json(self) -> None:
        super().generate_spec_json()
        for path_item in self.spec_json["paths"].values():
            for method, operation in path_item.items():
                responses = operation.setdefault("responses", {})
                statuses = ANY_OPERATION + ((409, 413) if method in WRITES else ())
                own = next(
                    (
                        OWN_ERROR_SHAPES[tag]
                        for tag in operation.get("tags", ())
                        if tag in OWN_ERROR_SHAPES
                    ),
                    ERROR_SCHEMA,
                )
                for status in statuses:
                    shape = own if status in OWN_SHAPE_STATUSES else ERROR_SCHEMA
                    responses[str(status)] = error_response(status, shape)
