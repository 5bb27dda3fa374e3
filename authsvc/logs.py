"""``AUTHSVC_LOG_FORMAT=json``: every log line one JSON object, requests included.

A request line holds the method, the path without its query string (legacy pairing sends the
code there), the status, the time taken, the client address and who called (key and user
ids): never a header, a body or a secret.
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

from . import metrics

REQUEST_FIELDS = ("method", "path", "status", "duration_ms", "client_ip", "key_id", "user_id")
access = logging.getLogger("authsvc.access")
# gunicorn's logging in JSON mode: its own lines (workers booting, errors) through our formatter.
GUNICORN_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "authsvc.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
}


class JsonFormatter(logging.Formatter):
    """One object a line: ``time``, ``level``, ``logger``, ``message`` and a request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


FORMATS = ("text", "json")


def is_json(config: Any) -> bool:
    return str(config.get("AUTHSVC_LOG_FORMAT", "text")).strip().lower() == "json"


def log_request(response: Response) -> Response:
    """One line per request, after it is answered."""
    caller = g.get("caller")
    seconds = metrics.request_seconds()
    access.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": None if seconds is None else round(seconds * 1000, 3),
            "client_ip": request.remote_addr,
            "key_id": caller.key.id if caller is not None and caller.key is not None else None,
            "user_id": caller.user.id if caller is not None else None,
        },
    )
    return response


def use_json(stream: Any = None) -> None:
    """Send every logger's lines through one JSON handler (replacing the root's handlers)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    """In JSON mode: JSON lines for every logger, and a line for every request."""
    chosen = str(app.config["AUTHSVC_LOG_FORMAT"]).strip().lower()
    if chosen not in FORMATS:
        raise RuntimeError(f"AUTHSVC_LOG_FORMAT must be text or json, not {chosen!r}")
    if is_json(app.config):
        use_json()
        app.after_request(log_request)
