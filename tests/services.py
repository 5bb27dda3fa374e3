"""The outside services the tests use: an emptied PostgreSQL schema and a Redis of their own."""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text

REDIS_START_ATTEMPTS = 100


def reset_schema(database_url: str) -> None:
    """Empty the PostgreSQL database: the migrations build every table afresh."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def free_port() -> int:
    """A port nobody listens on right now, chosen by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[Any]) -> None:
    """Ask a server process to stop; kill it when it does not within 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def redis_binary() -> str | None:
    """Debian's ``redis-server`` (``scripts/test`` installs it when missing)."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


@contextmanager
def redis_server(folder: Path, port: int | None = None) -> Iterator[str]:
    """A Redis of the tests' own on loopback (a free port unless given), keeping nothing on
    disk; its URL. Leaving the context kills it, as an outage would."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed: run ./scripts/test, which installs it")
    port = port or free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, *options, "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(REDIS_START_ATTEMPTS):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {process.returncode}") from None
                time.sleep(0.05)
        else:
            raise RuntimeError(f"redis-server did not answer on port {port}")
        client.close()
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)
