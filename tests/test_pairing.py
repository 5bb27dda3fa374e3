"""Pairing (SPEC §4): the happy path, every error, PKCE, budgets, approval, limits, legacy."""

import base64
import hashlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from authsvc import pairing, settings
from authsvc.extensions import db
from authsvc.models import ApiKey, AuditEvent, Challenge
from authsvc.tokens import is_well_formed
from tests import conftest
from tests.conftest import assert_error, bearer, pair, wrong_code

RATE_HEADERS = ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def create(client: Any, app_name: str = "Test App", **extra: Any) -> str:
    response = client.post("/v1/auth/challenges", json={"app_name": app_name, **extra})
    assert response.status_code == 201, response.json
    return str(response.json["challenge_id"])


def code_of(app: Any, challenge_id: str) -> str:
    with app.app_context():
        return str(db.session.get(Challenge, challenge_id).code)


def set_code(app: Any, challenge_id: str, code: str) -> None:
    with app.app_context():
        db.session.get(Challenge, challenge_id).code = code
        db.session.commit()


def state_of(app: Any, challenge_id: str) -> str:
    with app.app_context():
        return str(db.session.get(Challenge, challenge_id).state)


def redeem(client: Any, challenge_id: str, code: Any, **extra: Any) -> Any:
    return client.post(
        "/v1/auth/api_keys", json={"challenge_id": challenge_id, "code": code, **extra}
    )


def events(app: Any, event_type: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.type == event_type)).all()
        db.session.expunge_all()
        return list(rows)


def count(app: Any, model: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def assert_rate_headers(response: Any) -> None:
    for name in RATE_HEADERS:
        values = response.headers.getlist(name)
        assert len(values) == 1, (name, values)
        assert int(values[0]) >= 0
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Remaining"] == "0"


# --- the happy path --------------------------------------------------------------------------


def test_happy_path(app, client):
    created = client.post("/v1/auth/challenges", json={"app_name": "Notes"})
    assert created.status_code == 201
    assert set(created.json) == {"challenge_id", "expires_at"}
    assert created.json["expires_at"].endswith("Z")
    challenge_id = created.json["challenge_id"]
    assert len(challenge_id) >= 16  # at least 96 random bits, base64url
    listing = client.get("/v1/pairing/challenges")
    assert listing.status_code == 200
    (item,) = listing.json["data"]
    assert listing.json["pagination"] == {"total": 1, "offset": 0, "limit": 100, "has_more": False}
    assert item["challenge_id"] == challenge_id
    assert item["app_name"] == "Notes"
    assert item["attempts_left"] == 5
    assert item["client_ip"] == "127.0.0.1"
    assert len(item["code"]) == 4 and item["code"].isdigit()
    assert item["created_at"].endswith("Z") and item["expires_at"].endswith("Z")

    issued = redeem(client, challenge_id, item["code"])
    assert issued.status_code == 201
    assert set(issued.json) == {"api_key", "key_id", "name", "expires_at"}
    assert issued.json["name"] == "Notes"
    assert issued.json["expires_at"] is None
    assert is_well_formed(issued.json["api_key"], "sk-")
    assert issued.headers["Cache-Control"] == "no-store"
    assert client.get("/v1/auth", headers=bearer(issued.json["api_key"])).status_code == 200
    assert state_of(app, challenge_id) == "used"
    assert client.get("/v1/pairing/challenges").json["data"] == []
    assert [e.type for e in events(app, "pairing.succeeded")] == ["pairing.succeeded"]
    assert len(events(app, "challenge.created")) == 1


def test_challenge_ids_and_codes_are_random(app, client):
    ids = {create(client, f"App {n}") for n in range(5)}
    assert len(ids) == 5
    assert all(len(challenge_id) >= 24 for challenge_id in ids)  # 18 bytes, 144 bits
    with app.app_context():
        codes = [
            pairing.issue_challenge("App", f"10.0.{n // 250}.{n % 250}", None).code
            for n in range(400)
        ]
    assert all(len(code) == 4 and code.isdigit() for code in codes)
    # 400 draws from 10 000 codes repeat a handful of times; a guessable source repeats more.
    assert len(set(codes)) > 370
    # Every digit shows up in every position, leading zeros included.
    for position in range(4):
        assert {code[position] for code in codes} == set("0123456789")


def test_challenge_lives_configured_ttl(make_app):
    app = make_app(AUTHSVC_CHALLENGE_TTL=60)
    client = conftest.host_client(app)
    with freeze_time("2026-01-01 12:00:00"):
        created = client.post("/v1/auth/challenges", json={"app_name": "x"})
    assert created.json["expires_at"] == "2026-01-01T12:01:00Z"


# --- errors of SPEC §4 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"challenge_id": "", "code": "1234"},
        {"challenge_id": "x", "code": ""},
        {"challenge_id": "", "code": ""},
        {"code": "1234"},
        {"challenge_id": "x"},
        {},
    ],
)
def test_empty_challenge_id_or_code(client, body):
    response = client.post("/v1/auth/api_keys", json=body)
    assert_error(response, 400, "bad_request", "bad input: challenge_id or code is empty")


def test_unknown_challenge(client):
    assert_error(redeem(client, "no-such-challenge", "1234"), 404, "object_not_found")


def test_wrong_code_counts_down_then_burns(app, client):
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    for left in (4, 3, 2, 1):
        response = redeem(client, challenge_id, wrong_code(code))
        assert_error(response, 400, "bad_request", "invalid code")
        assert response.json["attempts_left"] == left
    last = redeem(client, challenge_id, wrong_code(code))
    assert_error(last, 400, "bad_request", "invalid code")
    assert last.json["attempts_left"] == 0
    assert state_of(app, challenge_id) == "burned"
    # Even the right code is refused now.
    after = redeem(client, challenge_id, code)
    assert_error(after, 410, "gone", "challenge failed: too many attempts")
    assert len(events(app, "pairing.failed")) == 5
    assert len(events(app, "challenge.burned")) == 1
    assert count(app, ApiKey) == 0


def test_max_attempts_is_configurable(make_app):
    app = make_app(AUTHSVC_CHALLENGE_MAX_ATTEMPTS=2)
    client = conftest.host_client(app)
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    assert redeem(client, challenge_id, wrong_code(code)).json["attempts_left"] == 1
    assert redeem(client, challenge_id, wrong_code(code)).json["attempts_left"] == 0
    assert_error(
        redeem(client, challenge_id, code), 410, "gone", "challenge failed: too many attempts"
    )


def test_expired_challenge(app, client):
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    with freeze_time(datetime.now(UTC) + timedelta(seconds=301)):
        response = redeem(client, challenge_id, code)
        assert_error(response, 410, "gone", "challenge expired")
        assert client.get("/v1/pairing/challenges").json["data"] == []
    assert count(app, ApiKey) == 0


def test_challenge_succeeds_once(app, client):
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    assert redeem(client, challenge_id, code).status_code == 201
    again = redeem(client, challenge_id, code)
    assert_error(again, 410, "gone", "challenge already used")
    wrong_again = redeem(client, challenge_id, wrong_code(code))
    assert_error(wrong_again, 410, "gone", "challenge already used")
    assert count(app, ApiKey) == 1


def test_deny(app, client):
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    denied = client.post(f"/v1/pairing/challenges/{challenge_id}/deny")
    assert denied.status_code == 204
    assert denied.headers["Anytype-Version"] == "2025-11-08"
    assert_error(redeem(client, challenge_id, code), 410, "gone", "challenge denied")
    again = client.post(f"/v1/pairing/challenges/{challenge_id}/deny")
    assert_error(again, 410, "gone", "challenge denied")
    assert len(events(app, "challenge.denied")) == 1


def test_deny_of_used_or_expired_or_unknown(app, client):
    used = create(client)
    assert redeem(client, used, code_of(app, used)).status_code == 201
    response = client.post(f"/v1/pairing/challenges/{used}/deny")
    assert_error(response, 410, "gone", "challenge already used")
    expiring = create(client)
    with freeze_time(datetime.now(UTC) + timedelta(seconds=301)):
        response = client.post(f"/v1/pairing/challenges/{expiring}/deny")
        assert_error(response, 410, "gone", "challenge expired")
    assert_error(client.post("/v1/pairing/challenges/nope/deny"), 404, "object_not_found")


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "192.0.2.7"])
def test_host_endpoints_need_a_session_from_any_address(client, anon, address):
    """Being on loopback grants nothing: an app on this machine cannot read its own code."""
    challenge_id = create(anon)
    environ = {"REMOTE_ADDR": address}
    for method, path in [
        ("get", "/v1/pairing/challenges"),
        ("post", f"/v1/pairing/challenges/{challenge_id}/deny"),
        ("post", f"/v1/pairing/challenges/{challenge_id}/claim"),
    ]:
        response = getattr(anon, method)(path, environ_base=environ)
        assert_error(response, 401, "unauthorized", "missing authorization header")
    assert state_of(client.application, challenge_id) == "pending"


def test_host_endpoints_refuse_pairing_keys(client, api_key):
    challenge_id = create(client)
    with_key = client.get("/v1/pairing/challenges", headers=bearer(api_key))
    assert_error(with_key, 403, "forbidden", "this api key may not manage")
    denied = client.post(f"/v1/pairing/challenges/{challenge_id}/deny", headers=bearer(api_key))
    assert_error(denied, 403, "forbidden", "this api key may not manage")
    assert state_of(client.application, challenge_id) == "pending"


def test_host_list_is_never_cached_and_shows_who_asked(client, anon):
    agent = "NotesApp/1.0 " + "x" * 300
    response = anon.post(
        "/v1/auth/challenges",
        json={"app_name": "Notes"},
        headers={"User-Agent": agent, "Origin": "http://localhost"},
    )
    assert response.status_code == 201, response.json
    listing = client.get("/v1/pairing/challenges")
    assert listing.headers["Cache-Control"] == "no-store"
    (item,) = listing.json["data"]
    assert item["user_agent"] == agent[:200]
    assert item["origin"] == "http://localhost"
    assert item["client_ip"] == "127.0.0.1"


# --- the code as a number --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "sent"), [("0042", 42), ("0007", 7), ("0000", 0), ("0123", 123)]
)
def test_numeric_code_is_zero_padded(app, client, stored, sent):
    challenge_id = create(client)
    set_code(app, challenge_id, stored)
    response = redeem(client, challenge_id, sent)
    assert response.status_code == 201, response.json


def test_string_code_with_leading_zero(app, client):
    challenge_id = create(client)
    set_code(app, challenge_id, "0815")
    assert redeem(client, challenge_id, "0815").status_code == 201


@pytest.mark.parametrize("sent", [-42, 10042, "42", " 0042"])
def test_other_codes_are_wrong(app, client, sent):
    challenge_id = create(client)
    set_code(app, challenge_id, "0042")
    assert_error(redeem(client, challenge_id, sent), 400, "bad_request", "invalid code")


# --- PKCE binding ----------------------------------------------------------------------------

VERIFIER = "a-secret-verifier-of-the-app-0123456789-abcdefghij"
CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")
)


def test_pkce_right_verifier(app, client):
    challenge_id = create(client, code_challenge=CHALLENGE)
    response = redeem(client, challenge_id, code_of(app, challenge_id), code_verifier=VERIFIER)
    assert response.status_code == 201, response.json


@pytest.mark.parametrize("verifier", [None, "", "wrong-verifier", VERIFIER + "x"])
def test_pkce_missing_or_wrong_verifier(app, client, verifier):
    challenge_id = create(client, code_challenge=CHALLENGE)
    extra = {} if verifier is None else {"code_verifier": verifier}
    # Checked before the code: even a wrong code answers about the verifier.
    response = redeem(client, challenge_id, code_of(app, challenge_id), **extra)
    assert_error(response, 400, "bad_request", "invalid code_verifier")
    assert response.json["attempts_left"] == 4
    other = redeem(client, challenge_id, wrong_code(code_of(app, challenge_id)), **extra)
    assert_error(other, 400, "bad_request", "invalid code_verifier")
    assert other.json["attempts_left"] == 3
    assert len(events(app, "pairing.failed")) == 2
    assert count(app, ApiKey) == 0


def test_pkce_failures_burn_the_challenge(make_app):
    app = make_app(AUTHSVC_CHALLENGE_MAX_ATTEMPTS=2)
    client = conftest.host_client(app)
    challenge_id = create(client, code_challenge=CHALLENGE)
    code = code_of(app, challenge_id)
    redeem(client, challenge_id, code)
    redeem(client, challenge_id, code)
    response = redeem(client, challenge_id, code, code_verifier=VERIFIER)
    assert_error(response, 410, "gone", "challenge failed: too many attempts")


def test_verifier_without_code_challenge_is_ignored(app, client):
    challenge_id = create(client)
    response = redeem(client, challenge_id, code_of(app, challenge_id), code_verifier="anything")
    assert response.status_code == 201


# --- the failure budget ----------------------------------------------------------------------


def test_failure_budget_locks_pairing(make_app):
    app = make_app(AUTHSVC_PAIRING_FAILURE_BUDGET=3)
    client = conftest.host_client(app)
    first, second = create(client, "One"), create(client, "Two")
    redeem(client, first, wrong_code(code_of(app, first)))
    redeem(client, second, wrong_code(code_of(app, second)))
    exhausting = redeem(client, first, wrong_code(code_of(app, first)))
    assert_error(exhausting, 400, "bad_request", "invalid code")
    (locked,) = events(app, "pairing.locked")
    assert locked.details["budget"] == 3

    assert_error(
        client.post("/v1/auth/challenges", json={"app_name": "x"}),
        403,
        "forbidden",
        "pairing is disabled",
    )
    # Checked before anything else: even the right code, or an unknown or empty challenge.
    assert_error(
        redeem(client, second, code_of(app, second)), 403, "forbidden", "pairing is disabled"
    )
    assert_error(redeem(client, "nope", "1234"), 403, "forbidden", "pairing is disabled")
    assert_error(redeem(client, "", ""), 403, "forbidden", "pairing is disabled")
    legacy = client.post("/v1/auth/display_code?app_name=x")
    assert_error(legacy, 403, "forbidden", "pairing is disabled")
    assert_error(client.post("/v1/auth/token?challenge_id=x&code=1"), 403, "forbidden")
    # Pending challenges stay pending (the host can still see them).
    assert state_of(app, first) == "pending" and state_of(app, second) == "pending"
    assert len(client.get("/v1/pairing/challenges").json["data"]) == 2
    assert count(app, ApiKey) == 0


def test_failure_budget_counts_pkce_failures(make_app):
    app = make_app(AUTHSVC_PAIRING_FAILURE_BUDGET=2)
    client = conftest.host_client(app)
    challenge_id = create(client, code_challenge=CHALLENGE)
    redeem(client, challenge_id, code_of(app, challenge_id))
    response = redeem(client, challenge_id, code_of(app, challenge_id))
    assert_error(response, 400, "bad_request", "invalid code_verifier")
    assert len(events(app, "pairing.locked")) == 1
    assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 403


def test_failure_budget_has_no_time_window(make_app):
    """A slow drip over a simulated day spends the same budget as a burst."""
    app = make_app(AUTHSVC_PAIRING_FAILURE_BUDGET=20, AUTHSVC_CHALLENGE_TTL=3600)
    client = conftest.host_client(app)
    start = datetime(2026, 3, 1, 0, 0, 0)
    for hour in range(20):
        with freeze_time(start + timedelta(hours=hour, minutes=10)):
            challenge_id = create(client)
            response = redeem(client, challenge_id, wrong_code(code_of(app, challenge_id)))
            assert_error(response, 400, "bad_request", "invalid code")
            assert bool(events(app, "pairing.locked")) == (hour == 19)
    with freeze_time(start + timedelta(days=1)):
        assert_error(client.post("/v1/auth/challenges", json={"app_name": "x"}), 403, "forbidden")
    # Turning pairing on again starts a fresh budget.
    assert client.patch("/v1/settings", json={"pairing_enabled": True}).status_code == 200
    challenge_id = create(client)
    assert redeem(client, challenge_id, wrong_code(code_of(app, challenge_id))).status_code == 400
    assert len(events(app, "pairing.locked")) == 1


def test_a_success_starts_a_fresh_budget(make_app):
    app = make_app(AUTHSVC_PAIRING_FAILURE_BUDGET=3)
    client = conftest.host_client(app)
    for _ in range(3):
        challenge_id = create(client)
        redeem(client, challenge_id, wrong_code(code_of(app, challenge_id)))
        redeem(client, challenge_id, wrong_code(code_of(app, challenge_id)))
        assert redeem(client, challenge_id, code_of(app, challenge_id)).status_code == 201
    assert events(app, "pairing.locked") == []


# --- approval --------------------------------------------------------------------------------


def test_requires_approval(make_app):
    app = make_app(AUTHSVC_PAIRING_REQUIRES_APPROVAL=True)
    client = conftest.host_client(app)
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    before = redeem(client, challenge_id, code)
    assert_error(before, 400, "bad_request", "invalid code")
    assert before.json["attempts_left"] == 4
    claimed = client.post(f"/v1/pairing/challenges/{challenge_id}/claim")
    assert claimed.status_code == 200
    assert claimed.json["code"] == code
    assert len(events(app, "challenge.claimed")) == 1
    after = redeem(client, challenge_id, code)
    assert after.status_code == 201, after.json
    whoami = client.get("/v1/auth", headers=bearer(after.json["api_key"])).json
    assert whoami["user"]["username"] == "owner"


def test_claim_of_unknown_or_finished(app, client):
    assert_error(client.post("/v1/pairing/challenges/nope/claim"), 404, "object_not_found")
    challenge_id = create(client)
    client.post(f"/v1/pairing/challenges/{challenge_id}/deny")
    response = client.post(f"/v1/pairing/challenges/{challenge_id}/claim")
    assert_error(response, 410, "gone", "challenge denied")


# --- limits on creation ----------------------------------------------------------------------


def test_pending_cap_per_client(make_app):
    app = make_app(AUTHSVC_MAX_PENDING_PER_CLIENT=2)
    client = conftest.host_client(app)
    first = create(client)
    create(client)
    refused = client.post("/v1/auth/challenges", json={"app_name": "x"})
    assert_error(refused, 429, "rate_limit_exceeded")
    assert_rate_headers(refused)
    assert refused.headers["X-RateLimit-Limit"] == "2"
    assert refused.json["retry_after"] == int(refused.headers["Retry-After"])
    assert 1 <= refused.json["retry_after"] <= 301
    # Another client is not affected.
    other = client.post(
        "/v1/auth/challenges", json={"app_name": "x"}, environ_base={"REMOTE_ADDR": "127.0.0.2"}
    )
    assert other.status_code == 201
    # A challenge that is no longer pending frees its slot.
    assert redeem(client, first, code_of(app, first)).status_code == 201
    assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 201
    assert count(app, Challenge) == 4


def test_pending_cap_frees_on_expiry(make_app):
    app = make_app(AUTHSVC_MAX_PENDING_PER_CLIENT=1)
    client = conftest.host_client(app)
    create(client)
    assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 429
    with freeze_time(datetime.now(UTC) + timedelta(seconds=301)):
        assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 201


def test_pending_cap_total(make_app):
    app = make_app(AUTHSVC_MAX_PENDING_TOTAL=2)
    client = conftest.host_client(app)
    create(client)
    elsewhere = client.post(
        "/v1/auth/challenges", json={"app_name": "x"}, environ_base={"REMOTE_ADDR": "10.1.1.1"}
    )
    assert elsewhere.status_code == 201
    refused = client.post(
        "/v1/auth/challenges", json={"app_name": "x"}, environ_base={"REMOTE_ADDR": "10.2.2.2"}
    )
    assert_error(refused, 429, "rate_limit_exceeded")
    assert_rate_headers(refused)
    assert refused.headers["X-RateLimit-Limit"] == "2"
    assert count(app, Challenge) == 2


def test_creation_rate_limit(make_app):
    app = make_app(AUTHSVC_CHALLENGE_RATE_LIMIT="3 per minute")
    client = conftest.host_client(app)
    for _ in range(3):
        create(client)
    refused = client.post("/v1/auth/challenges", json={"app_name": "x"})
    assert_error(refused, 429, "rate_limit_exceeded")
    assert_rate_headers(refused)
    assert refused.headers["X-RateLimit-Limit"] == "3"
    # The legacy creation endpoint shares the limit.
    legacy = client.post("/v1/auth/display_code?app_name=x")
    assert_error(legacy, 429, "rate_limit_exceeded")
    assert_rate_headers(legacy)
    # Another client has its own budget.
    other = client.post(
        "/v1/auth/challenges", json={"app_name": "x"}, environ_base={"REMOTE_ADDR": "127.0.0.9"}
    )
    assert other.status_code == 201
    assert count(app, Challenge) == 4


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/v1/auth/challenges", {"data": "{not json"}),
        ("/v1/auth/challenges", {"json": {"app_name": ""}}),
        ("/v1/auth/display_code", {}),
    ],
)
def test_malformed_creations_count_toward_the_rate_limit(make_app, path, kwargs):
    app = make_app(AUTHSVC_CHALLENGE_RATE_LIMIT="2 per minute")
    client = conftest.host_client(app)
    for _ in range(2):
        assert client.post(path, **kwargs).status_code == 400
    limited = client.post("/v1/auth/challenges", json={"app_name": "Valid"})
    assert_error(limited, 429, "rate_limit_exceeded")
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert int(limited.headers["Retry-After"]) >= 1
    assert count(app, Challenge) == 0


def test_disabled_pairing_answers_before_the_rate_limit_but_still_counts(make_app):
    app = make_app(AUTHSVC_CHALLENGE_RATE_LIMIT="2 per minute")
    client = conftest.host_client(app)
    with app.app_context():
        settings.store({"pairing_enabled": False})
        db.session.commit()
    for _ in range(3):  # the third is over the limit, yet "disabled" is said first
        refused = client.post("/v1/auth/challenges", data="{not json")
        assert_error(refused, 403, "forbidden")
        assert refused.json["message"] == "pairing is disabled"
    with app.app_context():
        settings.store({"pairing_enabled": True})
        db.session.commit()
    limited = client.post("/v1/auth/challenges", json={"app_name": "Valid"})
    assert_error(limited, 429, "rate_limit_exceeded")


def test_refused_creations_count_toward_the_rate_limit(make_app):
    app = make_app(AUTHSVC_CHALLENGE_RATE_LIMIT="3 per minute", AUTHSVC_MAX_PENDING_PER_CLIENT=1)
    client = conftest.host_client(app)
    create(client)
    for _ in range(2):
        capped = client.post("/v1/auth/challenges", json={"app_name": "x"})
        assert capped.json["message"] == "too many pending challenges for this client"
    limited = client.post("/v1/auth/challenges", json={"app_name": "x"})
    assert_error(limited, 429, "rate_limit_exceeded")
    assert limited.json["message"].startswith("rate limit exceeded")
    assert limited.headers["X-RateLimit-Limit"] == "3"


def test_rate_limit_resets_after_the_window(make_app):
    app = make_app(AUTHSVC_CHALLENGE_RATE_LIMIT="1 per minute")
    client = conftest.host_client(app)
    start = datetime.now(UTC)
    with freeze_time(start) as frozen:
        create(client)
        assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 429
        frozen.tick(timedelta(seconds=61))
        assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 201


# --- legacy 2025-04-22 endpoints -------------------------------------------------------------


def test_legacy_pairing(app, client):
    shown = client.post("/v1/auth/display_code?app_name=Legacy%20App")
    assert shown.status_code == 200
    assert set(shown.json) == {"challenge_id"}
    challenge_id = shown.json["challenge_id"]
    code = code_of(app, challenge_id)
    token = client.post(f"/v1/auth/token?challenge_id={challenge_id}&code={code}")
    assert token.status_code == 200
    assert set(token.json) == {"app_key"}
    assert token.headers["Cache-Control"] == "no-store"
    assert token.headers["Anytype-Version"] == "2025-11-08"
    whoami = client.get("/v1/auth", headers=bearer(token.json["app_key"]))
    assert whoami.status_code == 200
    assert whoami.json["key"]["name"] == "Legacy App"


def test_legacy_errors(app, client):
    assert_error(client.post("/v1/auth/display_code"), 400, "bad_request")
    assert_error(client.post("/v1/auth/display_code?app_name="), 400, "bad_request")
    empty = client.post("/v1/auth/token?challenge_id=&code=")
    assert_error(empty, 400, "bad_request", "bad input: challenge_id or code is empty")
    assert_error(client.post("/v1/auth/token?challenge_id=x&code=1234"), 404, "object_not_found")
    challenge_id = client.post("/v1/auth/display_code?app_name=x").json["challenge_id"]
    code = code_of(app, challenge_id)
    response = client.post(f"/v1/auth/token?challenge_id={challenge_id}&code={wrong_code(code)}")
    assert_error(response, 400, "bad_request", "invalid code")
    assert response.json["attempts_left"] == 4


# --- secrets never leak ----------------------------------------------------------------------


def test_secret_never_shown_again(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    issued = pair(client, "Leak Check")
    secret = issued["api_key"]
    assert secret not in client.get("/v1/pairing/challenges").get_data(as_text=True)
    whoami = client.get("/v1/auth", headers=bearer(secret))
    assert whoami.status_code == 200
    assert secret not in whoami.get_data(as_text=True)
    assert whoami.json["key"]["display"].startswith("sk-")
    assert "no-store" not in whoami.headers.get("Cache-Control", "")
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent)).all()
        assert rows
        for row in rows:
            dump = repr([getattr(row, c.key) for c in AuditEvent.__table__.columns])
            assert secret not in dump
            assert secret[3:20] not in dump
        stored = db.session.scalars(select(ApiKey)).one()
        assert stored.digest != secret and secret not in stored.display
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_codes_in_audit_events_never(app, client):
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    redeem(client, challenge_id, wrong_code(code))
    redeem(client, challenge_id, code)
    for event_type in ("challenge.created", "pairing.failed", "pairing.succeeded"):
        for event in events(app, event_type):
            assert code not in repr(event.details) and wrong_code(code) not in repr(event.details)


def test_codes_logged_only_when_asked(make_app, caplog):
    caplog.set_level(logging.INFO, logger="authsvc")
    app = make_app(AUTHSVC_PAIRING_LOG_CODES=True)
    client = conftest.host_client(app)
    issued = pair(client, "Headless")
    with app.app_context():
        code = db.session.scalars(select(Challenge)).one().code
    logged = [r for r in caplog.records if r.levelno == logging.INFO and code in r.getMessage()]
    assert logged and "Headless" in logged[0].getMessage()
    assert all(issued["api_key"] not in r.getMessage() for r in caplog.records)


def test_codes_not_logged_by_default(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    challenge_id = create(client, "Quiet")
    code = code_of(app, challenge_id)
    assert all(f"code {code}" not in r.getMessage() for r in caplog.records)


# --- races -----------------------------------------------------------------------------------


def test_concurrent_exchanges_yield_one_key(app, client):
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def exchange() -> None:
        own = app.test_client()
        barrier.wait()
        statuses.append(redeem(own, challenge_id, code).status_code)

    threads = [threading.Thread(target=exchange) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 410, 410, 410]
    assert count(app, ApiKey) == 1


def test_turning_pairing_on_again_starts_a_fresh_budget(make_app):
    app = make_app(AUTHSVC_PAIRING_FAILURE_BUDGET=3)
    client = conftest.host_client(app)
    challenge_id = create(client)
    code = code_of(app, challenge_id)
    for _ in range(3):
        redeem(client, challenge_id, wrong_code(code))
    assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 403
    with app.app_context():
        settings.update({"pairing_enabled": True}, actor_id=None)
    # The old failures no longer count: two more wrong codes leave pairing on.
    for _ in range(2):
        assert_error(
            redeem(client, challenge_id, wrong_code(code)), 400, "bad_request", "invalid code"
        )
    assert len(events(app, "pairing.locked")) == 1
    assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 201
    other = create(client)
    redeem(client, other, wrong_code(code_of(app, other)))
    assert len(events(app, "pairing.locked")) == 2
    assert client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 403


def test_pairing_audit_events(app, client):
    issued = pair(client, "Audited")
    (created,) = events(app, "challenge.created")
    (succeeded,) = events(app, "pairing.succeeded")
    (key_created,) = events(app, "key.created")
    for event in (created, succeeded):
        assert event.actor_id is None  # an app pairing: nobody is logged in
        assert event.client_ip == "127.0.0.1"
    assert succeeded.key_id == issued["key_id"] == key_created.key_id
    assert key_created.details["created_via"] == "pairing"
    assert created.details["app_name"] == "Audited"
