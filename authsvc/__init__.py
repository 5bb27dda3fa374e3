"""authsvc: pair apps with a host and give them API keys."""

import logging
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask_openapi3 import Info, OpenAPI

try:
    __version__ = version("authsvc")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"


def create_app(test_config: dict[str, Any] | None = None) -> OpenAPI:
    """Build the application: configuration, extensions, blueprints, error handlers."""
    from . import config, errors, files, gate, outermost, proxies, wire
    from .api.document import App

    app = App(
        __name__,
        instance_path=config.instance_path(test_config),
        instance_relative_config=True,
        info=Info(title="authsvc", version=__version__),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        validation_error_status=400,
        validation_error_model=errors.ErrorBody,
        validation_error_callback=errors.validation_error_callback,
        doc_ui=False,
    )
    config.load_config(app, test_config)
    files.secure_files(app.instance_path, app.config["SQLALCHEMY_DATABASE_URI"])
    proxies.init_app(app)
    logging.getLogger("authsvc").setLevel(logging.INFO)

    register_extensions(app)
    errors.init_app(app)
    wire.init_app(app)
    register_blueprints(app)
    gate.init_app(app)  # last, so that its hook runs first
    outermost.init_app(app)  # last of the WSGI layers, so that it is the outermost
    return app


def register_extensions(app: OpenAPI) -> None:
    """Bind the extension objects and the modules that hook into requests."""
    from . import database, keycache, logs, metrics, purge, ratelimits, sessions, usage, users
    from .extensions import db, migrate

    database.init_app(app)
    keycache.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    ratelimits.init_app(app)
    sessions.init_app(app)
    users.init_app(app)
    purge.init_app(app)
    usage.init_app(app)
    metrics.init_app(app)
    logs.init_app(app)


def register_blueprints(app: OpenAPI) -> None:
    """Attach every API blueprint and the web pages."""
    from .api import register
    from .web import web

    register(app)
    app.register_blueprint(web)
