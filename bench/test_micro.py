"""Micro-benchmarks of the key parser and the key check: ``make bench-micro``.

pytest-benchmark, outside the test suite (``testpaths`` is ``tests/``); timings are printed,
never asserted.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade

from authsvc import auth, create_app, keys, tokens, users
from authsvc.extensions import db

PREFIX = "sk-"
MALFORMED = PREFIX + "A" * tokens.RANDOM_LENGTH + "0" * tokens.CHECKSUM_LENGTH  # bad checksum


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """A migrated app on a temporary SQLite database, limits out of the way."""
    folder: Path = tmp_path_factory.mktemp("micro")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'authsvc.sqlite3'}",
            "AUTHSVC_INSTANCE_PATH": str(folder),
            "JWT_SECRET": "bench-micro-secret-0123456789",
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def secret(app: Flask) -> str:
    """A plain key of the owner's."""
    with app.app_context():
        _, created = keys.create_key(users.get_owner(), "micro", "cli")
        db.session.commit()
    return created


def test_is_well_formed_valid(benchmark: Any) -> None:
    key = tokens.generate(PREFIX)
    assert benchmark(tokens.is_well_formed, key, PREFIX)


def test_is_well_formed_malformed(benchmark: Any) -> None:
    assert not benchmark(tokens.is_well_formed, MALFORMED, PREFIX)


def test_check_key_valid(benchmark: Any, app: Flask, secret: str) -> None:
    headers = {"Authorization": f"Bearer {secret}"}
    with app.test_request_context(
        "/v1/auth", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    ):
        caller = benchmark(auth.check_key, secret, "GET", "/v1/auth", "127.0.0.1")
        assert caller.key is not None
        db.session.remove()
