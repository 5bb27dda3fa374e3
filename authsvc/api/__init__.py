"""Thin HTTP blueprints over the business modules."""

from flask_openapi3 import OpenAPI


def register(app: OpenAPI) -> None:
    """Register every blueprint on the app."""
    from . import admin_keys, host, keys, pairing, public, verify, whoami

    for module in (public, pairing, host, whoami, keys, admin_keys, verify):
        app.register_api(module.api)
