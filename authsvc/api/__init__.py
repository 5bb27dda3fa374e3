"""Thin HTTP blueprints over the business modules."""

from flask_openapi3 import OpenAPI


def register(app: OpenAPI) -> None:
    """Register every blueprint on the app."""
    from . import (
        accounts,
        admin,
        admin_keys,
        host,
        keys,
        oauth,
        pairing,
        public,
        settings,
        usage,
        verify,
        whoami,
    )

    for module in (
        public,
        pairing,
        host,
        whoami,
        keys,
        admin_keys,
        verify,
        accounts,
        admin,
        settings,
        oauth,
        usage,
    ):
        app.register_api(module.api)
    # Before the body parser, so the creation limit counts even unparsable bodies; the gate
    # (gate.init_app, called later, inserts itself before this) still runs first of all.
    app.before_request_funcs.setdefault(None, []).insert(0, pairing.count_challenge_creation)
