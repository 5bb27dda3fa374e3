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


@pytest.fixture
def without_api_keys(client, admin):  # noqa: F811
    """bob, a plain user on an instance whose defaults grant no ``api_keys``."""
    make_user(client, admin, "bob")
    changed = client.patch(
        "/v1/settings", json={"default_permissions": {"api_keys": False}}, headers=admin
    )
    assert changed.status_code == 200, changed.json
    return session_of(client, "bob")


def test_a_user_without_api_keys_cannot_see_claim_or_deny_codes(client, admin, without_api_keys):  # noqa: F811
    created = client.post("/v1/auth/challenges", json={"app_name": "Bob's app"})
    challenge_id = created.json["challenge_id"]
    listing = client.get("/v1/pairing/challenges", headers=without_api_keys)
    assert (listing.status_code, listing.json["message"]) == (
        403,
        "you lack the api_keys permission",
    )
    for action in ("claim", "deny"):
        refused = client.post(
            f"/v1/pairing/challenges/{challenge_id}/{action}", headers=without_api_keys
        )
        assert refused.status_code == 403, refused.json
    # Nothing changed: the challenge is still pending and nobody claimed it.
    pending = client.get("/v1/pairing/challenges", headers=admin).json["data"]
    assert [(c["challenge_id"], c["claimed_by"]) for c in pending] == [(challenge_id, None)]


def test_a_group_granting_api_keys_lets_the_user_pair(client, admin, without_api_keys):  # noqa: F811
    group = client.post(
        "/v1/admin/groups",
        json={"name": "pairers", "permissions": {"api_keys": True}},
        headers=admin,
    ).json
    bob_id = next(
        u["id"]
        for u in client.get("/v1/admin/users", headers=admin).json["data"]
        if u["username"] == "bob"
    )
    added = client.post(
        f"/v1/admin/groups/{group['id']}/members", json={"user_id": bob_id}, headers=admin
    )
    assert added.status_code in (200, 201, 204), added.json
    created = client.post("/v1/auth/challenges", json={"app_name": "Bob's app"})
    challenge_id = created.json["challenge_id"]
    claimed = client.post(f"/v1/pairing/challenges/{challenge_id}/claim", headers=without_api_keys)
    assert claimed.status_code == 200, claimed.json
    redeemed = client.post(
        "/v1/auth/api_keys", json={"challenge_id": challenge_id, "code": claimed.json["code"]}
    )
    assert redeemed.status_code == 201, redeemed.json
