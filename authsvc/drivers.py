"""Optional drivers: PostgreSQL and Redis are installed with the ``postgres`` and ``redis``
extras (``pip install 'authsvc[postgres,redis]'``); SQLite needs none."""

from importlib.util import find_spec

# URL scheme (before any "+driver") → (module, extra, what it is).
EXTRAS = {
    "postgresql": ("psycopg", "postgres", "PostgreSQL"),
    "redis": ("redis", "redis", "Redis"),
    "rediss": ("redis", "redis", "Redis"),
}


class MissingDriver(RuntimeError):
    """A configured URL names a database or store whose driver is not installed."""


def require_driver(url: str) -> None:
    """Say in one sentence which extra to install when ``url`` needs a driver that is missing."""
    scheme = url.partition(":")[0].partition("+")[0].lower()
    if scheme not in EXTRAS:
        return
    module, extra, name = EXTRAS[scheme]
    if find_spec(module) is None:
        raise MissingDriver(
            f"{name} needs its driver, which is not installed: pip install 'authsvc[{extra}]'"
        )
