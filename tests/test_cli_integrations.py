"""`authsvc pair` driven through its prompt against a live server; status; --json lists."""

import json
import subprocess
import time
from datetime import timedelta

import pytest
import requests
from click.testing import CliRunner

from authsvc import counters
from authsvc.cli import main
from authsvc.client import Client
from authsvc.clock import utcnow
from authsvc.extensions import db
from authsvc.models import Counter
from tests import test_cli, test_server
from tests.conftest import wrong_code
from tests.keyhelpers import change_key, make_key, make_user, owner_id, store_settings
from tests.test_server import BIN, ROOT, free_port, host_headers

cli = test_cli.cli  # the in-process command runner, on the test database
live = test_server.server  # a live gunicorn, on the test database


def start_pair(base: str, app_name: str) -> subprocess.Popen[str]:
    """``authsvc pair`` as a person runs it in a terminal, waiting at the prompt."""
    return subprocess.Popen(
        [str(BIN / "authsvc"), "pair", "--app", app_name, "--url", base],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def code_for(base: str, app_name: str) -> str:
    """The code the host sees for the app's challenge, once it has arrived."""
    for _ in range(100):
        listing = requests.get(
            f"{base}/v1/pairing/challenges", headers=host_headers(base), timeout=30
        ).json()["data"]
        codes = [c["code"] for c in listing if c["app_name"] == app_name]
        if codes:
            return str(codes[0])
        time.sleep(0.1)
    pytest.fail(f"no challenge for {app_name!r} arrived")


def test_pair_through_its_prompt(live):
    process = start_pair(live, "CLI App")
    out, err = process.communicate(code_for(live, "CLI App") + "\n", timeout=60)
    assert process.returncode == 0, err
    assert "Code shown by the host: " in err
    key = out.strip()
    assert key.startswith("sk-") and out.count(key) == 1 and key not in err
    assert Client(live, key).whoami()["key"]["name"] == "CLI App"


def test_pair_exit_codes(live):
    wrong = start_pair(live, "Typo App")
    code = code_for(live, "Typo App")
    out, err = wrong.communicate((wrong_code(code) + "\n") * 5, timeout=60)
    assert (wrong.returncode, out) == (1, "")
    assert "Wrong code: 1 attempt left" in err and "Error: invalid code" in err
    assert "Traceback" not in err
    nobody = start_pair(f"http://127.0.0.1:{free_port()}", "Lonely App")
    out, err = nobody.communicate("", timeout=60)
    assert (nobody.returncode, out) == (3, "")
    assert "cannot reach" in err
    usage = subprocess.run(
        [str(BIN / "authsvc"), "pair"], capture_output=True, text=True, timeout=60, check=False
    )
    assert usage.returncode == 2 and "--app" in usage.stderr


def test_status(cli, app, anon):
    user = make_user(app)
    make_key(app, user)
    change_key(app, make_key(app, user)[0], enabled=False)
    change_key(app, make_key(app, user)[0], revoked_at=utcnow())
    change_key(app, make_key(app, user)[0], expires_at=utcnow() - timedelta(seconds=1))
    assert anon.post("/v1/auth/challenges", json={"app_name": "Waiting"}).status_code == 201
    shown = json.loads(cli("status", "--json").stdout)
    assert shown["mode"] == "single-user"
    assert shown["database"].split(":")[0] in {"sqlite", "postgresql+psycopg"}
    assert shown["pending_challenges"] == 1
    assert shown["keys"] == {"total": 4, "active": 1, "disabled": 1, "expired": 1, "revoked": 1}
    assert (shown["pairing_enabled"], shown["pairing_locked"]) == (True, False)
    text = cli("status")
    assert text.exit_code == 0 and "pairing: on" in text.output
    assert "keys: 1 active, 1 disabled, 1 expired, 1 revoked (4 in all)" in text.output

    store_settings(app, pairing_enabled=False)
    assert json.loads(cli("status", "--json").stdout)["pairing_locked"] is False
    with app.app_context():
        counters.ensure(counters.PAIRING_FAILURES)
        db.session.get_one(Counter, counters.PAIRING_FAILURES).value = 20
        db.session.commit()
    locked = json.loads(cli("status", "--json").stdout)
    assert (locked["pairing_enabled"], locked["pairing_locked"]) == (False, True)
    assert "pairing: locked" in cli("status").output


def test_every_list_command_speaks_json(cli, app, anon):
    key_id, secret = make_key(app, owner_id(app), name="listed")
    created = anon.post("/v1/auth/challenges", json={"app_name": "Listed App"})
    listed_keys = json.loads(cli("keys", "list", "--json").stdout)
    assert [(k["id"], k["state"]) for k in listed_keys] == [(key_id, "active")]
    assert secret not in cli("keys", "list", "--json").stdout
    challenges = json.loads(cli("pairing", "list", "--json").stdout)
    assert [c["challenge_id"] for c in challenges] == [created.json["challenge_id"]]
    assert challenges[0]["code"].isdigit() and challenges[0]["app_name"] == "Listed App"
    assert [u["username"] for u in json.loads(cli("users", "list", "--json").stdout)] == ["owner"]
    events = json.loads(cli("audit", "tail", "--json").stdout)
    assert "challenge.created" in {event["type"] for event in events}


def test_status_without_a_database_fails_cleanly(monkeypatch):
    monkeypatch.setenv("AUTHSVC_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1
    assert "database unreachable" in result.output
