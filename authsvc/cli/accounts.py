"""Accounts: the owner's password and the users of a multi-user instance."""

from typing import Any

import click
from flask import Flask
from sqlalchemy import select

from .. import sessions, users
from ..errors import ApiError
from ..extensions import db
from ..models import User
from .output import echo_rows, json_option


@click.command(name="owner-token")
@click.pass_obj
def owner_token(app: Flask) -> None:
    """Print the single-user owner's password (the generated owner token)."""
    if users.is_multi_user():
        raise click.ClickException("multi-user mode: log in with your username and password")
    if app.config["AUTH_TOKEN"]:
        raise click.ClickException("AUTH_TOKEN is set: the owner logs in with its value")
    click.echo(sessions.owner_password(app))


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


@click.group(name="users")
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
