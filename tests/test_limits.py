"""Limits hold as written against ``authsvc serve --workers 2`` with its defaults (no Redis):
one count for the instance, taken before the work, so parallel requests never overshoot.
And with Redis, through an outage: counting goes on in the instance's own store."""

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests import services
from tests.conftest import bearer
from tests.test_keycache import ADMIN, MULTI_USER
from tests.test_server import (
    all_at_once,
    free_port,
    host_headers,
    owner_token,
    run_server,
    serve_command,
)

PARALLEL = 24
RATE_HEADERS = {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
RECOVERY_TRIES = 300  # × 0.1 s and a request: the fallback tries Redis again every 2 s


@pytest.fixture
def serve(make_app: Any, database_url: str, tmp_path: Path) -> Iterator[Any]:
    """Start ``authsvc serve --workers 2`` with extra settings; ``make_app`` empties the
    tables afterwards."""
    make_app()
    with ExitStack() as servers:

        def start(**env: str) -> str:
            return servers.enter_context(run_server(database_url, tmp_path, serve_command, **env))

        yield start


def statuses(responses: list[requests.Response]) -> list[int]:
    return sorted(response.status_code for response in responses)


def assert_limited(response: requests.Response, limit: int) -> None:
    """A 429 in the error shape with its headers."""
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "rate_limit_exceeded"
    assert all(name in response.headers for name in RATE_HEADERS), response.headers
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["Retry-After"]) >= 1


def make_key(base: str, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    created = requests.post(
        f"{base}/v1/api-keys", headers=headers, json={"name": "limited", **fields}, timeout=30
    )
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def parallel_get(base: str, secrets: list[str], count: int = PARALLEL) -> list[requests.Response]:
    """``count`` requests at once, spread over ``secrets``."""
    return all_at_once(
        count,
        lambda i: requests.get(
            f"{base}/v1/auth", headers=bearer(secrets[i % len(secrets)]), timeout=60
        ),
    )


def test_a_key_limited_to_k_requests_gets_exactly_k(serve):
    base = serve()
    key = make_key(base, host_headers(base), rate_limit={"requests": 5, "per_seconds": 3600})
    answers = parallel_get(base, [key["api_key"]])
    assert statuses(answers) == [200] * 5 + [429] * (PARALLEL - 5)
    refused = next(r for r in answers if r.status_code == 429)
    assert_limited(refused, 5)
    assert refused.json()["message"] == "rate limit exceeded for this api key"


def log_in(base: str, password: str) -> requests.Response:
    """The admin's login: its password hash takes a while to check, all the while in flight."""
    body = {"username": ADMIN["username"], "password": password}
    return requests.post(f"{base}/v1/session", json=body, timeout=60)


@pytest.mark.parametrize("single_user", [True, False])
def test_parallel_wrong_passwords_get_at_most_the_limits_worth_of_401s(serve, single_user):
    if single_user:
        base = serve(AUTHSVC_LOGIN_RATE_LIMIT="10 per minute")
        right_password = owner_token()
    else:
        base = serve(AUTHSVC_LOGIN_RATE_LIMIT="10 per minute", **MULTI_USER)
        right_password = ADMIN["password"]
    answers = all_at_once(30, lambda i: log_in(base, f"wrong-{i}"))
    assert statuses(answers) == [401] * 10 + [429] * 20
    assert_limited(next(r for r in answers if r.status_code == 429), 10)
    assert_limited(log_in(base, right_password), 10)  # refused too while the limit holds


def test_right_passwords_give_their_reservation_back(serve):
    base = serve(AUTHSVC_LOGIN_RATE_LIMIT="3 per minute", **MULTI_USER)
    logins = all_at_once(12, lambda _: log_in(base, ADMIN["password"]))
    # Parallel logins hold a reservation each while the password is checked: some may be
    # refused, but every one that was not got in, and none stays counted afterwards.
    assert set(statuses(logins)) <= {200, 429} and 200 in statuses(logins)
    wrong = [log_in(base, "wrong").status_code for _ in range(4)]
    assert wrong == [401, 401, 401, 429]


def test_the_challenge_rate_limit_holds_exactly(serve):
    base = serve(AUTHSVC_CHALLENGE_RATE_LIMIT="5 per minute", AUTHSVC_MAX_PENDING_PER_CLIENT="100")
    answers = all_at_once(
        PARALLEL,
        lambda i: requests.post(
            f"{base}/v1/auth/challenges", json={"app_name": f"A{i}"}, timeout=60
        ),
    )
    assert statuses(answers) == [201] * 5 + [429] * (PARALLEL - 5)
    assert_limited(next(r for r in answers if r.status_code == 429), 5)
    # Refused requests count too: a malformed one is still refused by the limit.
    assert requests.post(f"{base}/v1/auth/challenges", json={}, timeout=30).status_code == 429


@pytest.mark.parametrize(
    ("caps", "cap", "whom"),
    [
        ({"AUTHSVC_MAX_PENDING_PER_CLIENT": "7"}, 7, "this client"),
        ({"AUTHSVC_MAX_PENDING_TOTAL": "6"}, 6, "the host"),
    ],
)
def test_pending_caps_hold_exactly(serve, caps, cap, whom):
    base = serve(AUTHSVC_CHALLENGE_RATE_LIMIT="1000 per minute", **caps)
    answers = all_at_once(
        PARALLEL,
        lambda i: requests.post(
            f"{base}/v1/auth/challenges", json={"app_name": f"A{i}"}, timeout=60
        ),
    )
    assert statuses(answers) == [201] * cap + [429] * (PARALLEL - cap)
    refused = next(r for r in answers if r.status_code == 429)
    assert_limited(refused, cap)
    assert refused.json()["message"] == f"too many pending challenges for {whom}"


def test_keys_made_by_a_limited_key_count_against_its_limit(serve):
    base = serve()
    parent = make_key(
        base,
        host_headers(base),
        scopes=["api", "manage"],
        rate_limit={"requests": 8, "per_seconds": 3600},
    )
    # Each creation is a request of the parent's: 3 of its 8.
    children = [make_key(base, bearer(parent["api_key"]), name=f"child {i}") for i in range(3)]
    # A child without a limit of its own still counts against its creator's.
    unlimited = make_key(base, host_headers(base))["api_key"]
    assert all(child["rate_limit"] == parent["rate_limit"] for child in children)
    answers = parallel_get(base, [child["api_key"] for child in children])
    assert statuses(answers) == [200] * 5 + [429] * (PARALLEL - 5)
    refused = [r.json()["message"] for r in answers if r.status_code == 429]
    assert "rate limit exceeded for the api key that created this one" in refused
    itself = requests.get(f"{base}/v1/auth", headers=bearer(parent["api_key"]), timeout=30)
    assert_limited(itself, 8)
    # Keys made by a session belong to nobody's limit.
    assert requests.get(f"{base}/v1/auth", headers=bearer(unlimited), timeout=30).ok


def test_every_creator_up_the_chain_counts_and_rotation_is_no_way_out(app, client):
    """In one process: a key's creator, its creator's creator, and a rotated successor."""
    limit = {"requests": 6, "per_seconds": 3600}

    def create(headers: dict[str, str] | None, **fields: Any) -> dict[str, Any]:
        answer = client.post(
            "/v1/api-keys",
            headers=headers,
            json={"name": "k", "scopes": ["api", "manage"], **fields},
        )
        assert answer.status_code == 201, answer.json
        return answer.json  # type: ignore[no-any-return]

    parent = create(None, rate_limit=limit)
    child = create(bearer(parent["api_key"]))  # the parent's first request of 6
    grandchild = create(bearer(child["api_key"]))  # 2
    assert grandchild["rate_limit"] == limit  # inherited, in a bucket of its own
    rotated = client.post(f"/v1/api-keys/{child['id']}/rotate", headers=bearer(child["api_key"]))
    assert rotated.status_code == 201  # 3
    successor = rotated.json["api_key"]
    users = [grandchild["api_key"], successor, grandchild["api_key"]]  # 4, 5, 6
    assert [client.get("/v1/auth", headers=bearer(s)).status_code for s in users] == [200] * 3
    for secret in (grandchild["api_key"], successor):
        refused = client.get("/v1/auth", headers=bearer(secret))
        assert (refused.status_code, refused.json["message"]) == (
            429,
            "rate limit exceeded for the api key that created this one",
        )
    refused = client.get("/v1/auth", headers=bearer(parent["api_key"]))
    assert (refused.status_code, refused.json["message"]) == (
        429,
        "rate limit exceeded for this api key",
    )
    # Keys the host makes with its session count against nobody else's limit.
    assert client.get("/v1/auth", headers=bearer(create(None)["api_key"])).status_code == 200


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A Redis of the test's own on one free port, which the test may stop and start again."""
    port = free_port()
    running = ExitStack()

    def start() -> str:
        return running.enter_context(services.redis_server(tmp_path, port))

    start.stop = running.close  # type: ignore[attr-defined]
    with running:
        yield start


def create_challenges(base: str, count: int) -> list[int]:
    return [
        requests.post(f"{base}/v1/auth/challenges", json={"app_name": "A"}, timeout=30).status_code
        for _ in range(count)
    ]


def test_limits_keep_holding_through_a_redis_outage(serve, redis_server, tmp_path):
    store = redis_server()
    base = serve(
        AUTHSVC_RATELIMIT_STORAGE_URI=store,
        AUTHSVC_CHALLENGE_RATE_LIMIT="4 per minute",
        AUTHSVC_MAX_PENDING_PER_CLIENT="100",
    )
    key = make_key(base, host_headers(base), rate_limit={"requests": 3, "per_seconds": 3600})
    assert create_challenges(base, 1) == [201]
    assert redis.Redis.from_url(store).keys("LIMITS*")  # counted in Redis while it is up

    redis_server.stop()
    # The owner still logs in; pairing and keys keep working, with their limits, in one
    # count for the instance's workers.
    assert requests.post(f"{base}/v1/session", json={"password": owner_token()}, timeout=30).ok
    assert create_challenges(base, 5) == [201] * 4 + [429]
    answers = parallel_get(base, [key["api_key"]], count=8)
    assert statuses(answers) == [200] * 3 + [429] * 5
    wrong = [
        requests.post(f"{base}/v1/session", json={"password": "wrong"}, timeout=30).status_code
        for _ in range(11)
    ]
    assert wrong == [401] * 10 + [429]

    redis_server()  # back, empty: the next count lands there again, without a restart
    (log,) = tmp_path.glob("server-*.log")
    # Until the worker that lost Redis takes a count again (the other may take them all a while).
    for _ in range(RECOVERY_TRIES):
        create_challenges(base, 1)
        if "is back: counting there again" in log.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail("limits never counted in Redis again")
    assert redis.Redis.from_url(store).keys("LIMITS*")

    output = log.read_text()
    assert "Traceback" not in output, output
    lost = output.count(f"rate-limit store {store} unreachable")
    assert 1 <= lost <= 2, output  # once per worker, not once per request
    assert "is back: counting there again" in output, output


def test_serve_warns_when_told_to_count_in_each_worker(serve, tmp_path):
    base = serve(AUTHSVC_RATELIMIT_STORAGE_URI="memory://")
    assert requests.get(f"{base}/health", timeout=30).ok
    (log,) = tmp_path.glob("server-*.log")
    assert "with memory:// rate limits are counted in each of the 2 workers" in log.read_text()
