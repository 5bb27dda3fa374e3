"""Bearer authentication (SPEC §2): every failure, in order, and changes taking effect at once."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import event, select

from authsvc import keycache, keys, settings, tokens
from authsvc.extensions import db
from authsvc.models import ApiKey, User
from tests import conftest
from tests.conftest import bearer, pair

REALM = 'Bearer realm="authsvc"'
INVALID_TOKEN = 'Bearer realm="authsvc", error="invalid_token"'
INSUFFICIENT_SCOPE = 'Bearer realm="authsvc", error="insufficient_scope"'


def assert_401(response: Any, message: str, www_authenticate: str) -> None:
    assert response.status_code == 401, response.json
    assert response.json == {
        "object": "error",
        "status": 401,
        "code": "unauthorized",
        "message": message,
    }
    assert response.headers["WWW-Authenticate"] == www_authenticate
    assert response.headers["Anytype-Version"] == "2025-11-08"


def change_key(app: Any, secret: str, **values: Any) -> None:
    with app.app_context():
        key = db.session.scalars(select(ApiKey).where(ApiKey.digest == tokens.digest(secret))).one()
        for name, value in values.items():
            setattr(key, name, value)
        db.session.commit()


@contextmanager
def counting_queries(app: Any) -> Iterator[list[str]]:
    """Record every SQL statement the app runs meanwhile: through its engine, and the key
    cache's counters read, which goes through the driver's own cursor."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    read = keycache.Probe.read

    def probe(self: keycache.Probe) -> tuple[int | None, int | None]:
        statements.append(keycache.PROBE)
        return read(self)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(keycache.Probe, "read", probe)
            yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("path", ["/v1/auth", "/v1/auth/whoami", "/v1/spaces"])
def test_missing_header(anon, path):
    assert_401(anon.get(path), "missing authorization header", REALM)


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", "Token sk-abc", "sk-abc", ""],
)
def test_bad_format(client, api_key, header):
    response = client.get("/v1/auth", headers={"Authorization": header.replace("sk-abc", api_key)})
    assert_401(response, "invalid authorization header format", REALM)


@pytest.mark.parametrize("word", ["bearer", "BEARER", "BeArEr"])
def test_word_bearer_any_case(client, api_key, word):
    response = client.get("/v1/auth", headers={"authorization": f"{word} {api_key}"})
    assert response.status_code == 200
    assert response.json["authenticated"] is True


def test_success_shape(client):
    issued = pair(client, "Shape")
    response = client.get("/v1/auth", headers=bearer(issued["api_key"]))
    assert response.status_code == 200
    body = response.json
    assert body["authenticated"] is True
    assert body["key"]["id"] == issued["key_id"]
    assert body["key"]["created_via"] == "pairing"
    assert body["key"]["last_used_ip"] == "127.0.0.1"
    assert body["user"]["username"] == "owner"
    assert "api_key" not in body["key"]


def mangled(secret: str) -> list[str]:
    last = secret[-1]
    flipped = "0" if last != "0" else "1"
    return [
        "pk-" + secret[3:],  # wrong prefix
        secret[:-1] + flipped,  # wrong checksum
        secret[:10] + ("A" if secret[10] != "A" else "B") + secret[11:],  # body changed
        secret[:-7] + secret[-6:],  # too short
        secret + "0",  # too long
        secret[:5] + "_" + secret[6:],  # outside the alphabet
    ]


def test_malformed_keys_never_reach_the_database(app, client, api_key):
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200  # warm up
    for token in mangled(api_key):
        with counting_queries(app) as statements:
            response = client.get("/v1/auth", headers=bearer(token))
        assert_401(response, "invalid api key", INVALID_TOKEN)
        assert statements == [], token
    with counting_queries(app) as statements:
        unknown = client.get("/v1/auth", headers=bearer(tokens.generate("sk-")))
    assert_401(unknown, "invalid api key", INVALID_TOKEN)
    assert statements[0] == keycache.PROBE  # the listener does see the counters read


def test_a_known_key_costs_one_read_once_cached(app, client, api_key):
    """Steady state: the generation read on the thread's own connection, no other statement."""
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200  # cached now
    checkouts: list[object] = []

    def record(*args: object) -> None:
        checkouts.append(args)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "checkout", record)
    try:
        with counting_queries(app) as statements:
            for _ in range(5):
                assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200
    finally:
        event.remove(engine, "checkout", record)
    assert statements == [keycache.PROBE] * 5
    assert checkouts == []  # the connection is kept, not taken from the pool each time


def test_a_verification_reads_the_generation_once(app, client, api_key):
    """The caller's key and the key it verifies share one generation read."""
    checked = pair(client)["api_key"]
    body = {"key": checked, "path": "/v1/spaces"}
    assert client.post("/v1/keys/verify", json=body, headers=bearer(api_key)).json["valid"]
    with counting_queries(app) as statements:
        answer = client.post("/v1/keys/verify", json=body, headers=bearer(api_key))
    assert answer.json["code"] == "VALID"
    assert statements == [keycache.PROBE]


def test_unknown_key(client):
    response = client.get("/v1/auth", headers=bearer(tokens.generate("sk-")))
    assert_401(response, "invalid api key", INVALID_TOKEN)


def test_key_not_read_elsewhere(anon, api_key):
    assert_401(
        anon.get(f"/v1/auth?api_key={api_key}&token={api_key}"),
        "missing authorization header",
        REALM,
    )
    anon.set_cookie("api_key", api_key)
    anon.set_cookie("authsvc_session", api_key)
    assert anon.get("/v1/auth").status_code == 401
    anon.delete_cookie("api_key")
    anon.delete_cookie("authsvc_session")
    response = anon.get("/v1/auth", json={"api_key": api_key})
    assert_401(response, "missing authorization header", REALM)


def test_revoked_on_the_very_next_request(app, client, api_key):
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200
    with app.app_context():
        key = db.session.scalars(select(ApiKey)).one()
        keys.revoke(key, actor_id=None)
    assert_401(client.get("/v1/auth", headers=bearer(api_key)), "api key revoked", INVALID_TOKEN)


def test_scheduled_revocation(app, client, api_key):
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    change_key(app, api_key, revoked_at=later)
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200
    with freeze_time(later + timedelta(seconds=1)):
        response = client.get("/v1/auth", headers=bearer(api_key))
    assert_401(response, "api key revoked", INVALID_TOKEN)


def test_disabled(app, client, api_key):
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200
    change_key(app, api_key, enabled=False)
    assert_401(client.get("/v1/auth", headers=bearer(api_key)), "api key disabled", INVALID_TOKEN)
    change_key(app, api_key, enabled=True)
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200


def test_expired(app, client, api_key):
    expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
    change_key(app, api_key, expires_at=expiry)
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200
    with freeze_time(expiry + timedelta(seconds=1)):
        response = client.get("/v1/auth", headers=bearer(api_key))
    assert_401(response, "api key expired", INVALID_TOKEN)


@pytest.mark.parametrize(
    ("revoked", "disabled", "expired", "message"),
    [
        (True, True, True, "api key revoked"),
        (False, True, True, "api key disabled"),
        (False, False, True, "api key expired"),
    ],
)
def test_failures_checked_in_order(app, client, api_key, revoked, disabled, expired, message):
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    change_key(
        app,
        api_key,
        revoked_at=past if revoked else None,
        enabled=not disabled,
        expires_at=past if expired else None,
    )
    assert_401(client.get("/v1/auth", headers=bearer(api_key)), message, INVALID_TOKEN)


def test_suspended_owner(app, client, api_key):
    with app.app_context():
        owner = db.session.scalars(select(User).where(User.is_owner)).one()
        owner.suspended = True
        db.session.commit()
    assert_401(client.get("/v1/auth", headers=bearer(api_key)), "invalid api key", INVALID_TOKEN)


def test_api_keys_disabled_on_the_instance(app, client, api_key):
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 200
    with app.app_context():
        settings.store({"enable_api_keys": False})
        db.session.commit()
    response = client.get("/v1/auth", headers=bearer(api_key))
    assert response.status_code == 403
    assert response.json["code"] == "forbidden"
    assert response.json["object"] == "error"
    assert response.headers["WWW-Authenticate"] == INSUFFICIENT_SCOPE


def test_key_restricted_to_other_endpoints(app, client, api_key):
    change_key(app, api_key, allowed_endpoints=["/v1/spaces"])
    assert client.get("/v1/spaces", headers=bearer(api_key)).status_code == 200
    response = client.get("/v1/auth", headers=bearer(api_key))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == INSUFFICIENT_SCOPE


def test_key_restricted_to_other_addresses(app, client, api_key):
    change_key(app, api_key, allowed_ips=["10.0.0.0/8"])
    assert client.get("/v1/auth", headers=bearer(api_key)).status_code == 403
    inside = client.get(
        "/v1/auth", headers=bearer(api_key), environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert inside.status_code == 200


def test_custom_prefix(make_app):
    app = make_app(AUTHSVC_KEY_PREFIX="ak_")
    client = conftest.host_client(app)
    secret = pair(client)["api_key"]
    assert secret.startswith("ak_")
    assert tokens.is_well_formed(secret, "ak_")
    assert client.get("/v1/auth", headers=bearer(secret)).status_code == 200
    foreign = tokens.generate("sk-")
    assert_401(client.get("/v1/auth", headers=bearer(foreign)), "invalid api key", INVALID_TOKEN)


def test_a_valid_key_is_answered_as_it_is_now(client, api_key):
    """The answer is encoded once per state of the key, and follows each change of it."""
    first = client.get("/v1/auth", headers=bearer(api_key))
    kept = client.get("/v1/auth", headers=bearer(api_key))
    assert (kept.data, kept.mimetype) == (first.data, "application/json")
    key_url = f"/v1/api-keys/{first.json['key']['id']}"
    changed = client.patch(key_url, json={"name": "renamed", "meta": {"team": "a"}})
    assert changed.status_code == 200, changed.json
    shown = client.get("/v1/auth", headers=bearer(api_key)).json
    assert (shown["key"]["name"], shown["key"]["meta"]) == ("renamed", {"team": "a"})
    forwarded = client.get("/v1/auth/forward", headers={**bearer(api_key), "X-Forwarded-Uri": "/x"})
    assert forwarded.json == shown

    limited = client.patch(key_url, json={"usage_limit": {"remaining": 3, "refill": None}})
    assert limited.status_code == 200, limited.json
    left = [
        client.get("/v1/auth", headers=bearer(api_key)).json["key"]["usage_limit"]["remaining"]
        for _ in range(3)
    ]
    assert left == [2, 1, 0]


def test_last_used_written_at_most_once_a_minute(app, client, api_key):
    start = datetime(2026, 5, 1, 8, 0, 0)
    with freeze_time(start) as frozen:
        client.get("/v1/auth", headers=bearer(api_key))
        first = client.get("/v1/auth", headers=bearer(api_key)).json["key"]["last_used_at"]
        frozen.tick(timedelta(seconds=30))
        with counting_queries(app) as statements:
            client.get("/v1/auth", headers=bearer(api_key))
        assert not any(s.lstrip().upper().startswith("UPDATE") for s in statements)
        frozen.tick(timedelta(seconds=31))
        later = client.get("/v1/auth", headers=bearer(api_key)).json["key"]["last_used_at"]
    assert first == "2026-05-01T08:00:00Z"
    assert later == "2026-05-01T08:01:01Z"
