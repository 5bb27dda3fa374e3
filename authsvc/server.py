"""gunicorn, configured for the job: ``authsvc serve`` and ``gunicorn.conf.py`` share this."""

import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from . import logs, metrics
from .extensions import db

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 31009
# The request line without its query string: legacy pairing sends the code in the query.
ACCESS_LOG_FORMAT = '%(h)s - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
THREADS = 4


def default_workers() -> int:
    """One worker process per core."""
    return os.cpu_count() or 1


def settings(
    workers: int | None = None, access_log: bool = False, json_logs: bool | None = None
) -> dict[str, Any]:
    """gunicorn settings: threaded workers (a slow client or database holds a thread, not a
    process), and no access log unless asked for (a line per request costs a write on the
    hot path); when on, it never holds a query string. With ``AUTHSVC_LOG_FORMAT=json``
    gunicorn's own lines are JSON too, and the app writes the request lines itself."""
    if json_logs is None:
        json_logs = logs.is_json(os.environ)
    return {
        "workers": workers or default_workers(),
        "worker_class": "gthread",
        "threads": THREADS,
        "accesslog": "-" if access_log and not json_logs else None,
        "access_log_format": ACCESS_LOG_FORMAT,
        **({"logconfig_dict": logs.GUNICORN_CONFIG} if json_logs else {}),
    }


def prepare_metrics(_arbiter: Any = None) -> None:
    """gunicorn's ``on_starting`` for ``gunicorn app:app``: the metrics directory, emptied."""
    from . import create_app

    metrics.prepare_directory(create_app())


class Server(BaseApplication):
    """gunicorn running our app object, configured from the command line."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return self.application


def serve(app: Flask, host: str, port: int, workers: int | None, access_log: bool) -> None:
    """Run ``app`` under gunicorn; workers drop the connections they inherit from the master."""
    options = {
        "bind": f"{host}:{port}",
        **settings(workers, access_log, logs.is_json(app.config)),
        "on_starting": lambda _arbiter: metrics.prepare_directory(app),
        "post_fork": lambda _server, _worker: forget_inherited_connections(app),
    }
    Server(app, options).run()


def forget_inherited_connections(app: Flask) -> None:
    """In a fresh worker: drop pooled connections copied from the master, without closing them."""
    with app.app_context():
        db.engine.dispose(close=False)
