"""What the commands print: lines, or one JSON array with ``--json``."""

import json
from typing import Any

import click


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
