"""The instance's own counter store, and the Redis store that falls back on it."""

import logging
import os
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from freezegun import freeze_time
from limits.storage import MemoryStorage, storage_from_string

from authsvc import ratelimits
from authsvc.limitfallback import RETRY_SECONDS, FallbackStorage
from authsvc.limitstore import SQLiteStorage, instance_uri
from tests.test_limits import redis_server

__all__ = ["redis_server"]  # the fixture, shared
THREADS = 8
HITS = 50


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStorage:
    return SQLiteStorage(instance_uri(str(tmp_path)))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_concurrent_increments_each_get_a_count_of_their_own(store):
    seen: list[int] = []
    barrier = threading.Barrier(THREADS)

    def hit() -> None:
        barrier.wait()
        seen.extend(store.incr("key", 60) for _ in range(HITS))

    threads = [threading.Thread(target=hit) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, THREADS * HITS + 1))
    assert store.get("key") == THREADS * HITS


def test_a_window_starts_again_when_it_ends(store):
    with freeze_time("2030-01-01 12:00:00") as frozen:
        assert [store.incr("key", 60) for _ in range(3)] == [1, 2, 3]
        assert store.get_expiry("key") == pytest.approx(frozen().timestamp() + 60)
        frozen.tick(timedelta(seconds=59))
        assert store.incr("key", 60) == 4
        frozen.tick(timedelta(seconds=1))
        assert store.get("key") == 0
        assert store.incr("key", 60) == 1
        assert store.get_expiry("key") == pytest.approx(frozen().timestamp() + 60)


def test_a_hit_given_back_leaves_the_window_as_it_was(store):
    store.incr("key", 60)
    assert store.incr("key", 60, amount=-1) == 0
    assert store.incr("other", 60, amount=-1) == 0  # never below zero
    store.clear("key")
    assert store.get("key") == 0


def test_the_file_is_private_whatever_the_umask(tmp_path):
    earlier = tmp_path / "limits.sqlite3"
    earlier.touch(mode=0o644)  # as a looser version or umask left it
    previous = os.umask(0o002)
    try:
        SQLiteStorage(instance_uri(str(tmp_path))).incr("key", 60)
    finally:
        os.umask(previous)
    files = sorted(tmp_path.glob("limits.sqlite3*"))
    assert [path.name for path in files] == [
        "limits.sqlite3",
        "limits.sqlite3-shm",
        "limits.sqlite3-wal",
    ]
    assert {mode(path) for path in files} == {0o600}


def test_nothing_is_made_until_something_counts(tmp_path):
    SQLiteStorage(instance_uri(str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "kind"),
    [("", SQLiteStorage), ("memory://", MemoryStorage), ("redis://127.0.0.1:1/0", FallbackStorage)],
)
def test_the_configured_store(make_app, uri, kind):
    app = make_app(RATELIMIT_STORAGE_URI=uri)
    assert isinstance(app.extensions[ratelimits.EXTENSION].storage, kind)
    assert ratelimits.counts_per_process(app) == (kind is MemoryStorage)


def test_logs_name_a_store_without_its_password():
    shown = ratelimits.without_password("redis://user:s3cret@cache.example:6380/2")
    assert shown == "redis://cache.example:6380/2"


def test_an_unreachable_store_hands_counting_over_and_takes_it_back(tmp_path, redis_server, caplog):
    uri = redis_server()
    shared = storage_from_string(uri, **ratelimits.REDIS_TIMEOUTS)
    own = SQLiteStorage(instance_uri(str(tmp_path)))
    store = FallbackStorage(shared, own, uri)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="authsvc.limitfallback")
    with freeze_time("2030-01-01 12:00:00") as frozen:
        assert [store.incr("key", 60) for _ in range(2)] == [1, 2]
        assert (shared.get("key"), own.get("key")) == (2, 0)

        redis_server.stop()
        assert [store.incr("key", 60) for _ in range(20)] == list(range(1, 21))
        assert own.get("key") == 20
        (lost,) = [record.getMessage() for record in caplog.records]
        assert lost.startswith(f"rate-limit store {uri} unreachable (") and "refused" in lost
        frozen.tick(timedelta(seconds=RETRY_SECONDS))
        assert store.incr("key", 60) == 21  # tried again, still down: no second line
        assert len(caplog.records) == 1

        redis_server()  # back, empty
        assert store.incr("key", 60) == 22  # not tried before the interval is over
        frozen.tick(timedelta(seconds=RETRY_SECONDS))
        assert store.incr("key", 60) == 1
        assert redis.Redis.from_url(uri).exists("LIMITS:key")
        assert (
            caplog.records[-1].getMessage()
            == f"rate-limit store {uri} is back: counting there again"
        )
        assert len(caplog.records) == 2


def test_a_store_that_cannot_count_answers_503(make_app, tmp_path):
    taken = tmp_path / "limits.sqlite3"
    taken.mkdir()  # a folder where the file should be: nothing can be counted
    app = make_app(RATELIMIT_STORAGE_URI=instance_uri(str(tmp_path)))
    answer = app.test_client().post("/v1/auth/challenges", json={"app_name": "x"})
    assert (answer.status_code, answer.json["message"]) == (503, "rate-limit store unavailable")
    assert answer.headers["Retry-After"] == "5"
