"""The ``authsvc`` command: serve, keys and pairing, on the server's own database."""

import time
from typing import Any

import click
from flask import Flask
from flask_migrate import upgrade
from gunicorn.app.base import BaseApplication
from sqlalchemy import select

from . import create_app, keys, pairing, users
from .clock import utcnow
from .extensions import db
from .models import ApiKey

WATCH_INTERVAL = 1.0


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


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """authsvc: pair apps with this host and manage their API keys."""
    app = create_app()
    ctx.obj = app
    ctx.with_resource(app.app_context())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=31009, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.pass_obj
def serve(app: Flask, host: str, port: int, workers: int) -> None:
    """Apply migrations, then serve the API."""
    upgrade()
    users.bootstrap()
    click.echo(f"authsvc listening on http://{host}:{port} (database: {db.engine.url!r})")
    options = {"bind": f"{host}:{port}", "workers": workers, "threads": 4, "accesslog": "-"}
    Server(app, options).run()


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
def keys_create(name: str) -> None:
    """Create a key for the owner and print its secret once."""
    users.bootstrap()
    key, secret = keys.create_key(users.get_owner(), name, "cli")
    db.session.commit()
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
    return (
        f"code {challenge.code}  app {challenge.app_name!r}  from {challenge.client_ip}"
        f"  challenge {challenge.id}  expires {challenge.expires_at:%H:%M:%S} UTC"
    )


@pairing_group.command(name="list")
def pairing_list() -> None:
    """Print the pending challenges and their codes."""
    for challenge in db.session.scalars(pairing.pending_query(utcnow())):
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
