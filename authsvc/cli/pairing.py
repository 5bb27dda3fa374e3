"""The host's side of pairing on the command line: pending codes, listed or watched."""

import time
from typing import Any

import click

from .. import pairing
from ..clock import iso, utcnow
from ..extensions import db
from .output import echo_rows, json_option

WATCH_INTERVAL = 1.0


@click.group(name="pairing")
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
