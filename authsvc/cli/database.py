"""The commands' database: migrated before use, closed after."""

import click

from .. import schema
from ..extensions import db


def close_database() -> None:
    """Give back the session's connection, then close the pool (one app per command)."""
    db.session.remove()
    db.engine.dispose()


def prepare_database() -> None:
    """Migrate a fresh or older database; one line, never a traceback, when it cannot be used."""
    try:
        schema.prepare_database()
    except schema.DatabaseNotReady as error:
        raise click.ClickException(str(error)) from error
