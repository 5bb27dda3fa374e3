"""Keys on the server's own database: list, create, revoke, usage."""

import json

import click
from pydantic import ValidationError
from sqlalchemy import select

from .. import keys, usage, users
from ..api.key_schemas import KeyCreate
from ..errors import ApiError, describe_validation_error
from ..extensions import db
from ..models import ApiKey
from .accounts import find_username
from .output import echo_rows, json_option


@click.group(name="keys")
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
