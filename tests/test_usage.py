"""Usage counting, the usage endpoint and command, and usage limits with their refill."""

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from sqlalchemy import select

from authsvc import logs, purge, usage
from authsvc.cli import main
from authsvc.clock import epoch
from authsvc.extensions import db
from authsvc.models import Counter, KeyUsage, KeyUsageLimit
from tests.conftest import bearer
from tests.keyhelpers import make_key, make_user

NOW = datetime(2030, 3, 31, 22, 30)
ZERO = {"valid": 0, "rate_limited": 0, "usage_exceeded": 0, "forbidden": 0}


def create(client: Any, **fields: Any) -> dict[str, Any]:
    created = client.post("/v1/api-keys", json={"name": "app", **fields})
    assert created.status_code == 201, created.json
    return created.json  # type: ignore[no-any-return]


def flush(app: Any) -> None:
    with app.app_context():
        usage.flush()


def report(client: Any, key_id: str, **query: str) -> dict[str, Any]:
    answer = client.get(f"/v1/api-keys/{key_id}/usage", query_string=query)
    assert answer.status_code == 200, answer.json
    return answer.json  # type: ignore[no-any-return]


def test_counts_by_hour_and_outcome_once_flushed(app, client, anon):
    with freeze_time(NOW) as clock:
        key = create(
            client,
            allowed_endpoints=["/v1/auth"],
            rate_limit={"requests": 5, "per_seconds": 86400},
        )
        headers = bearer(key["api_key"])
        for _ in range(3):
            assert anon.get("/v1/auth", headers=headers).status_code == 200
        for _ in range(2):
            assert anon.get("/v1/spaces", headers=headers).status_code == 403
        clock.tick(timedelta(hours=1))  # 23:30: the next hour, and still the same day
        for _ in range(2):
            assert anon.get("/v1/auth", headers=headers).status_code == 200
        for _ in range(2):
            assert anon.get("/v1/auth", headers=headers).status_code == 429
        assert report(client, key["id"])["total"] == ZERO  # nothing written before a flush
        flush(app)
        hourly = report(client, key["id"])
        daily = report(client, key["id"], granularity="day")
    assert hourly["data"] == [
        {"start": "2030-03-31T22:00:00Z", **ZERO, "valid": 3, "forbidden": 2},
        {"start": "2030-03-31T23:00:00Z", **ZERO, "valid": 2, "rate_limited": 2},
    ]
    total = {**ZERO, "valid": 5, "forbidden": 2, "rate_limited": 2}
    assert hourly["total"] == total
    assert daily == {"data": [{"start": "2030-03-31T00:00:00Z", **total}], "total": total}


def test_flushes_add_up_and_since_chooses_the_window(app, client, anon):
    with freeze_time(NOW) as clock:
        key = create(client)
        headers = bearer(key["api_key"])
        for _ in range(2):  # two flushes into the same hour add, never replace
            anon.get("/v1/auth", headers=headers)
            flush(app)
        clock.tick(timedelta(days=2))
        anon.get("/v1/auth", headers=headers)
        flush(app)
        assert report(client, key["id"])["total"]["valid"] == 1  # the last 24 hours
        assert report(client, key["id"], granularity="day")["total"]["valid"] == 3
        later = report(client, key["id"], granularity="day", since="2030-04-02T00:00:00Z")
        assert later["data"] == [{"start": "2030-04-02T00:00:00Z", **ZERO, "valid": 1}]


def test_unknown_keys_and_other_outcomes_are_not_counted(app, client, anon):
    key = create(client)
    client.delete(f"/v1/api-keys/{key['id']}")
    anon.get("/v1/auth", headers=bearer(key["api_key"]))  # revoked: 401
    anon.get("/v1/auth", headers=bearer("sk-" + "a" * 46))  # unknown
    flush(app)
    with app.app_context():
        assert db.session.scalars(select(KeyUsage)).all() == []


@pytest.mark.parametrize(
    "query",
    [
        {"granularity": "week"},
        {"granularity": ""},
        {"since": "yesterday"},
        {"since": "2030-13-01T00:00:00Z"},
        {"since": "99999-01-01T00:00:00Z"},
    ],
)
def test_bad_queries_are_400(client, query):
    key = create(client)
    answer = client.get(f"/v1/api-keys/{key['id']}/usage", query_string=query)
    assert answer.status_code == 400, answer.json
    assert answer.json["code"] == "bad_request"


def test_another_user_s_key_is_404_and_an_admin_sees_all(app, client, anon):
    bob = make_user(app, "bob", api_keys=True)
    bob_key_id, bob_secret = make_key(app, bob)
    owner_key = create(client)
    refused = anon.get(f"/v1/api-keys/{owner_key['id']}/usage", headers=bearer(bob_secret))
    assert (refused.status_code, refused.json["message"]) == (404, "api key not found")
    assert (
        anon.get(f"/v1/api-keys/{bob_key_id}/usage", headers=bearer(bob_secret)).status_code == 200
    )
    assert client.get(f"/v1/api-keys/{bob_key_id}/usage").status_code == 200  # the owner: admin
    assert client.get("/v1/api-keys/key_nothing/usage").status_code == 404
    assert anon.get(f"/v1/api-keys/{bob_key_id}/usage").status_code == 401


def test_old_hours_go_with_the_audit_retention(app, client, anon):
    with freeze_time(NOW) as clock:
        key = create(client)
        anon.get("/v1/auth", headers=bearer(key["api_key"]))
        flush(app)
        clock.tick(timedelta(days=364))
        anon.get("/v1/auth", headers=bearer(key["api_key"]))
        flush(app)
        clock.tick(timedelta(days=2))
        with app.app_context():
            assert purge.purge()["key_usage"] == 1
            assert [row.hour for row in db.session.scalars(select(KeyUsage))] == [
                NOW.replace(minute=0) + timedelta(days=364)
            ]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Any:
    monkeypatch.setenv("AUTHSVC_DATABASE_URL", database_url)
    monkeypatch.setenv("JWT_SECRET", "cli-test-secret-0123456789")
    return lambda *args: CliRunner().invoke(main, list(args))


def test_keys_usage_command(app, client, anon, cli):
    with freeze_time(NOW):
        key = create(client)
        anon.get("/v1/auth", headers=bearer(key["api_key"]))
        anon.get("/v1/auth", headers=bearer(key["api_key"]))
        flush(app)
        printed = cli("keys", "usage", key["id"], "--json")
        lines = cli("keys", "usage", key["id"], "--granularity", "day")
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["total"] == {**ZERO, "valid": 2}
    assert lines.output.splitlines()[-1].split() == [
        "total", "valid", "2", "rate_limited", "0", "usage_exceeded", "0", "forbidden", "0"
    ]  # fmt: skip
    missing = cli("keys", "usage", "key_nothing")
    assert missing.exit_code != 0 and "no key with id key_nothing" in missing.output


# Usage limits


def call(anon: Any, secret: str) -> Any:
    return anon.get("/v1/auth", headers=bearer(secret))


def test_a_limit_serves_exactly_remaining_then_429(app, client, anon):
    key = create(client, usage_limit={"remaining": 2, "refill": None})
    assert key["usage_limit"] == {"remaining": 2, "refill": None}
    first = call(anon, key["api_key"])
    assert first.status_code == 200
    assert first.json["key"]["usage_limit"] == {"remaining": 1, "refill": None}
    assert call(anon, key["api_key"]).status_code == 200
    refused = call(anon, key["api_key"])
    assert refused.status_code == 429
    assert refused.json["code"] == "rate_limit_exceeded"
    assert refused.json["message"] == "api key usage exhausted"
    for header in (
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    ):
        assert header in refused.headers
    assert client.get(f"/v1/api-keys/{key['id']}").json["usage_limit"]["remaining"] == 0
    verified = client.post("/v1/keys/verify", json={"key": key["api_key"], "path": "/v1/auth"})
    assert (verified.json["valid"], verified.json["code"]) == (False, "USAGE_EXCEEDED")
    assert verified.json["key"]["usage_limit"] == {"remaining": 0, "refill": None}
    flush(app)
    assert report(client, key["id"])["total"] == {**ZERO, "valid": 2, "usage_exceeded": 2}


def test_patch_sets_and_lifts_a_limit(client, anon):
    key = create(client)
    assert key["usage_limit"] is None
    patched = client.patch(f"/v1/api-keys/{key['id']}", json={"usage_limit": {"remaining": 1}})
    assert patched.json["usage_limit"] == {"remaining": 1, "refill": None}
    assert call(anon, key["api_key"]).status_code == 200
    assert call(anon, key["api_key"]).status_code == 429
    topped = client.patch(f"/v1/api-keys/{key['id']}", json={"usage_limit": {"remaining": 1}})
    assert topped.json["usage_limit"]["remaining"] == 1
    assert call(anon, key["api_key"]).status_code == 200
    assert call(anon, key["api_key"]).status_code == 429
    lifted = client.patch(f"/v1/api-keys/{key['id']}", json={"usage_limit": None})
    assert lifted.json["usage_limit"] is None
    assert all(call(anon, key["api_key"]).status_code == 200 for _ in range(3))
    renamed = client.patch(f"/v1/api-keys/{key['id']}", json={"name": "still free"})
    assert renamed.json["usage_limit"] is None


@pytest.mark.parametrize(
    "limit",
    [
        {"remaining": -1},
        {"remaining": "5"},
        {"remaining": 1.5},
        {"remaining": 10**12},
        {},
        {"remaining": 5, "refill": {"interval": "week", "amount": 5}},
        {"remaining": 5, "refill": {"interval": "day", "amount": 0}},
        {"remaining": 5, "refill": {"interval": "day"}},
        [],
        5,
    ],
)
def test_bad_limits_are_400(client, limit):
    answer = client.post("/v1/api-keys", json={"usage_limit": limit})
    assert answer.status_code == 400, answer.json


@pytest.mark.parametrize(
    ("interval", "refill_at"),
    [("day", datetime(2030, 4, 1, 0, 0)), ("month", datetime(2030, 4, 1, 0, 0))],
)
def test_refill_at_the_period_s_start(client, anon, interval, refill_at):
    with freeze_time(datetime(2030, 3, 31, 12, 0)) as clock:
        refill = {"interval": interval, "amount": 3}
        key = create(client, usage_limit={"remaining": 1, "refill": refill})
        assert call(anon, key["api_key"]).status_code == 200
        refused = call(anon, key["api_key"])
        assert refused.status_code == 429
        assert int(refused.headers["X-RateLimit-Reset"]) == epoch(refill_at)
        assert refused.headers["X-RateLimit-Limit"] == "3"
        clock.move_to(refill_at - timedelta(seconds=1))
        assert call(anon, key["api_key"]).status_code == 429
        clock.move_to(refill_at)
        assert client.get(f"/v1/api-keys/{key['id']}").json["usage_limit"]["remaining"] == 3
        served = [call(anon, key["api_key"]).status_code for _ in range(4)]
        assert served == [200, 200, 200, 429]


def test_a_monthly_refill_waits_for_the_first(client, anon):
    with freeze_time(datetime(2030, 4, 1, 12, 0)) as clock:
        refill = {"interval": "month", "amount": 2}
        key = create(client, usage_limit={"remaining": 0, "refill": refill})
        assert call(anon, key["api_key"]).status_code == 429
        clock.move_to(datetime(2030, 4, 30, 23, 59))
        assert call(anon, key["api_key"]).status_code == 429
        clock.move_to(datetime(2030, 5, 1, 0, 0))
        assert call(anon, key["api_key"]).status_code == 200


def test_the_purge_refills_before_any_request(app, client, anon):
    with freeze_time(datetime(2030, 3, 31, 12, 0)) as clock:
        key = create(
            client, usage_limit={"remaining": 0, "refill": {"interval": "day", "amount": 4}}
        )
        clock.move_to(datetime(2030, 4, 1, 0, 5))
        with app.app_context():
            purge.purge()
            row = db.session.get_one(KeyUsageLimit, key["id"])
            assert (row.remaining, row.period_start) == (4, datetime(2030, 4, 1))
            purge.purge()  # a refill happens once a period
            assert (
                db.session.get_one(KeyUsageLimit, key["id"], populate_existing=True).remaining == 4
            )
        assert call(anon, key["api_key"]).status_code == 200
        with app.app_context():
            purge.purge()
            assert db.session.get_one(KeyUsageLimit, key["id"]).remaining == 3


def test_taking_one_leaves_every_key_cache_alone(app, client, anon):
    key = create(client, usage_limit={"remaining": 5, "refill": None})

    def generation() -> int:
        with app.app_context():
            return db.session.get_one(Counter, "generation", populate_existing=True).value

    before = generation()
    for _ in range(3):
        assert call(anon, key["api_key"]).status_code == 200
    assert generation() == before


def test_rotation_keeps_what_is_left(client, anon):
    key = create(client, usage_limit={"remaining": 2, "refill": {"interval": "day", "amount": 9}})
    call(anon, key["api_key"])
    rotated = client.post(f"/v1/api-keys/{key['id']}/rotate", json={})
    assert rotated.status_code == 201, rotated.json
    assert rotated.json["usage_limit"] == {
        "remaining": 1,
        "refill": {"interval": "day", "amount": 9},
    }
    assert call(anon, rotated.json["api_key"]).status_code == 200
    assert call(anon, rotated.json["api_key"]).status_code == 429


# JSON log lines


def test_json_lines_hold_the_request_fields():
    record = logging.LogRecord("authsvc.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.__dict__.update(method="GET", path="/x", status=200, key_id=None)
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "GET /x" and line["level"] == "info"
    assert line["time"].endswith("Z")
    assert (line["method"], line["path"], line["status"], line["key_id"]) == (
        "GET",
        "/x",
        200,
        None,
    )


@pytest.mark.parametrize(
    "setting",
    [
        {"AUTHSVC_USAGE_FLUSH_INTERVAL": 0},
        {"AUTHSVC_USAGE_FLUSH_INTERVAL": -5},
        {"AUTHSVC_USAGE_FLUSH_INTERVAL": "10"},
        {"AUTHSVC_USAGE_FLUSH_INTERVAL": True},
        {"AUTHSVC_LOG_FORMAT": "xml"},
    ],
)
def test_bad_settings_refuse_to_start(make_app, setting):
    with pytest.raises(RuntimeError, match=next(iter(setting))):
        make_app(**setting)


def test_a_capped_key_cannot_mint_or_lift_limits(app, client, anon):
    capped = create(client, scopes=["api", "manage"], usage_limit={"remaining": 100})
    headers = bearer(capped["api_key"])
    for body in [{"name": "child"}, {"name": "child", "usage_limit": {"remaining": 1}}]:
        minted = anon.post("/v1/api-keys", json=body, headers=headers)
        assert minted.status_code == 403, minted.json
        assert (
            minted.json["message"]
            == "an api key with a usage limit cannot create keys or change limits"
        )
    for limit in [None, {"remaining": 10**6}]:
        lifted = anon.patch(
            f"/v1/api-keys/{capped['id']}", json={"usage_limit": limit}, headers=headers
        )
        assert lifted.status_code == 403, lifted.json
    renamed = anon.patch(
        f"/v1/api-keys/{capped['id']}", json={"name": "still capped"}, headers=headers
    )
    assert renamed.status_code == 200, renamed.json
    free = create(client, scopes=["api", "manage"])
    child = anon.post("/v1/api-keys", json={"name": "child"}, headers=bearer(free["api_key"]))
    assert child.status_code == 201, child.json
