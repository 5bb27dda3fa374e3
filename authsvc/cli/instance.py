"""The instance as a whole: its status, its purge and its audit log."""

import json

import click
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from .. import address, audit, purge, users
from ..extensions import db
from ..status import instance_status
from .output import echo_rows, json_option


@click.group(name="audit")
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


@click.command()
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


@click.command(name="purge")
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
