"""Commands before any migration: a fresh SQLite file or an empty PostgreSQL database is
migrated; a database that is missing, unreachable or newer gets one line, never a traceback."""

import subprocess
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from authsvc.cli import main
from tests.conftest import POSTGRES_URL
from tests.test_server import BIN, free_port

needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="AUTHSVC_TEST_DATABASE_URL unset")
COMMANDS = [
    ("keys", "list"),
    ("keys", "create", "first"),
    ("pairing", "list"),
    ("users", "list"),
    ("audit", "tail"),
    ("status",),
    ("owner-token",),
    ("open",),
    ("purge",),
]


def run(database_url: str, *args: str) -> Result:
    """An ``authsvc`` command on this database; an uncaught exception fails the test."""
    return CliRunner().invoke(
        main, list(args), env={"AUTHSVC_DATABASE_URL": database_url}, catch_exceptions=False
    )


def postgres_database(name: str) -> str:
    """The URL of a database of this name on the test's PostgreSQL server."""
    assert POSTGRES_URL is not None
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def administer(statement: str) -> None:
    """Run CREATE or DROP DATABASE on the test's server, outside a transaction."""
    engine = create_engine(POSTGRES_URL or "", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def fresh_database(request, tmp_path) -> Iterator[str]:
    """A database no authsvc has touched: a new SQLite file, or a new empty PostgreSQL
    database named after the test's own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"{make_url(POSTGRES_URL or '').database}_empty"
    administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    administer(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_database(name)
    finally:
        administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_a_command_on_a_fresh_database_migrates_it_first(fresh_database, command):
    result = run(fresh_database, *command)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    again = run(fresh_database, "keys", "list")  # migrated once: the next command just runs
    assert again.exit_code == 0, again.output


def test_keys_created_before_any_server_are_kept(fresh_database):
    created = run(fresh_database, "keys", "create", "early")
    assert created.exit_code == 0, created.output
    assert "early" in run(fresh_database, "keys", "list").stdout


def assert_one_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.count("\n") == 1 and result.output.startswith("Error: "), result.output
    return result.output


@needs_postgres
def test_a_missing_postgresql_database_names_createdb():
    name = f"{make_url(POSTGRES_URL or '').database}_missing"
    administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    url = make_url(postgres_database(name))
    for command in [
        ("keys", "list"),
        ("keys", "create", "x"),
        ("serve", "--port", str(free_port())),
    ]:
        said = assert_one_line(run(url.render_as_string(hide_password=False), *command))
        assert f"the PostgreSQL database '{name}' does not exist" in said
        assert f"`createdb -h {url.host} -p {url.port or 5432} -U {url.username} {name}`" in said


def test_an_unreachable_database_gets_one_line(tmp_path):
    for url in [
        "postgresql+psycopg://nobody@127.0.0.1:1/none",
        f"sqlite:///{tmp_path / 'no such folder' / 'authsvc.sqlite3'}",
    ]:
        assert "database unreachable" in assert_one_line(run(url, "pairing", "list"))


def test_a_database_set_up_by_a_newer_version_gets_one_line(fresh_database):
    assert run(fresh_database, "keys", "list").exit_code == 0
    engine = create_engine(fresh_database)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    said = assert_one_line(run(fresh_database, "keys", "list"))
    assert "revision 9999" in said and "upgrade authsvc" in said


def test_help_needs_no_database(tmp_path):
    shown = subprocess.run(
        [str(BIN / "authsvc"), "keys", "create", "--help"],
        env={
            "PATH": "/usr/bin:/bin",
            "AUTHSVC_INSTANCE_PATH": str(tmp_path),
            "AUTHSVC_DATABASE_URL": "postgresql+psycopg://x@127.0.0.1:1/x",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0 and "--expires-in-days" in shown.stdout, shown.stderr


# A Python without the optional driver: a None in sys.modules makes it unimportable and
# unfindable, as if it had never been installed.
WITHOUT = (
    "import sys; sys.modules[{module!r}] = None; from authsvc.cli import main; main(['status'])"
)


@pytest.mark.parametrize(
    ("variable", "url", "module", "extra"),
    [
        (
            "AUTHSVC_DATABASE_URL",
            "postgresql+psycopg://nobody@127.0.0.1:1/none",
            "psycopg",
            "postgres",
        ),
        ("AUTHSVC_RATELIMIT_STORAGE_URI", "redis://127.0.0.1:1/0", "redis", "redis"),
    ],
)
def test_a_missing_driver_names_its_extra(tmp_path, variable, url, module, extra):
    env = {"PATH": str(BIN), "AUTHSVC_INSTANCE_PATH": str(tmp_path), variable: url}
    done = subprocess.run(
        [str(BIN / "python"), "-c", WITHOUT.format(module=module)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"pip install 'authsvc[{extra}]'" in done.stderr, done.stderr
