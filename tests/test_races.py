"""Races: rotations and revocations of one key, and wrong codes against the pairing budget."""

from datetime import timedelta

import pytest
import requests
from freezegun import freeze_time
from sqlalchemy import func, select

from authsvc.extensions import db
from authsvc.models import ApiKey
from tests import test_server
from tests.conftest import bearer
from tests.keyhelpers import audit_types
from tests.test_server import all_at_once, create_challenge, host_headers

server = test_server.server  # the live gunicorn fixture, shared
ROTATIONS = 10
REVOKE_TRIALS = 6
CHALLENGES = 10  # the pending cap per client, at 5 wrong codes each
BUDGET = 20


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


def test_parallel_wrong_codes_never_overdraw_the_budget(server):
    headers = host_headers(server)
    challenge_ids = [create_challenge(server, f"Guess {i}") for i in range(CHALLENGES)]
    listed = requests.get(f"{server}/v1/pairing/challenges", headers=headers, timeout=30)
    codes = {c["challenge_id"]: c["code"] for c in listed.json()["data"]}
    guesses = [
        {"challenge_id": challenge_id, "code": f"{(int(codes[challenge_id]) + 1) % 10_000:04d}"}
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
