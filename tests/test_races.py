"""Races: rotations and revocations of one key, and wrong codes against the pairing budget."""

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from freezegun import freeze_time
from sqlalchemy import create_engine, func, select, text

from authsvc import counters
from authsvc.extensions import db
from authsvc.models import ApiKey, AuditEvent, Challenge, Counter
from tests import test_server
from tests.conftest import bearer, wrong_code
from tests.keyhelpers import audit_types
from tests.test_server import (
    all_at_once,
    create_challenge,
    host_code,
    host_headers,
    run_server,
    serve_command,
)

server = test_server.server  # the live gunicorn fixture, shared
ROTATIONS = 10
REVOKE_TRIALS = 6
CHANGE_ROUNDS = 100  # of PATCH ∥ rotate ∥ DELETE on one key
WAIT_ATTEMPTS = 300  # × 0.1 s for a request to be seen waiting on a lock
# Takes the key cache's generation counter as every change does (creating it when missing).
BUMP = (
    "INSERT INTO counters (name, value) VALUES ('generation', 1) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1"
)
CHALLENGES = 10  # the pending cap per client, at 5 wrong codes each
BUDGET = 20
CAP = 5  # wrong codes a challenge takes by default
WRONG_AT_ONCE = 40


def create(client, **fields):
    answer = client.post("/v1/api-keys", json={"name": "race", **fields})
    assert answer.status_code == 201, answer.json
    return answer.json


def test_revoke_cuts_a_rotation_grace_short(app, client):
    with freeze_time("2030-01-01 12:00:00") as frozen:
        old = create(client)
        rotated = client.post(f"/v1/api-keys/{old['id']}/rotate", json={"grace_seconds": 300})
        assert rotated.status_code == 201
        frozen.tick(timedelta(seconds=10))
        assert client.delete(f"/v1/api-keys/{old['id']}").status_code == 204
        assert client.get(f"/v1/api-keys/{old['id']}").json["revoked_at"] == "2030-01-01T12:00:10Z"
        gone = client.get("/v1/auth", headers=bearer(old["api_key"]))
        assert (gone.status_code, gone.json["message"]) == (401, "api key revoked")
        assert client.get("/v1/auth", headers=bearer(rotated.json["api_key"])).status_code == 200


def test_revocation_is_never_postponed(app, client):
    """Revoking again, or rotating a revoked key, leaves the first revocation time alone."""
    with freeze_time("2030-01-01 12:00:00") as frozen:
        old = create(client)
        assert client.delete(f"/v1/api-keys/{old['id']}").status_code == 204
        frozen.tick(timedelta(seconds=30))
        assert client.delete(f"/v1/api-keys/{old['id']}").status_code == 204
        refused = client.post(f"/v1/api-keys/{old['id']}/rotate", json={"grace_seconds": 300})
        assert (refused.status_code, refused.json["message"]) == (409, "api key already revoked")
        assert client.get(f"/v1/api-keys/{old['id']}").json["revoked_at"] == "2030-01-01T12:00:00Z"
    assert audit_types(app).count("key.revoked") == 1


def test_a_key_in_its_grace_cannot_be_rotated_again(app, client):
    old = create(client)
    first = client.post(f"/v1/api-keys/{old['id']}/rotate", json={"grace_seconds": 300})
    assert first.status_code == 201
    second = client.post(f"/v1/api-keys/{old['id']}/rotate")
    assert (second.status_code, second.json["message"]) == (409, "api key already revoked")
    assert client.get("/v1/auth", headers=bearer(old["api_key"])).status_code == 200


@pytest.mark.parametrize("change", [{"enabled": True}, {"name": "renamed"}])
def test_a_revoked_key_cannot_be_changed(app, client, change):
    old = create(client, enabled=False)
    assert client.delete(f"/v1/api-keys/{old['id']}").status_code == 204
    refused = client.patch(f"/v1/api-keys/{old['id']}", json=change)
    assert (refused.status_code, refused.json["message"]) == (409, "api key already revoked")
    stored = client.get(f"/v1/api-keys/{old['id']}").json
    assert (stored["enabled"], stored["name"]) == (False, "race")


def test_a_key_in_its_grace_can_still_be_disabled(app, client):
    old = create(client)
    assert client.post(f"/v1/api-keys/{old['id']}/rotate", json={"grace_seconds": 300}).status_code
    disabled = client.patch(f"/v1/api-keys/{old['id']}", json={"enabled": False})
    assert disabled.status_code == 200, disabled.json
    refused = client.get("/v1/auth", headers=bearer(old["api_key"]))
    assert refused.json["message"] == "api key disabled"


def live_key(base: str, headers: dict[str, str]) -> dict[str, str]:
    answer = requests.post(
        f"{base}/v1/api-keys", json={"name": "race"}, headers=headers, timeout=30
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_parallel_rotations_make_exactly_one_key(server, make_app):
    headers = host_headers(server)
    old = live_key(server, headers)
    url = f"{server}/v1/api-keys/{old['id']}/rotate"

    responses = all_at_once(ROTATIONS, lambda _: requests.post(url, headers=headers, timeout=60))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (ROTATIONS - 1), [r.text for r in responses]
    assert {r.json()["message"] for r in responses if r.status_code == 409} == {
        "api key already revoked"
    }
    with make_app().app_context():
        rotated = select(func.count()).where(ApiKey.created_via == "rotation")
        assert db.session.scalar(rotated) == 1


def race_call(index: int, url: str, headers: dict[str, str]) -> requests.Response:
    """Call 0 revokes the key, call 1 rotates it with a grace of five minutes."""
    if index == 0:
        return requests.delete(url, headers=headers, timeout=60)
    return requests.post(f"{url}/rotate", json={"grace_seconds": 300}, headers=headers, timeout=60)


def test_revoke_racing_a_rotation_with_grace_stays_revoked(server):
    headers = host_headers(server)
    for _ in range(REVOKE_TRIALS):
        old = live_key(server, headers)
        url = f"{server}/v1/api-keys/{old['id']}"
        revoked, rotated = all_at_once(2, lambda i, url=url: race_call(i, url, headers))
        assert revoked.status_code == 204, revoked.text
        assert rotated.status_code in {201, 409}, rotated.text
        after = requests.get(f"{server}/v1/auth", headers=bearer(old["api_key"]), timeout=30)
        assert (after.status_code, after.json()["message"]) == (401, "api key revoked")
        if rotated.status_code == 201:
            fresh = bearer(rotated.json()["api_key"])
            assert requests.get(f"{server}/v1/auth", headers=fresh, timeout=30).status_code == 200


def serve_two_workers(port: int) -> list[str]:
    """``authsvc serve --workers 2``, as a person starts it."""
    return [*serve_command(port), "--workers", "2"]


def change_call(index: int, url: str, headers: dict[str, str]) -> requests.Response:
    """Call 0 disables the key, call 1 rotates it, call 2 revokes it."""
    if index == 0:
        return requests.patch(url, json={"enabled": False}, headers=headers, timeout=60)
    if index == 1:
        return requests.post(f"{url}/rotate", headers=headers, timeout=60)
    return requests.delete(url, headers=headers, timeout=60)


def test_changes_racing_on_one_key_all_succeed_or_conflict(make_app, database_url, tmp_path):
    """Disable, rotate and revoke one key at once, ``CHANGE_ROUNDS`` times, under
    ``authsvc serve --workers 2``: each succeeds or answers 409, never a 5xx (a deadlock)."""
    make_app()
    with run_server(database_url, tmp_path, serve_two_workers) as base:
        headers = host_headers(base)
        for _ in range(CHANGE_ROUNDS):
            key = live_key(base, headers)
            url = f"{base}/v1/api-keys/{key['id']}"
            patched, rotated, revoked = all_at_once(
                3, lambda i, url=url: change_call(i, url, headers)
            )
            assert patched.status_code in {200, 409}, patched.text
            assert rotated.status_code in {201, 409}, rotated.text
            assert revoked.status_code == 204, revoked.text
            for refused in (r for r in (patched, rotated) if r.status_code == 409):
                assert refused.json()["message"] == "api key already revoked"
            after = requests.get(f"{base}/v1/auth", headers=bearer(key["api_key"]), timeout=30)
            assert after.status_code == 401, after.text


def wait_for_a_lock_wait(database_url: str) -> None:
    """Return once some session of the database waits on a lock."""
    engine = create_engine(database_url)
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    try:
        for _ in range(WAIT_ATTEMPTS):
            with engine.connect() as probe:
                if probe.scalar(waiting):
                    return
            time.sleep(0.1)
    finally:
        engine.dispose()
    pytest.fail("the request never waited on the lock")


def test_a_deadlock_answers_409_and_the_change_can_be_made_again(client, database_url):
    """Another client locks the key, the PATCH waits for it holding the generation counter,
    then the other client wants the counter: PostgreSQL breaks the circle by failing the
    PATCH, which answers 409 (the database is well), not 503."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one write lock for the whole file: no circle of waits")
    key = create(client)
    answers: list[Any] = []
    engine = create_engine(database_url)
    try:
        with engine.connect() as other:
            other.execute(text("SET LOCAL deadlock_timeout = '60s'"))  # the PATCH's is found
            other.execute(text("SELECT 1 FROM api_keys WHERE id = :id FOR UPDATE"), key)
            patch = threading.Thread(
                target=lambda: answers.append(
                    client.patch(f"/v1/api-keys/{key['id']}", json={"enabled": False})
                )
            )
            patch.start()
            wait_for_a_lock_wait(database_url)
            other.execute(text(BUMP))  # waits on the PATCH: a circle
            patch.join()
            other.rollback()
    finally:
        engine.dispose()
    (refused,) = answers
    assert (refused.status_code, refused.json["code"]) == (409, "conflict"), refused.json
    assert refused.json["message"] == "another change to the same data ran at once: try again"
    again = client.patch(f"/v1/api-keys/{key['id']}", json={"enabled": False})
    assert (again.status_code, again.json["enabled"]) == (200, False)


def test_parallel_wrong_codes_never_overdraw_the_budget(server):
    headers = host_headers(server)
    challenge_ids = [create_challenge(server, f"Guess {i}") for i in range(CHALLENGES)]
    listed = requests.get(f"{server}/v1/pairing/challenges", headers=headers, timeout=30)
    codes = {c["challenge_id"]: c["code"] for c in listed.json()["data"]}
    guesses = [
        {"challenge_id": challenge_id, "code": wrong_code(codes[challenge_id])}
        for challenge_id in challenge_ids
        for _ in range(5)
    ]

    responses = all_at_once(
        len(guesses),
        lambda i: requests.post(f"{server}/v1/auth/api_keys", json=guesses[i], timeout=60),
    )

    messages = [r.json()["message"] for r in responses]
    assert all(r.status_code < 500 for r in responses), messages
    assert messages.count("invalid code") == BUDGET, messages
    assert set(messages) <= {"invalid code", "pairing is disabled"}, messages
    settings = requests.get(f"{server}/v1/settings", headers=headers, timeout=30).json()
    assert settings["pairing_enabled"] is False


def test_wrong_codes_at_one_challenge_compare_exactly_the_cap(server, make_app):
    """``WRONG_AT_ONCE`` wrong codes at one challenge, at once, across 2 workers: exactly the
    cap are compared (answered ``invalid code``), the rest find the challenge burned, and only
    the compared ones spend the failure budget."""
    challenge_id = create_challenge(server)
    code = host_code(server, challenge_id)
    body = {"challenge_id": challenge_id, "code": wrong_code(code)}

    responses = all_at_once(
        WRONG_AT_ONCE,
        lambda _: requests.post(f"{server}/v1/auth/api_keys", json=body, timeout=60),
    )

    answers = [(r.status_code, r.json()["message"]) for r in responses]
    assert answers.count((400, "invalid code")) == CAP, answers
    assert set(answers) == {(400, "invalid code"), (410, "challenge failed: too many attempts")}
    assert sorted(r.json()["attempts_left"] for r in responses if r.status_code == 400) == list(
        range(CAP)
    )
    with make_app().app_context():
        challenge = db.session.get_one(Challenge, challenge_id)
        assert (challenge.state, challenge.failed_attempts) == ("burned", CAP)
        failed = select(func.count()).where(AuditEvent.type == "pairing.failed")
        assert db.session.scalar(failed) == CAP
        assert db.session.get_one(Counter, counters.PAIRING_FAILURES).value == CAP
