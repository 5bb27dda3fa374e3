"""Keys in bulk for the benchmarks: realistic rows (the digests of well-formed secrets) added
with COPY on PostgreSQL and batched INSERTs elsewhere, not one by one through
``keys.create_key`` or the API. A million keys take about 25 s on PostgreSQL."""

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import Flask
from sqlalchemy import Connection, func, insert, select, text

from authsvc import keys, tokens, users
from authsvc.clock import utcnow
from authsvc.extensions import db
from authsvc.models import ApiKey, new_id

from .output import say

if TYPE_CHECKING:
    import psycopg

BATCH = 10_000
COLUMNS = [
    "id",
    "name",
    "digest",
    "display",
    "owner_id",
    "enabled",
    "meta",
    "scopes",
    "created_at",
    "created_via",
]
NO_TIMEOUT = "statement_timeout = 0"  # the app's limit is for requests, not for a million rows
# Random bytes map onto the alphabet; 248 = 4 × 62, the bytes above would favour its start.
ALPHABET_BYTES = bytes(ord(tokens.ALPHABET[byte % len(tokens.ALPHABET)]) for byte in range(256))
SPILL = bytes(range(4 * len(tokens.ALPHABET), 256))


def random_part() -> str:
    """40 random base62 characters (``tokens.generate`` draws them one at a time: slower)."""
    while True:
        drawn = secrets.token_bytes(48).translate(ALPHABET_BYTES, SPILL)
        if len(drawn) >= tokens.RANDOM_LENGTH:
            return drawn[: tokens.RANDOM_LENGTH].decode()


def well_formed(prefix: str) -> str:
    """A random key with a valid checksum, as ``tokens.generate`` makes."""
    body = prefix + random_part()
    return body + tokens.checksum(body)


def write_unknown_keys(prefix: str, count: int, path: Path) -> None:
    """``count`` random well-formed keys, one a line: each one in no database."""
    path.write_text("".join(well_formed(prefix) + "\n" for _ in range(count)))


def rows(count: int, start: int, owner_id: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Plain keys of the owner's, as ``keys.create_key`` would add them (no audit rows)."""
    now = utcnow()
    for index in range(start, start + count):
        secret = well_formed(prefix)
        yield {
            "id": new_id("key"),
            "name": f"bench {index}",
            "digest": tokens.digest(secret),
            "display": tokens.display(secret, prefix),
            "owner_id": owner_id,
            "enabled": True,
            "meta": {},
            "scopes": ["api"],
            "created_at": now,
            "created_via": "cli",
        }


def counted(items: Iterator[dict[str, Any]], total: int) -> Iterator[dict[str, Any]]:
    """``items``, saying how far they have got every 100 000."""
    for done, item in enumerate(items, 1):
        yield item
        if done % 100_000 == 0:
            say(f"  {done:,} / {total:,}")


def batches(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def copy_value(value: Any) -> Any:
    """A value as COPY takes it: JSON columns as their text."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def copy_rows(connection: Connection, items: Iterator[dict[str, Any]]) -> int:
    """PostgreSQL's COPY, several times faster than INSERTs for a million rows, with the
    per-row triggers off (``session_replication_role``): the rows get their ``serial`` here,
    after the ``keys`` counter, which is then moved past them. Returns how many were copied."""
    connection.execute(text("SET LOCAL session_replication_role = replica"))
    first = connection.scalar(text("SELECT value FROM counters WHERE name = 'keys'")) or 0
    columns = [*COLUMNS, "serial"]
    statement = f"COPY api_keys ({', '.join(columns)}) FROM STDIN"
    driver = cast("psycopg.Connection[Any]", connection.connection.driver_connection)
    copied = 0
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for copied, item in enumerate(items, 1):
            copy.write_row([*(copy_value(item[column]) for column in COLUMNS), first + copied])
    connection.execute(
        text("UPDATE counters SET value = :last WHERE name = 'keys'"), {"last": first + copied}
    )
    return copied


def insert_rows(items: Iterator[dict[str, Any]]) -> None:
    """COPY on PostgreSQL; elsewhere INSERT statements, executemany in batches."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text(f"SET LOCAL {NO_TIMEOUT}"))
            copy_rows(connection, items)
        return
    for batch in batches(items, BATCH):
        with db.engine.begin() as connection:
            connection.execute(insert(ApiKey.__table__), batch)


def analyze() -> None:
    """Fresh planner statistics, and on PostgreSQL the vacuum autovacuum would otherwise start
    in the middle of a measurement."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"SET {NO_TIMEOUT}"))  # a connection disposed of next
            connection.execute(text("VACUUM (ANALYZE) api_keys"))
    else:
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE api_keys"))


def seed(app: Flask, count: int) -> float:
    """Add keys in batches until the table holds ``count``; seconds taken."""
    started = time.perf_counter()
    with app.app_context():
        have = db.session.scalar(select(func.count()).select_from(ApiKey)) or 0
        owner_id, prefix = users.get_owner().id, keys.key_prefix()
        db.session.commit()
        missing = max(count - have, 0)
        if missing:
            say(f"seeding {missing:,} keys in bulk ({have:,} already)")
            insert_rows(counted(rows(missing, have, owner_id, prefix), missing))
            analyze()
        db.session.remove()
        db.engine.dispose()
    elapsed = time.perf_counter() - started
    if missing:
        say(f"seeded {missing:,} keys in {elapsed:.1f} s ({missing / elapsed:,.0f} keys/s)")
    return elapsed
