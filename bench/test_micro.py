"""Micro-benchmarks of the key parser and the key check: ``make bench-micro``.

pytest-benchmark, outside the test suite (``testpaths`` is ``tests/``); timings are printed,
never asserted. The key check runs in a request context, without HTTP: a valid key, one with a
``rate_limit`` (counted in the instance's own store, as ``authsvc serve`` counts), and a
well-formed key that is in no database.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade

from authsvc import auth, create_app, keys, tokens, users
from authsvc.errors import ApiError
from authsvc.extensions import db

PREFIX = "sk-"
MALFORMED = PREFIX + "A" * tokens.RANDOM_LENGTH + "0" * tokens.CHECKSUM_LENGTH  # bad checksum
HIGH_RATE_LIMIT = {"requests": 1_000_000_000, "per_seconds": 60}  # counted, never reached


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """A migrated app on a temporary SQLite database, rate limits in the instance's store."""
    folder: Path = tmp_path_factory.mktemp("micro")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'authsvc.sqlite3'}",
            "AUTHSVC_INSTANCE_PATH": str(folder),
            "JWT_SECRET": "bench-micro-secret-0123456789",
        }
    )
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


def create_secret(app: Flask, **restrictions: Any) -> str:
    """A new key of the owner's; its secret."""
    with app.app_context():
        _, created = keys.create_key(users.get_owner(), "micro", "cli", **restrictions)
        db.session.commit()
    return created


@pytest.fixture(scope="module")
def secret(app: Flask) -> str:
    """A plain key of the owner's."""
    return create_secret(app)


@pytest.fixture(scope="module")
def limited_secret(app: Flask) -> str:
    """A key whose rate_limit is counted on every check."""
    return create_secret(app, rate_limit=HIGH_RATE_LIMIT)


@contextmanager
def key_request(app: Flask, secret: str) -> Iterator[None]:
    """The request context of ``GET /v1/auth`` with ``secret``."""
    headers = {"Authorization": f"Bearer {secret}"}
    with app.test_request_context(
        "/v1/auth", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    ):
        yield
        db.session.remove()


def refusal(secret: str) -> int:
    """The status ``check_key`` refuses ``secret`` with."""
    try:
        auth.check_key(secret, "GET", "/v1/auth", "127.0.0.1")
    except ApiError as error:
        return error.status
    raise AssertionError("the key was accepted")


def test_is_well_formed_valid(benchmark: Any) -> None:
    key = tokens.generate(PREFIX)
    assert benchmark(tokens.is_well_formed, key, PREFIX)


def test_is_well_formed_malformed(benchmark: Any) -> None:
    assert not benchmark(tokens.is_well_formed, MALFORMED, PREFIX)


def test_check_key_valid(benchmark: Any, app: Flask, secret: str) -> None:
    with key_request(app, secret):
        caller = benchmark(auth.check_key, secret, "GET", "/v1/auth", "127.0.0.1")
        assert caller.key is not None


def test_check_key_rate_limited(benchmark: Any, app: Flask, limited_secret: str) -> None:
    with key_request(app, limited_secret):
        caller = benchmark(auth.check_key, limited_secret, "GET", "/v1/auth", "127.0.0.1")
        assert caller.key is not None and caller.key.rate_limit == HIGH_RATE_LIMIT


def test_check_key_unknown(benchmark: Any, app: Flask) -> None:
    unknown = tokens.generate(PREFIX)  # well-formed, in no database
    with key_request(app, unknown):
        assert benchmark(refusal, unknown) == 401
