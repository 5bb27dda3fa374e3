"""The ``authsvc`` command: serve, keys and pairing on the server's own database, and the
app's side of pairing. One module per concern; this one holds the group and its set-up."""

import sys

import click

from .. import create_app, drivers
from . import accounts, instance, keys, pair, pairing, serving
from .database import close_database, prepare_database

# Commands that run as an app, through authsvc.client.
CLIENT_COMMANDS = {"pair"}


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """authsvc: pair apps with this host and manage their API keys."""
    if ctx.invoked_subcommand in CLIENT_COMMANDS:
        return  # an app's side: it talks to a server over HTTP, never to the database
    try:
        app = create_app()
    except drivers.MissingDriver as error:
        raise click.ClickException(str(error)) from error
    ctx.obj = app
    ctx.with_resource(app.app_context())
    # Runs first (last registered), inside the app context: close pooled connections.
    ctx.call_on_close(close_database)
    asks_for_help = set(sys.argv[1:]) & set(ctx.help_option_names)  # needs no database
    if ctx.invoked_subcommand != "serve" and not asks_for_help:  # serve checks its port first
        prepare_database()


for command in (
    serving.serve,
    serving.open_link,
    accounts.owner_token,
    accounts.users_group,
    keys.keys_group,
    pairing.pairing_group,
    instance.audit_group,
    instance.status,
    instance.purge_command,
    pair.pair,
):
    main.add_command(command)
