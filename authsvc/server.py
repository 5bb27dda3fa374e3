"""gunicorn, configured for the job: ``authsvc serve`` and ``gunicorn.conf.py`` share this."""

import errno
import gc
import os
import socket
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from . import address, logs, metrics
from .extensions import db

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 31009
# The request line without its query string: legacy pairing sends the code in the query.
ACCESS_LOG_FORMAT = '%(h)s - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
THREADS = 4
MAX_DEFAULT_WORKERS = 4
UNIX_SOCKET_UMASK = 0o117  # a socket is made 0777 less the umask: 0660
WORKER_CLASS = "authsvc.worker.ThreadWorker"
CONTROL_SOCKET = "gunicorn.ctl"


def default_workers(cores: int | None = None) -> int:
    """One worker process per core (``cores``, default this machine's), at most four.

    A worker is one process with its own memory (about 45 MiB, not shared with the others)
    and its own key cache, and uses at most about one core (Python's lock). Past four, more
    workers add little: SQLite takes one write at a time whatever the number of processes,
    and on PostgreSQL each worker holds up to 19 connections, so four fit the default
    ``max_connections`` of 100. Choose ``--workers`` for a bigger PostgreSQL host.
    """
    return max(1, min(cores or os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def settings(
    workers: int | None = None, access_log: bool = False, json_logs: bool | None = None
) -> dict[str, Any]:
    """gunicorn settings: threaded workers (a slow client or database holds a thread, not a
    process) that answer gunicorn's own refusals in the JSON shape, and no access log unless
    asked for (a line per request costs a write on the hot path); when on, it never holds a
    query string. With ``AUTHSVC_LOG_FORMAT=json`` gunicorn's own lines are JSON too, and the
    app writes the request lines itself."""
    if json_logs is None:
        json_logs = logs.is_json(os.environ)
    return {
        "workers": workers or default_workers(),
        "worker_class": WORKER_CLASS,
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


def serve(
    app: Flask,
    host: str,
    port: int,
    workers: int | None,
    access_log: bool,
    unix_socket: str | None = None,
) -> None:
    """Run ``app`` under gunicorn; workers drop the connections they inherit from the master.

    The master freezes its objects before each fork (``gc.freeze``): the workers' collector then
    never writes to them, so the pages of the code and data the master loaded stay shared.

    ``unix_socket`` adds a Unix socket beside the TCP port, for a proxy on this machine.
    """
    options = {
        "bind": f"{host}:{port}",
        **settings(workers, access_log, logs.is_json(app.config)),
        "on_starting": lambda _arbiter: metrics.prepare_directory(app),
        "pre_fork": lambda _server, _worker: gc.freeze(),
        "post_fork": lambda _server, _worker: forget_inherited_connections(app),
        # Its own control socket, not every server's ~/.gunicorn/gunicorn.ctl.
        "control_socket": os.path.join(app.instance_path, CONTROL_SOCKET),
        "when_ready": lambda arbiter: ready(app, host, port, arbiter.pid, unix_socket),
        "on_exit": lambda arbiter: address.forget(app.instance_path, arbiter.pid),
    }
    if unix_socket is not None:
        # Mode 0660 from the moment it exists: only its owner and group (the proxy) connect.
        options.update(bind=[options["bind"], f"unix:{unix_socket}"], umask=UNIX_SOCKET_UMASK)
    Server(app, options).run()


def ready(app: Flask, host: str, port: int, pid: int, unix_socket: str | None) -> None:
    """Once listening: record where (for ``authsvc open``); give the socket its folder's group."""
    address.record(app.instance_path, host, port, pid)
    if unix_socket is not None:
        give_folder_group(unix_socket)


def give_folder_group(path: str) -> None:
    """Give the socket its folder's group, which gunicorn replaced by the process's own."""
    os.chown(path, -1, os.stat(os.path.dirname(os.path.abspath(path))).st_gid)


def forget_inherited_connections(app: Flask) -> None:
    """In a fresh worker: drop pooled connections copied from the master, without closing them."""
    with app.app_context():
        db.engine.dispose(close=False)


def port_is_free(host: str, port: int) -> bool:
    """Whether the address can be bound now, as gunicorn binds it (``SO_REUSEADDR``, so a closed
    server's lingering connections do not count); OSError for an address that cannot be used."""
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True
