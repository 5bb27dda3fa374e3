"""The key cache never answers from the past: every change counts on the very next request.

Against 2 gunicorn workers (each with its own cache), on SQLite and PostgreSQL; each change is
made through the API and then checked with fresh connections, which both workers answer.
"""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from authsvc import tokens
from tests.conftest import bearer
from tests.test_server import run_server

ADMIN = {"username": "admin", "password": "admin-password-1234"}
PREFIX = "sk-"
ROUNDS = 24  # fresh connections per check, spread over both workers
STREAM_POLLS = 6000  # × 10 ms: a minute for 40 answers, far beyond what a live stream needs
MULTI_USER = {
    "AUTHSVC_MULTI_USER": "true",
    "AUTHSVC_ADMIN_USERNAME": ADMIN["username"],
    "AUTHSVC_ADMIN_PASSWORD": ADMIN["password"],
}


@pytest.fixture
def multi_user_server(make_app: Any, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A multi-user server with an admin; ``make_app`` empties the tables afterwards."""
    make_app()
    with run_server(database_url, tmp_path, **MULTI_USER) as base:
        yield base


def login(base: str, username: str, password: str) -> dict[str, str]:
    response = requests.post(
        f"{base}/v1/session", json={"username": username, "password": password}, timeout=30
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


def call(method: str, url: str, headers: dict[str, str], **body: Any) -> requests.Response:
    response = requests.request(method, url, headers=headers, json=body or None, timeout=30)
    assert response.status_code < 300, response.text
    return response


def assert_every_answer(
    url: str, headers: dict[str, str], status: int, message: str | None = None
) -> None:
    """``ROUNDS`` requests on fresh connections all answer ``status`` (and ``message``)."""
    for _ in range(ROUNDS):
        response = requests.get(url, headers=headers, timeout=30)
        assert response.status_code == status, response.text
        if message is not None:
            assert response.json()["message"] == message


def test_every_change_takes_effect_on_the_next_request_in_every_worker(multi_user_server):
    base = multi_user_server
    admin = login(base, **ADMIN)
    user = call("POST", f"{base}/v1/admin/users", admin, username="alice", password="alice-pw-1234")
    user_id = user.json()["id"]
    alice = login(base, "alice", "alice-pw-1234")
    created = call("POST", f"{base}/v1/api-keys", alice, name="cached")
    key_url = f"{base}/v1/api-keys/{created.json()['id']}"
    key = bearer(created.json()["api_key"])
    whoami = f"{base}/v1/auth"
    assert_every_answer(whoami, key, 200)  # every worker has the key cached now

    call("PATCH", key_url, alice, enabled=False)
    assert_every_answer(whoami, key, 401, "api key disabled")
    call("PATCH", key_url, alice, enabled=True)
    assert_every_answer(whoami, key, 200)

    call("PATCH", key_url, alice, allowed_endpoints=["GET /v1/spaces"])
    assert_every_answer(whoami, key, 403, "endpoint not allowed for this api key")
    call("PATCH", key_url, alice, allowed_endpoints=None)
    assert_every_answer(whoami, key, 200)

    call(
        "PATCH",
        f"{base}/v1/settings",
        admin,
        api_key_endpoint_restrictions_enabled=True,
        api_key_allowed_endpoints=["/v1/spaces"],
    )
    assert_every_answer(whoami, key, 403, "endpoint not allowed for api keys on this instance")
    call("PATCH", f"{base}/v1/settings", admin, api_key_endpoint_restrictions_enabled=False)
    assert_every_answer(whoami, key, 200)

    # Permissions: the defaults, then a group that grants, then leaving that group.
    lacks = "the key's owner lacks the api_keys permission"
    call("PATCH", f"{base}/v1/settings", admin, default_permissions={"api_keys": False})
    assert_every_answer(whoami, key, 403, lacks)
    group = call(
        "POST", f"{base}/v1/admin/groups", admin, name="keyholders", permissions={"api_keys": True}
    )
    members = f"{base}/v1/admin/groups/{group.json()['id']}/members"
    call("POST", members, admin, user_id=user_id)
    assert_every_answer(whoami, key, 200)
    call("DELETE", f"{members}/{user_id}", admin)
    assert_every_answer(whoami, key, 403, lacks)
    call("PATCH", f"{base}/v1/settings", admin, default_permissions={"api_keys": True})
    assert_every_answer(whoami, key, 200)

    # Organization membership decides what a path inside an organization may reach.
    made = call("POST", f"{base}/v1/admin/organizations", admin, name="Team", description="")
    organization = made.json()["id"]
    org_members = f"{base}/v1/admin/organizations/{organization}/members"
    forward = {**key, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": f"/v1/spaces/{organization}"}
    assert_every_answer(
        f"{base}/v1/auth/forward", forward, 403, "api key is scoped to another organization"
    )
    call("POST", org_members, admin, user_id=user_id)
    assert_every_answer(f"{base}/v1/auth/forward", forward, 200)
    call("DELETE", f"{org_members}/{user_id}", admin)
    assert_every_answer(
        f"{base}/v1/auth/forward", forward, 403, "api key is scoped to another organization"
    )
    call("POST", org_members, admin, user_id=user_id)
    assert_every_answer(f"{base}/v1/auth/forward", forward, 200)

    user_url = f"{base}/v1/admin/users/{user_id}"
    call("PATCH", user_url, admin, suspended=True)
    assert_every_answer(whoami, key, 401, "invalid api key")
    call("PATCH", user_url, admin, suspended=False)
    assert_every_answer(whoami, key, 200)

    call("DELETE", user_url, admin)
    assert_every_answer(whoami, key, 401, "invalid api key")


def test_last_use_is_recorded_once_a_minute_across_workers(multi_user_server):
    base = multi_user_server
    admin = login(base, **ADMIN)
    created = call("POST", f"{base}/v1/api-keys", admin, name="busy")
    key = bearer(created.json()["api_key"])
    assert_every_answer(f"{base}/v1/auth", key, 200)
    shown = call("GET", f"{base}/v1/api-keys/{created.json()['id']}", admin).json()
    assert shown["last_used_at"] is not None
    # Both workers answered within the minute; the stored use is still the first one.
    first = shown["last_used_at"]
    assert_every_answer(f"{base}/v1/auth", key, 200)
    again = call("GET", f"{base}/v1/api-keys/{created.json()['id']}", admin).json()
    assert again["last_used_at"] == first


@pytest.fixture
def redis_limits(redis_url: str) -> Iterator[str]:
    """The suite's Redis, empty before and after."""
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    yield redis_url
    store.flushdb()


def test_limits_hold_across_workers_with_redis(make_app, database_url, tmp_path, redis_limits):
    make_app()
    with run_server(
        database_url,
        tmp_path,
        AUTHSVC_RATELIMIT_STORAGE_URI=redis_limits,
        AUTHSVC_CHALLENGE_RATE_LIMIT="6 per minute",
        **MULTI_USER,
    ) as base:
        created = [
            requests.post(f"{base}/v1/auth/challenges", json={"app_name": "x"}, timeout=30)
            for _ in range(ROUNDS)
        ]
        assert [r.status_code for r in created].count(201) == 6, [r.text for r in created]
        assert {r.status_code for r in created[6:]} == {429}

        admin = login(base, **ADMIN)
        limited = call(
            "POST",
            f"{base}/v1/api-keys",
            admin,
            name="limited",
            rate_limit={"requests": 5, "per_seconds": 3600},
        )
        key = bearer(limited.json()["api_key"])
        answers = [
            requests.get(f"{base}/v1/auth", headers=key, timeout=30).status_code
            for _ in range(ROUNDS)
        ]
        assert answers == [200] * 5 + [429] * (ROUNDS - 5)


def wait_for(condition: Callable[[], bool], threads: list[threading.Thread]) -> None:
    """Poll ``condition`` while every stream thread lives, a bounded number of times."""
    for _ in range(STREAM_POLLS):
        if condition():
            return
        assert all(thread.is_alive() for thread in threads), "a request stream died"
        time.sleep(0.01)
    pytest.fail("the request streams made no progress")


def test_no_request_started_after_a_revocation_passes(multi_user_server):
    """Requests stream in from 8 threads while the key is revoked: every one that started
    after the revocation's 204 arrived is refused, in whichever worker it lands."""
    base = multi_user_server
    admin = login(base, **ADMIN)
    created = call("POST", f"{base}/v1/api-keys", admin, name="streamed")
    key = bearer(created.json()["api_key"])
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            started = time.monotonic()
            status = requests.get(f"{base}/v1/auth", headers=key, timeout=30).status_code
            answers.append((started, status))

    threads = [threading.Thread(target=stream) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        # Both workers cache it; the streams must stay alive (a dead one fails, never hangs).
        wait_for(lambda: sum(status == 200 for _, status in answers) >= 40, threads)
        call("DELETE", f"{base}/v1/api-keys/{created.json()['id']}", admin)
        revoked_at = time.monotonic()
        wait_for(lambda: sum(started > revoked_at for started, _ in answers) >= 40, threads)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    after = [status for started, status in answers if started > revoked_at]
    assert set(after) == {401}, after


def test_every_worker_knows_a_new_key_at_once_though_its_digest_set_was_built(
    multi_user_server,
):
    """Unknown keys make each worker build its set of digests; a key made afterwards, in
    either worker, is valid at once in both, and refused at once when revoked."""
    base = multi_user_server
    admin = login(base, **ADMIN)
    unknown = bearer(tokens.generate(PREFIX))
    assert_every_answer(f"{base}/v1/auth", unknown, 401, "invalid api key")
    for round_ in range(3):
        created = call("POST", f"{base}/v1/api-keys", admin, name=f"new {round_}")
        key = bearer(created.json()["api_key"])
        assert_every_answer(f"{base}/v1/auth", key, 200)
        call("DELETE", f"{base}/v1/api-keys/{created.json()['id']}", admin)
        assert_every_answer(f"{base}/v1/auth", key, 401, "api key revoked")
    assert_every_answer(f"{base}/v1/auth", unknown, 401, "invalid api key")
