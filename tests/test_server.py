"""Against a real gunicorn: two worker processes with threads, on the test database."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
import requests
from sqlalchemy import func, select

from authsvc.extensions import db
from authsvc.limitstore import SQLiteStorage, instance_uri
from authsvc.models import ApiKey, AuditEvent
from tests.conftest import TEST_SECRET, bearer, wrong_code
from tests.services import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
THREADS = 20
START_ATTEMPTS = 200  # × (up to 0.5 s request timeout + 0.1 s pause)


def server_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of the server and the CLI: the test database, a fixed secret."""
    return {
        **os.environ,
        "AUTHSVC_DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SECRET,
        **extra,
    }


def wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll /health a bounded number of times; fail with the server's log if it never answers."""
    for _ in range(START_ATTEMPTS):
        if process.poll() is not None:
            break
        try:
            if requests.get(f"{base}/health", timeout=0.5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not come up on {base}:\n{log.read_text()}")


def gunicorn_command(port: int) -> list[str]:
    """``gunicorn -w 2 --threads 4 app:app`` on a loopback port."""
    gunicorn = (
        [str(BIN / "gunicorn")]
        if (BIN / "gunicorn").exists()
        else [sys.executable, "-m", "gunicorn"]
    )
    return [*gunicorn, "-w", "2", "--threads", "4", "-b", f"127.0.0.1:{port}", "app:app"]


def spawn(
    command: list[str], database_url: str, output: IO[bytes], **env: str
) -> subprocess.Popen[bytes]:
    """A server process on the test database, writing everything to ``output``."""
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=server_environment(database_url, **env),
        stdout=output,
        stderr=subprocess.STDOUT,
    )


@contextmanager
def run_server(
    database_url: str,
    log_dir: Path,
    command: Callable[[int], list[str]] = gunicorn_command,
    **env: str,
) -> Iterator[str]:
    """Start a server (by default 2 gunicorn workers) on a free loopback port; yield its URL.

    Its output goes to ``log_dir/server-<port>.log``. It starts with no rate-limit counts:
    the tests' servers share one instance folder, and with it the instance's counter store.
    """
    SQLiteStorage(instance_uri(os.environ["AUTHSVC_INSTANCE_PATH"])).reset()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = log_dir / f"server-{port}.log"
    with log.open("wb") as output:
        process = spawn(command(port), database_url, output, **env)
        try:
            wait_until_up(base, process, log)
            yield base
        finally:
            stop(process)


@pytest.fixture
def server(make_app: Any, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A live server on the test database; ``make_app`` empties the tables afterwards."""
    make_app()
    with run_server(database_url, tmp_path) as base:
        yield base


def all_at_once(count: int, call: Callable[[int], requests.Response]) -> list[requests.Response]:
    """Run ``call(i)`` in ``count`` threads released together by a barrier."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = call(index)
        except requests.RequestException as error:  # recorded, so the test reports it
            results[index] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [result for result in results if not isinstance(result, requests.Response)]
    assert not failed, failed
    return results


def create_challenge(base: str, app_name: str = "Server Test") -> str:
    created = requests.post(f"{base}/v1/auth/challenges", json={"app_name": app_name}, timeout=30)
    assert created.status_code == 201, created.text
    return str(created.json()["challenge_id"])


def owner_token() -> str:
    """The owner's password, generated into the tests' instance folder."""
    return (Path(os.environ["AUTHSVC_INSTANCE_PATH"]) / "owner_token").read_text().strip()


def host_headers(base: str) -> dict[str, str]:
    """Log the owner in over HTTP with the owner token from the instance folder."""
    login = requests.post(f"{base}/v1/session", json={"password": owner_token()}, timeout=30)
    assert login.status_code == 200, login.text
    return bearer(login.json()["token"])


def host_code(base: str, challenge_id: str) -> str:
    """The code as the host sees it, logged in as the owner."""
    listing = requests.get(f"{base}/v1/pairing/challenges", headers=host_headers(base), timeout=30)
    assert listing.status_code == 200, listing.text
    return next(c["code"] for c in listing.json()["data"] if c["challenge_id"] == challenge_id)


def pair_live(base: str) -> dict[str, Any]:
    challenge_id = create_challenge(base)
    redeemed = requests.post(
        f"{base}/v1/auth/api_keys",
        json={"challenge_id": challenge_id, "code": host_code(base, challenge_id)},
        timeout=30,
    )
    assert redeemed.status_code == 201, redeemed.text
    return redeemed.json()  # type: ignore[no-any-return]


def test_server_answers_with_version_header(server):
    response = requests.get(f"{server}/health", timeout=30)
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response.headers["Anytype-Version"] == "2025-11-08"


def test_concurrent_redeem_yields_exactly_one_key(server, make_app):
    challenge_id = create_challenge(server)
    code = host_code(server, challenge_id)
    body = {"challenge_id": challenge_id, "code": code}

    responses = all_at_once(
        THREADS, lambda _: requests.post(f"{server}/v1/auth/api_keys", json=body, timeout=60)
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(201) == 1, [r.text for r in responses]
    assert all(status < 500 for status in statuses), [r.text for r in responses]
    losers = [response.json() for response in responses if response.status_code != 201]
    assert all(loser["status"] in {400, 410} for loser in losers), losers
    assert any(loser["message"] == "challenge already used" for loser in losers), losers
    with make_app().app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_revoked_key_fails_at_once_in_every_worker(server, database_url):
    issued = pair_live(server)
    whoami = f"{server}/v1/auth"
    headers = bearer(issued["api_key"])
    for _ in range(10):  # fresh connections, so both workers have served the key
        assert requests.get(whoami, headers=headers, timeout=30).status_code == 200

    revoked = subprocess.run(
        [str(BIN / "authsvc"), "keys", "revoke", issued["key_id"]],
        cwd=ROOT,
        env=server_environment(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr

    for _ in range(40):
        response = requests.get(whoami, headers=headers, timeout=30)
        assert response.status_code == 401, response.text
        assert response.json()["message"] == "api key revoked"
        assert response.headers["Anytype-Version"] == "2025-11-08"


def test_instance_toggle_takes_effect_at_once_in_every_worker(server):
    issued = pair_live(server)
    whoami = f"{server}/v1/auth"
    headers = bearer(issued["api_key"])
    settings_url = f"{server}/v1/settings"
    host = host_headers(server)
    for enabled, status in [(False, 403), (True, 200)]:
        patched = requests.patch(
            settings_url, json={"enable_api_keys": enabled}, headers=host, timeout=30
        )
        assert patched.status_code == 200, patched.text
        for _ in range(40):  # fresh connections, answered by both workers
            response = requests.get(whoami, headers=headers, timeout=30)
            assert response.status_code == status, response.text
        if status == 403:
            assert response.json()["message"] == "api keys are disabled on this instance"
            assert "insufficient_scope" in response.headers["WWW-Authenticate"]


def test_one_key_per_organization_survives_concurrent_creation(server):
    issued = pair_live(server)
    spaces = requests.get(f"{server}/v1/spaces", headers=bearer(issued["api_key"]), timeout=30)
    personal = spaces.json()["data"][0]["id"]
    host = host_headers(server)
    patched = requests.patch(
        f"{server}/v1/settings", json={"one_key_per_organization": True}, headers=host, timeout=30
    )
    assert patched.status_code == 200, patched.text
    responses = all_at_once(
        10,
        lambda i: requests.post(
            f"{server}/v1/api-keys",
            json={"name": f"k{i}", "organization": personal},
            headers=host,
            timeout=60,
        ),
    )
    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    listed = requests.get(f"{server}/v1/api-keys", headers=host, timeout=30).json()["data"]
    active = [k for k in listed if k["organization"] == personal and k["revoked_at"] is None]
    assert len(active) == 1, active


def test_concurrent_challenges_succeed_or_are_limited(server):
    responses = all_at_once(
        THREADS,
        lambda i: requests.post(
            f"{server}/v1/auth/challenges", json={"app_name": f"App {i}"}, timeout=60
        ),
    )

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {201, 429}, [r.text for r in responses]
    assert 201 in statuses
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["code"] == "rate_limit_exceeded"


def test_concurrent_challenges_respect_the_pending_cap(server):
    responses = all_at_once(
        THREADS,
        lambda i: requests.post(
            f"{server}/v1/auth/challenges", json={"app_name": f"App {i}"}, timeout=60
        ),
    )
    assert [r.status_code for r in responses].count(201) <= 10


@pytest.fixture
def budget_server(make_app: Any, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A live server whose one challenge takes 100 wrong codes, with a failure budget of 20."""
    make_app()
    with run_server(
        database_url,
        tmp_path,
        AUTHSVC_PAIRING_FAILURE_BUDGET="20",
        AUTHSVC_CHALLENGE_MAX_ATTEMPTS="100",
    ) as base:
        yield base


def test_concurrent_wrong_codes_never_overdraw_the_budget(budget_server, make_app):
    challenge_id = create_challenge(budget_server)
    code = host_code(budget_server, challenge_id)
    body = {"challenge_id": challenge_id, "code": wrong_code(code)}
    responses = all_at_once(
        40, lambda _: requests.post(f"{budget_server}/v1/auth/api_keys", json=body, timeout=60)
    )
    answers = [(r.status_code, r.json()["message"]) for r in responses]
    compared = answers.count((400, "invalid code"))
    assert compared <= 20, answers
    assert set(answers) <= {(400, "invalid code"), (403, "pairing is disabled")}, answers
    with make_app().app_context():
        failed = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "pairing.failed"))
        assert len(failed.all()) == compared
        locked = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "pairing.locked"))
        assert len(locked.all()) == 1
    # The right code is not compared any more either: pairing stays locked for the host to see.
    right = {"challenge_id": challenge_id, "code": code}
    refused = requests.post(f"{budget_server}/v1/auth/api_keys", json=right, timeout=30)
    assert (refused.status_code, refused.json()["message"]) == (403, "pairing is disabled")


def serve_command(port: int) -> list[str]:
    """``authsvc serve --workers 2 --access-log`` as a person starts it, on a loopback port."""
    return [str(BIN / "authsvc"), "serve", "--workers", "2", "--access-log", "--port", str(port)]


def test_access_log_holds_neither_code_nor_key(make_app, database_url, tmp_path):
    make_app()
    with run_server(database_url, tmp_path, serve_command) as base:
        legacy = requests.post(f"{base}/v1/auth/display_code?app_name=Legacy", timeout=30)
        challenge_id = legacy.json()["challenge_id"]
        code = host_code(base, challenge_id)
        exchanged = requests.post(
            f"{base}/v1/auth/token?challenge_id={challenge_id}&code={code}", timeout=30
        )
        assert exchanged.status_code == 200, exchanged.text
        secret = exchanged.json()["app_key"]
    (log,) = tmp_path.glob("server-*.log")
    text = log.read_text()
    assert '"POST /v1/auth/token HTTP/1.1" 200' in text  # the access log is on, without queries
    assert f"code={code}" not in text and challenge_id not in text and secret not in text
    assert "#token=" in text  # the login link printed at start
