"""Thin HTTP blueprints over the business modules."""

from flask_openapi3 import OpenAPI


def register(app: OpenAPI) -> None:
    """Register every blueprint on the app."""
    from . import host, pairing, public, whoami

    for module in (public, pairing, host, whoami):
        app.register_api(module.api)
