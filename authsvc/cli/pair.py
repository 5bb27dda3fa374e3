"""The app's side of pairing, over HTTP through ``authsvc.client`` (no database)."""

import os
from typing import Any

import click

from .. import address


class Unreachable(click.ClickException):
    """The server did not answer: exit code 3, so scripts can tell it from a refusal (1)."""

    exit_code = 3


def server_url() -> str | None:
    """``$AUTHSVC_URL``, else the address the running server recorded in the instance folder."""
    recorded = address.running(address.default_instance_path())
    return os.environ.get("AUTHSVC_URL") or (recorded.url if recorded else None)


@click.command()
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
    # Imported here, so that the server's processes never load requests.
    import requests

    from .. import client

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
