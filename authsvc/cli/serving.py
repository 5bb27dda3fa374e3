"""Serving: ``authsvc serve`` and the link that opens its pages (``authsvc open``)."""

import time
from typing import Any

import click
from flask import Flask

from .. import address, ratelimits, server, sessions, users
from ..extensions import db
from ..server import DEFAULT_HOST, DEFAULT_PORT
from .database import close_database, prepare_database

ORPHAN_WAIT = 10.0  # seconds to wait for the workers of a killed server to let go of its port


def login_link(app: Flask, host: str, port: int) -> str:
    """The web pages' login link; in single-user mode without ``AUTH_TOKEN`` it logs the owner in.

    The owner token rides in the URL fragment, which browsers never send to a server.
    """
    link = f"http://{address.reachable_host(host)}:{port}/ui/login"
    if app.config["AUTH_TOKEN"] or users.is_multi_user():
        return link
    return f"{link}#token={sessions.owner_password(app)}"


def address_options(command: Any) -> Any:
    """``--host`` and ``--port``, shared by the commands that name the server's address."""
    command = click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)(command)
    return click.option("--host", default=DEFAULT_HOST, show_default=True)(command)


@click.command()
@address_options
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes [default: one per core, at most 4].",
)
@click.option("--access-log", is_flag=True, help="Log every request (never its query string).")
@click.option(
    "--unix-socket",
    type=click.Path(dir_okay=False),
    help="Also listen on this Unix socket (mode 0660), for a proxy on this machine.",
)
@click.pass_obj
def serve(
    app: Flask, host: str, port: int, workers: int | None, access_log: bool, unix_socket: str | None
) -> None:
    """Apply migrations, then serve the API."""
    wait_for_port(app, host, port)
    prepare_database()
    users.bootstrap()
    click.echo(f"authsvc listening on http://{host}:{port} (database: {db.engine.url!r})")
    click.echo(f"open the host's pages (this link logs you in): {login_link(app, host, port)}")
    count = workers or server.default_workers()
    if count > 1 and ratelimits.counts_per_process(app):
        click.echo(
            f"note: with memory:// rate limits are counted in each of the {count} workers on "
            "its own; unset AUTHSVC_RATELIMIT_STORAGE_URI to count them once for the instance",
            err=True,
        )
    # Workers must not inherit the master's connections: two processes on one socket corrupt
    # each other's conversations, and an open transaction would hold its locks for good.
    close_database()
    if unix_socket is not None:
        click.echo(f"and on unix:{unix_socket} (mode 0660: its owner and group)")
    server.serve(app, host, port, workers, access_log, unix_socket)


def wait_for_port(app: Flask, host: str, port: int) -> None:
    """Return once ``host:port`` can be bound; otherwise say at once, in one line, who holds it.

    The workers of a server whose master was killed let go of its port within a second or two:
    when the instance folder records such a server on this port, wait for them a little.
    """
    recorded = address.read(app.instance_path)
    if recorded is not None and recorded.port != port:
        recorded = None
    try:
        free = server.port_is_free(host, port)
        if not free and recorded is not None and not recorded.is_running():
            click.echo(
                f"waiting for the workers of a stopped authsvc (pid {recorded.pid}) to let go "
                f"of port {port}…",
                err=True,
            )
            deadline = time.monotonic() + ORPHAN_WAIT
            while not free and time.monotonic() < deadline:
                time.sleep(0.1)
                free = server.port_is_free(host, port)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from error
    if free:
        return
    if recorded is not None and recorded.is_running():
        holder = f"authsvc (pid {recorded.pid}, this instance's server) already listens on"
    else:
        holder = "another program already listens on"
    raise click.ClickException(
        f"{holder} {host}:{port}: `authsvc open` prints the link to a running authsvc; "
        "to start another server, choose a free port with --port"
    )


@click.command(name="open")
@click.option("--host", help="The server's host [default: where `authsvc serve` listens].")
@click.option("--port", type=int, help="The server's port [default: where it listens].")
@click.pass_obj
def open_link(app: Flask, host: str | None, port: int | None) -> None:
    """Print the link that opens the host's web pages (and logs the owner in).

    The address is the one the running ``authsvc serve`` recorded in the instance folder.
    """
    recorded = address.running(app.instance_path)
    if recorded is None and port is None:
        click.echo(
            f"note: no running server is recorded in {app.instance_path}; "
            f"the link assumes the default port {DEFAULT_PORT}",
            err=True,
        )
    host = host or (recorded.host if recorded else DEFAULT_HOST)
    port = port or (recorded.port if recorded else DEFAULT_PORT)
    click.echo(login_link(app, host, port))
