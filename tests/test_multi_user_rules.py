"""Multi-user boundaries: managers manage plain users only; a claimed challenge is its
claimer's (and the admins') alone."""

import pytest

from tests.test_accounts import login
from tests.test_admin import admin, make_user, session_of  # noqa: F401  (admin: fixture)


@pytest.fixture
def manager(client, admin):  # noqa: F811
    make_user(client, admin, "mia", role="manager")
    return session_of(client, "mia")


@pytest.mark.parametrize("role", ["manager", "admin"])
@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("patch", {"password": "taken-over"}),
        ("patch", {"suspended": True}),
        ("patch", {"role": "user"}),
        ("delete", None),
    ],
)
def test_a_manager_cannot_touch_managers_or_admins(client, admin, manager, role, method, body):  # noqa: F811
    target = make_user(client, admin, "target", role=role)
    url = f"/v1/admin/users/{target['id']}"
    refused = getattr(client, method)(url, json=body, headers=manager)
    assert refused.status_code == 403, refused.json
    assert refused.json["message"] == "managers may act only on user accounts"
    after = client.get(url, headers=admin).json
    assert (after["role"], after["suspended"]) == (role, False)
    assert login(client, "target", "pw-target").status_code == 200
    assert login(client, "target", "taken-over").status_code == 401


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_a_manager_cannot_create_or_promote_to_its_rank(client, admin, manager, role):  # noqa: F811
    created = client.post(
        "/v1/admin/users", json={"username": "x", "password": "p", "role": role}, headers=manager
    )
    assert created.status_code == 403
    bob = make_user(client, manager, "bob")
    promoted = client.patch(f"/v1/admin/users/{bob['id']}", json={"role": role}, headers=manager)
    assert promoted.status_code == 403
    assert client.get(f"/v1/admin/users/{bob['id']}", headers=admin).json["role"] == "user"


def test_a_manager_still_manages_users(client, admin, manager):  # noqa: F811
    bob = make_user(client, manager, "bob")
    url = f"/v1/admin/users/{bob['id']}"
    assert client.patch(url, json={"password": "new-pw"}, headers=manager).status_code == 200
    assert login(client, "bob", "new-pw").status_code == 200
    assert client.delete(url, headers=manager).status_code == 204


@pytest.fixture
def claimed(client, admin):  # noqa: F811
    """A challenge that carol claimed; bob is another plain user."""
    make_user(client, admin, "carol")
    make_user(client, admin, "bob")
    created = client.post("/v1/auth/challenges", json={"app_name": "Carol's app"})
    challenge_id = created.json["challenge_id"]
    carol = session_of(client, "carol")
    assert (
        client.post(f"/v1/pairing/challenges/{challenge_id}/claim", headers=carol).status_code
        == 200
    )
    return challenge_id


def listed_ids(client, headers):
    answer = client.get("/v1/pairing/challenges", headers=headers)
    assert answer.status_code == 200, answer.json
    return [c["challenge_id"] for c in answer.json["data"]]


@pytest.mark.parametrize("action", ["deny", "claim"])
def test_another_user_cannot_see_or_act_on_a_claimed_challenge(client, claimed, action):
    bob = session_of(client, "bob")
    assert claimed not in listed_ids(client, bob)
    refused = client.post(f"/v1/pairing/challenges/{claimed}/{action}", headers=bob)
    assert (refused.status_code, refused.json["message"]) == (404, "challenge not found")
    carol = session_of(client, "carol")
    assert claimed in listed_ids(client, carol)


def test_the_claimer_and_admins_still_act(client, admin, claimed):  # noqa: F811
    assert claimed in listed_ids(client, admin)
    carol = session_of(client, "carol")
    again = client.post(f"/v1/pairing/challenges/{claimed}/claim", headers=carol)
    assert again.status_code == 200
    assert client.post(f"/v1/pairing/challenges/{claimed}/deny", headers=admin).status_code == 204


def test_an_unclaimed_challenge_is_everyone_s(client, admin):  # noqa: F811
    make_user(client, admin, "bob")
    bob = session_of(client, "bob")
    created = client.post("/v1/auth/challenges", json={"app_name": "Anyone's"})
    challenge_id = created.json["challenge_id"]
    assert challenge_id in listed_ids(client, bob)
    assert (
        client.post(f"/v1/pairing/challenges/{challenge_id}/deny", headers=bob).status_code == 204
    )
