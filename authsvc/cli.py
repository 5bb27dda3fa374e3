"""The ``authsvc`` command: serve, keys and pairing, on the server's own database."""

import json
import os
import sys
import time
from typing import Any

import click
import requests
from flask import Flask
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from . import (
    address,
    audit,
    client,
    create_app,
    keys,
    pairing,
    purge,
    ratelimits,
    schema,
    server,
    sessions,
    usage,
    users,
)
from .api.key_schemas import KeyCreate
from .clock import iso, utcnow
from .errors import ApiError, describe_validation_error
from .extensions import db
from .models import ApiKey, User
from .server import DEFAULT_HOST, DEFAULT_PORT
from .status import instance_status

WATCH_INTERVAL = 1.0
ORPHAN_WAIT = 10.0  # seconds to wait for the workers of a killed server to let go of its port
# Commands that run as an app, through authsvc.client.
CLIENT_COMMANDS = {"pair"}


def close_database() -> None:
    """Give back the session's connection, then close the pool (one app per command)."""
    db.session.remove()
    db.engine.dispose()


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """authsvc: pair apps with this host and manage their API keys."""
    if ctx.invoked_subcommand in CLIENT_COMMANDS:
        return  # an app's side: it talks to a server over HTTP, never to the database
    app = create_app()
    ctx.obj = app
    ctx.with_resource(app.app_context())
    # Runs first (last registered), inside the app context: close pooled connections.
    ctx.call_on_close(close_database)
    asks_for_help = set(sys.argv[1:]) & set(ctx.help_option_names)  # needs no database
    if ctx.invoked_subcommand != "serve" and not asks_for_help:  # serve checks its port first
        prepare_database()


def prepare_database() -> None:
    """Migrate a fresh or older database; one line, never a traceback, when it cannot be used."""
    try:
        schema.prepare_database()
    except schema.DatabaseNotReady as error:
        raise click.ClickException(str(error)) from error


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


def json_option(command: Any) -> Any:
    """``--json``: print the list as one JSON array instead of lines."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)


def echo_rows(rows: list[dict[str, Any]], as_json: bool, line: Any) -> None:
    """Print rows as a JSON array, or each as the line ``line(row)`` makes of it."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(line(row))


@main.command()
@address_options
@click.option(
    "--workers", type=click.IntRange(min=1), help="Worker processes [default: one per core]."
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


@main.command(name="owner-token")
@click.pass_obj
def owner_token(app: Flask) -> None:
    """Print the single-user owner's password (the generated owner token)."""
    if users.is_multi_user():
        raise click.ClickException("multi-user mode: log in with your username and password")
    if app.config["AUTH_TOKEN"]:
        raise click.ClickException("AUTH_TOKEN is set: the owner logs in with its value")
    click.echo(sessions.owner_password(app))


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


@main.command(name="open")
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


@main.group(name="keys")
def keys_group() -> None:
    """List, create and revoke API keys."""


@keys_group.command(name="list")
@json_option
def keys_list(as_json: bool) -> None:
    """List keys: names and display forms, never secrets."""
    rows = [
        {**keys.key_to_dict(key), "state": "revoked" if keys.is_revoked(key) else "active"}
        for key in db.session.scalars(select(ApiKey).order_by(ApiKey.created_at))
    ]
    echo_rows(rows, as_json, lambda k: f"{k['id']}  {k['display']}  {k['state']:8}  {k['name']}")


@keys_group.command(name="create")
@click.argument("name")
@click.option("--user", "username", help="Owner's username (default: the owner).")
@click.option("--org", "organization_id", help="Scope the key to one organization id.")
@click.option("--expires-in-days", type=click.IntRange(min=1), help="Expire after N days.")
@click.option("--allow", "allowed", multiple=True, help="Allowed endpoint, e.g. 'GET /v1/spaces'.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["api", "manage"]),
    help="What the key may do (default: api).",
)
def keys_create(
    name: str,
    username: str | None,
    organization_id: str | None,
    expires_in_days: int | None,
    allowed: tuple[str, ...],
    scopes: tuple[str, ...],
) -> None:
    """Create a key and print its secret once; checked exactly as the API checks it."""
    users.bootstrap()
    owner = find_username(username) if username else users.get_owner()
    try:
        body = KeyCreate(
            name=name,
            organization=organization_id,
            expires_in_days=expires_in_days,
            allowed_endpoints=list(allowed) or None,
            scopes=list(dict.fromkeys(scopes)) or None,
        )
        key, secret = keys.issue_key(owner, body.fields(), "cli", users.get_owner().id)
    except ValidationError as error:
        raise click.ClickException(describe_validation_error(error)) from error
    except ApiError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"created {key.id} ({key.display}); the secret is shown only now:")
    click.echo(secret)


@keys_group.command(name="revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise click.ClickException(f"no key with id {key_id}")
    keys.revoke(key, actor_id=None)
    click.echo(f"revoked {key_id}")


@keys_group.command(name="usage")
@click.argument("key_id")
@click.option("--granularity", type=click.Choice(list(usage.GRANULARITIES)), default="hour")
@json_option
def keys_usage(key_id: str, granularity: str, as_json: bool) -> None:
    """A key's requests by hour (last 24 h) or day (last 30 days), by outcome."""
    if db.session.get(ApiKey, key_id) is None:
        raise click.ClickException(f"no key with id {key_id}")
    report = usage.report(key_id, granularity, None)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for row in [*report["data"], {"start": "total", **report["total"]}]:
        click.echo("  ".join([f"{row['start']:20}", *(f"{n} {row[n]}" for n in usage.OUTCOMES)]))


@main.group(name="pairing")
def pairing_group() -> None:
    """See the codes of apps waiting to pair."""


def challenge_line(challenge: Any) -> str:
    """One pending challenge; the app's own words are quoted, as untrusted text.

    A device request has no code to read out: the host types the one the app shows.
    """
    code = f"code {challenge.code}" if challenge.kind == "code" else "device (type its code)"
    return (
        f"{code}  app {challenge.app_name!r}  from {challenge.client_ip}"
        f"  agent {challenge.user_agent!r}  origin {challenge.origin!r}"
        f"  challenge {challenge.id}  expires {challenge.expires_at:%H:%M:%S} UTC"
    )


def challenge_row(challenge: Any) -> dict[str, Any]:
    """A pending challenge for ``--json``: what the host list shows."""
    return {
        "challenge_id": challenge.id,
        "kind": challenge.kind,
        "code": challenge.code if challenge.kind == "code" else None,
        "app_name": challenge.app_name,
        "client_ip": challenge.client_ip,
        "user_agent": challenge.user_agent,
        "origin": challenge.origin,
        "created_at": iso(challenge.created_at),
        "expires_at": iso(challenge.expires_at),
    }


@pairing_group.command(name="list")
@json_option
def pairing_list(as_json: bool) -> None:
    """Print the pending challenges and their codes."""
    pending = db.session.scalars(pairing.pending_query(utcnow())).all()
    if as_json:
        echo_rows([challenge_row(challenge) for challenge in pending], True, None)
        return
    if not pending:
        click.echo("no pending challenges")
    for challenge in pending:
        click.echo(challenge_line(challenge))


@pairing_group.command(name="watch")
def pairing_watch() -> None:
    """Print challenges as they arrive, until Ctrl-C."""
    seen: set[str] = set()
    click.echo("waiting for apps to pair (Ctrl-C to stop)…")
    try:
        while True:
            for challenge in db.session.scalars(pairing.pending_query(utcnow())):
                if challenge.id not in seen:
                    seen.add(challenge.id)
                    click.echo(challenge_line(challenge))
            db.session.rollback()  # end the read so the next poll sees new rows
            time.sleep(WATCH_INTERVAL)
    except KeyboardInterrupt:
        pass


def find_username(username: str) -> User:
    """The user with this username, or a command-line error."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"no user named {username!r}")
    return user


def run_as_owner(action: Any, *args: Any) -> Any:
    """Run a users-module action as the owner, turning its API errors into CLI errors."""
    users.bootstrap()
    try:
        return action(users.get_owner(), *args)
    except ApiError as error:
        raise click.ClickException(error.message) from error


@main.group(name="users")
def users_group() -> None:
    """Create, list, change and delete accounts."""


@users_group.command(name="create")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice(list(users.ROLES)), default="user", show_default=True)
def users_create(username: str, password: str, role: str) -> None:
    """Create an account."""
    user = run_as_owner(users.create_user, username, password, role)
    click.echo(f"created {user.id} {user.username} ({user.role})")


@users_group.command(name="list")
@json_option
def users_list(as_json: bool) -> None:
    """List accounts."""
    users.bootstrap()
    rows = [users.user_to_dict(user) for user in db.session.scalars(users.users_query())]
    echo_rows(
        rows,
        as_json,
        lambda u: (
            f"{u['id']}  {u['username']}  {u['role']:8}  "
            + ("suspended" if u["suspended"] else "active")
        ),
    )


@users_group.command(name="set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(list(users.ROLES)))
def users_set_role(username: str, role: str) -> None:
    """Change an account's role."""
    run_as_owner(users.update_user, find_username(username), {"role": role})
    click.echo(f"{username} is now {role}")


@users_group.command(name="suspend")
@click.argument("username")
@click.option("--undo", is_flag=True, help="Lift the suspension instead.")
def users_suspend(username: str, undo: bool) -> None:
    """Suspend an account: its keys and sessions stop at once."""
    run_as_owner(users.update_user, find_username(username), {"suspended": not undo})
    click.echo(f"{username} {'reinstated' if undo else 'suspended'}")


@users_group.command(name="delete")
@click.argument("username")
def users_delete(username: str) -> None:
    """Delete an account with its keys and sessions."""
    run_as_owner(users.delete_user, find_username(username))
    click.echo(f"deleted {username}")


@main.group(name="audit")
def audit_group() -> None:
    """Read the audit log."""


@audit_group.command(name="tail")
@click.option("-n", "count", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
def audit_tail(count: int, as_json: bool) -> None:
    """Print the newest events, newest first."""
    events = db.session.scalars(audit.events_query().limit(count))
    rows = [audit.event_to_dict(event) for event in events]
    echo_rows(
        rows,
        as_json,
        lambda e: (
            f"{e['created_at']}  {e['type']:22}  actor={e['actor_id']}"
            f"  user={e['subject_user_id']}  key={e['key_id']}  ip={e['client_ip']}"
        ),
    )


class Unreachable(click.ClickException):
    """The server did not answer: exit code 3, so scripts can tell it from a refusal (1)."""

    exit_code = 3


def server_url() -> str | None:
    """``$AUTHSVC_URL``, else the address the running server recorded in the instance folder."""
    recorded = address.running(address.default_instance_path())
    return os.environ.get("AUTHSVC_URL") or (recorded.url if recorded else None)


@main.command()
@click.option("--app", "app_name", required=True, help="The name the host will see.")
@click.option(
    "--url",
    help="authsvc's address [default: $AUTHSVC_URL, else where this machine's `authsvc serve` "
    "listens, else http://127.0.0.1:31009].",
)
@click.option(
    "--allow-insecure", is_flag=True, help="Allow plain http:// to a host other than this one."
)
@click.option(
    "--device", is_flag=True, help="Show a code to type on the host's page (OAuth device flow)."
)
def pair(app_name: str, url: str | None, allow_insecure: bool, device: bool) -> None:
    """Pair this app with a host and print its new API key, once.

    A wrong code can be typed again while the challenge has attempts left.
    Exit codes: 0 paired, 1 refused (wrong code, expired, denied, pairing off…), 2 bad usage,
    3 server unreachable.
    """
    try:
        app_client = client.Client(url or server_url(), allow_insecure=allow_insecure)
    except client.InsecureURL as error:
        raise click.UsageError(f"{error}; or pass --allow-insecure") from error
    click.echo(f"Asking {app_client.base_url} to pair {app_name!r}…", err=True)

    def read_code(challenge_id: str) -> str:
        return str(click.prompt("Code shown by the host", prompt_suffix=": ", err=True))

    def wrong_code(attempts_left: int) -> None:
        plural = "attempt" if attempts_left == 1 else "attempts"
        click.echo(f"Wrong code: {attempts_left} {plural} left; type it again.", err=True)

    def show_code(started: dict[str, Any]) -> None:
        click.echo(f"On the host, open {started['verification_uri']}", err=True)
        click.echo(f"and enter the code {started['user_code']}", err=True)
        click.echo(f"(or open {started['verification_uri_complete']})", err=True)
        click.echo("Waiting for the host to approve…", err=True)

    try:
        if device:
            key = app_client.pair_device(app_name, show_code)
        else:
            click.echo("The host will see a 4-digit code for this app.", err=True)
            key = app_client.pair(app_name, read_code, on_wrong_code=wrong_code)
    except client.ConnectionFailed as error:  # an ApiError too: no answer, so exit code 3
        raise Unreachable(f"cannot reach {app_client.base_url}: {error.__cause__}") from error
    except client.ApiError as error:
        raise click.ClickException(error.message) from error
    except requests.RequestException as error:
        raise Unreachable(f"cannot reach {app_client.base_url}: {error}") from error
    click.echo("Paired. Your API key, shown only now:", err=True)
    click.echo(key)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(app: Flask, as_json: bool) -> None:
    """Mode, database, pairing (on, locked) and key counts of this instance."""
    try:
        users.bootstrap()
        current = instance_status()
    except SQLAlchemyError as error:
        raise click.ClickException(f"database unreachable: {error.__class__.__name__}") from error
    recorded = address.running(app.instance_path)
    current["server"] = {"url": recorded.url, "pid": recorded.pid} if recorded else None
    if as_json:
        click.echo(json.dumps(current, indent=2))
        return
    pairing_state = (
        "locked (failure budget spent)"
        if current["pairing_locked"]
        else ("on" if current["pairing_enabled"] else "off")
    )
    counts = current["keys"]
    click.echo(f"mode: {current['mode']}")
    click.echo(f"database: {current['database']}")
    click.echo(
        f"pairing: {pairing_state}, {current['pairing_failures']} of "
        f"{current['pairing_failure_budget']} wrong codes spent"
    )
    click.echo(f"pending challenges: {current['pending_challenges']}")
    click.echo(
        f"keys: {counts['active']} active, {counts['disabled']} disabled, "
        f"{counts['expired']} expired, {counts['revoked']} revoked ({counts['total']} in all)"
    )
    click.echo(
        f"server: {recorded.url} (pid {recorded.pid})"
        if recorded
        else "server: not running (no running `authsvc serve` recorded in the instance folder)"
    )


@main.command(name="purge")
@json_option
def purge_command(as_json: bool) -> None:
    """Delete expired challenges and sessions and audit events past their retention."""
    try:
        counts = purge.purge()
    except SQLAlchemyError as error:
        raise click.ClickException(f"purge failed: {error.__class__.__name__}") from error
    if as_json:
        click.echo(json.dumps(counts, indent=2))
        return
    click.echo("deleted: " + ", ".join(f"{table} {count}" for table, count in counts.items()))
