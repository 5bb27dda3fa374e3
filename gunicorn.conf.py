"""Settings for ``gunicorn app:app``: the same defaults as ``authsvc serve`` (authsvc/server.py).

Command-line flags override them, e.g. ``gunicorn -w 4 --access-logfile - app:app``.
"""

import os

from authsvc.address import default_instance_path
from authsvc.server import CONTROL_SOCKET, DEFAULT_HOST, DEFAULT_PORT, prepare_metrics, settings

bind = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
control_socket = os.path.join(default_instance_path(), CONTROL_SOCKET)
globals().update(settings())
on_starting = prepare_metrics
