"""Settings for ``gunicorn app:app``: the same defaults as ``authsvc serve`` (authsvc/server.py).

Command-line flags override them, e.g. ``gunicorn -w 4 --access-logfile - app:app``.
"""

from authsvc.server import DEFAULT_HOST, DEFAULT_PORT, prepare_metrics, settings

bind = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
globals().update(settings())
on_starting = prepare_metrics
