"""Public endpoints: service identity, health, the OpenAPI document and Swagger UI."""

from typing import Any

import yaml
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template_string,
    request,
    send_from_directory,
    url_for,
)
from flask_openapi3 import APIBlueprint, Tag
from flask_openapi3_swagger.plugins import RegisterPlugin
from werkzeug.wrappers import Response as BaseResponse

from .. import __version__, database
from ..errors import ApiError
from ..pageheaders import PAGE_HEADERS
from .resources import Health, ServiceInfo
from .schemas import errors, ok

api = APIBlueprint("public", __name__, abp_tags=[Tag(name="public")])

# Swagger UI's own files, shipped by flask-openapi3-swagger, served from here so the page
# works offline; routes without path models live on a plain blueprint nested in ``api``.
SWAGGER_STATIC = RegisterPlugin.register(doc_url="openapi.json").static_folder
docs = Blueprint("docs", __name__)
api.register_blueprint(docs)

SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>authsvc API</title>
  <link rel="icon" href="{{ asset('images/swagger.svg') }}">
  <link rel="stylesheet" href="{{ asset('css/swagger-ui.css') }}">
</head>
<body>
<div id="swagger-ui" data-document-url="{{ doc_url }}"></div>
<script src="{{ asset('js/swagger-ui-bundle.js') }}"></script>
<script src="{{ asset('js/swagger-ui-standalone-preset.js') }}"></script>
<script src="{{ url_for('web.static', filename='docs.js') }}"></script>
</body>
</html>
"""


@api.get("/", responses=ok(ServiceInfo, {}))
def index() -> dict[str, Any] | BaseResponse:
    """Name and version of the service; a browser is sent to the web pages."""
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return redirect(url_for("web.pairing_requests"))
    return {"name": "authsvc", "version": __version__}


@api.get("/health", responses=ok(Health, errors(503)))
def health() -> dict[str, Any]:
    """Liveness with a database check."""
    if not database.is_reachable():
        raise ApiError(503, "database unreachable", database="unreachable")
    return {"status": "ok", "database": "ok"}


api.get("/health/", responses=ok(Health, errors(503)), operation_id="health_slash")(health)


@api.get("/openapi.json", doc_ui=False)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document generated from the routes."""
    return current_app.api_doc  # type: ignore[attr-defined]


api.get("/schema/", doc_ui=False)(openapi_document)
api.get("/docs/openapi.json", doc_ui=False)(openapi_document)


@api.get("/docs/openapi.yaml", doc_ui=False)
def openapi_yaml() -> Response:
    """The same document as YAML."""
    text = yaml.safe_dump(current_app.api_doc, sort_keys=False, allow_unicode=True)  # type: ignore[attr-defined]
    return Response(text, mimetype="application/yaml")


@docs.before_request
def docs_enabled() -> None:
    """``DISABLE_SWAGGER_DOCS=true`` hides the UI as if it did not exist."""
    if current_app.config["DISABLE_SWAGGER_DOCS"]:
        abort(404)


@docs.after_request
def security_headers(response: Response) -> Response:
    """Swagger UI is a page like the others: the same policy and headers."""
    response.headers.update(PAGE_HEADERS)
    return response


@docs.get("/api/docs")
@docs.get("/docs/")
def swagger_ui() -> str:
    """Swagger UI over the document, from local files only."""
    return render_template_string(
        SWAGGER_PAGE,
        doc_url=url_for("public.openapi_document"),
        asset=lambda name: url_for("public.docs.swagger_asset", filename=name),
    )


@docs.get("/docs/swagger/<path:filename>")
def swagger_asset(filename: str) -> Response:
    """Swagger UI's scripts, styles and icon."""
    assert SWAGGER_STATIC is not None
    return send_from_directory(SWAGGER_STATIC, filename)
