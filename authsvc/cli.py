"""The ``authsvc`` command: serve, keys and pairing, on the server's own database."""

import time
from typing import Any

import click
from flask import Flask
from flask_migrate import upgrade
from gunicorn.app.base import BaseApplication
from pydantic import ValidationError
from sqlalchemy import select

from . import audit, create_app, keys, pairing, sessions, users
from .api.key_schemas import KeyCreate
from .clock import iso, utcnow
from .errors import ApiError, describe_validation_error
from .extensions import db
from .models import ApiKey, User

WATCH_INTERVAL = 1.0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 31009
# The request line without its query string: legacy pairing sends the code in the query.
ACCESS_LOG_FORMAT = '%(h)s - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'


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


def close_database() -> None:
    """Give back the session's connection, then close the pool (one app per command)."""
    db.session.remove()
    db.engine.dispose()


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """authsvc: pair apps with this host and manage their API keys."""
    app = create_app()
    ctx.obj = app
    ctx.with_resource(app.app_context())
    # Runs first (last registered), inside the app context: close pooled connections.
    ctx.call_on_close(close_database)


def login_link(app: Flask, host: str, port: int) -> str:
    """The web pages' login link; in single-user mode without ``AUTH_TOKEN`` it logs the owner in.

    The owner token rides in the URL fragment, which browsers never send to a server.
    """
    if host in {"0.0.0.0", "::", ""}:  # listening everywhere: this machine is one of them
        host = DEFAULT_HOST
    elif ":" in host:
        host = f"[{host}]"
    link = f"http://{host}:{port}/ui/login"
    if app.config["AUTH_TOKEN"] or users.is_multi_user():
        return link
    return f"{link}#token={sessions.owner_password(app)}"


def address_options(command: Any) -> Any:
    """``--host`` and ``--port``, shared by the commands that name the server's address."""
    command = click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)(command)
    return click.option("--host", default=DEFAULT_HOST, show_default=True)(command)


@main.command()
@address_options
@click.option("--workers", default=1, show_default=True, type=int)
@click.pass_obj
def serve(app: Flask, host: str, port: int, workers: int) -> None:
    """Apply migrations, then serve the API."""
    upgrade()
    users.bootstrap()
    click.echo(f"authsvc listening on http://{host}:{port} (database: {db.engine.url!r})")
    click.echo(f"open the host's pages (this link logs you in): {login_link(app, host, port)}")
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": 4,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
    }
    Server(app, options).run()


@main.command(name="owner-token")
@click.pass_obj
def owner_token(app: Flask) -> None:
    """Print the single-user owner's password (the generated owner token)."""
    if users.is_multi_user():
        raise click.ClickException("multi-user mode: log in with your username and password")
    if app.config["AUTH_TOKEN"]:
        raise click.ClickException("AUTH_TOKEN is set: the owner logs in with its value")
    click.echo(sessions.owner_password(app))


@main.command(name="open")
@address_options
@click.pass_obj
def open_link(app: Flask, host: str, port: int) -> None:
    """Print the link that opens the host's web pages (and logs the owner in)."""
    click.echo(login_link(app, host, port))


@main.group(name="keys")
def keys_group() -> None:
    """List, create and revoke API keys."""


@keys_group.command(name="list")
def keys_list() -> None:
    """List keys: names and display forms, never secrets."""
    for key in db.session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
        state = "revoked" if keys.is_revoked(key) else "active"
        click.echo(f"{key.id}  {key.display}  {state:8}  {key.name}")


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


@main.group(name="pairing")
def pairing_group() -> None:
    """See the codes of apps waiting to pair."""


def challenge_line(challenge: Any) -> str:
    """One pending challenge; the app's own words are quoted, as untrusted text."""
    return (
        f"code {challenge.code}  app {challenge.app_name!r}  from {challenge.client_ip}"
        f"  agent {challenge.user_agent!r}  origin {challenge.origin!r}"
        f"  challenge {challenge.id}  expires {challenge.expires_at:%H:%M:%S} UTC"
    )


@pairing_group.command(name="list")
def pairing_list() -> None:
    """Print the pending challenges and their codes."""
    pending = db.session.scalars(pairing.pending_query(utcnow())).all()
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
def users_list() -> None:
    """List accounts."""
    users.bootstrap()
    for user in db.session.scalars(users.users_query()):
        state = "suspended" if user.suspended else "active"
        click.echo(f"{user.id}  {user.username}  {user.role:8}  {state}")


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
def audit_tail(count: int) -> None:
    """Print the newest events, newest first."""
    for event in db.session.scalars(audit.events_query().limit(count)):
        click.echo(
            f"{iso(event.created_at)}  {event.type:22}  actor={event.actor_id}"
            f"  user={event.subject_user_id}  key={event.key_id}  ip={event.client_ip}"
        )
