"""authsvc.client against a real server process, and its retry rule against a failing one."""

import ast
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from authsvc import client as client_module
from authsvc.client import (
    ApiError,
    BadRequest,
    Client,
    ConnectionFailed,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    Unauthorized,
)
from tests import test_server
from tests.test_server import ROOT, free_port, host_code, host_headers

live = test_server.server  # the live-server fixture, as "live" here


def host(live: str) -> Client:
    """The host's side: the owner, with a session token where a key would go."""
    return Client(live, host_headers(live)["Authorization"].removeprefix("Bearer "))


def test_pair_then_use_the_key(live, monkeypatch):
    monkeypatch.setenv("AUTHSVC_URL", live)
    monkeypatch.delenv("AUTHSVC_API_KEY", raising=False)
    app = Client()
    seen: list[str] = []

    def read_code(challenge_id: str) -> str:
        seen.append(challenge_id)
        return host_code(live, challenge_id)

    key = app.pair("Client Test", read_code)
    assert key.startswith("sk-") and app.api_key == key and len(seen) == 1
    me = app.whoami()
    assert me["authenticated"] is True and me["key"]["name"] == "Client Test"
    assert me["key"]["created_via"] == "pairing"
    assert [space["object"] for space in app.spaces()] == ["space"]
    monkeypatch.setenv("AUTHSVC_API_KEY", key)
    assert Client().whoami()["key"]["id"] == me["key"]["id"]
    assert key not in repr(app)


def test_pairing_is_bound_to_the_verifier(live):
    app = Client(live)

    def redeem_elsewhere_first(challenge_id: str) -> int:
        code = host_code(live, challenge_id)
        stolen = requests.post(
            f"{live}/v1/auth/api_keys",
            json={"challenge_id": challenge_id, "code": code},
            timeout=30,
        )
        assert (stolen.status_code, stolen.json()["message"]) == (400, "invalid code_verifier")
        return int(code)  # a number is fine too: "0042" read as 42 still pairs

    assert app.pair("Bound App", redeem_elsewhere_first).startswith("sk-")


def test_wrong_code_and_finished_challenges(live):
    app = Client(live)
    with pytest.raises(BadRequest) as wrong:
        app.pair("Typo", lambda challenge_id: "99999")
    assert (wrong.value.status, wrong.value.code) == (400, "bad_request")
    assert wrong.value.message == "invalid code" and wrong.value.body["attempts_left"] == 4

    def deny(challenge_id: str) -> str:
        code = host_code(live, challenge_id)
        denied = requests.post(
            f"{live}/v1/pairing/challenges/{challenge_id}/deny",
            headers=host_headers(live),
            timeout=30,
        )
        assert denied.status_code == 204, denied.text
        return code

    with pytest.raises(Gone) as gone:
        app.pair("Denied", deny)
    assert (gone.value.status, gone.value.code, gone.value.message) == (
        410,
        "gone",
        "challenge denied",
    )
    assert app.api_key is None


def test_keys_create_list_revoke(live):
    owner = host(live)
    created = owner.create_key("From Python", allowed_endpoints=["GET /v1/spaces"])
    assert created["api_key"].startswith("sk-") and created["name"] == "From Python"
    listed = owner.list_keys()
    assert [key["id"] for key in listed] == [created["id"]]
    assert created["api_key"] not in str(listed)
    restricted = Client(live, created["api_key"])
    assert len(restricted.spaces()) == 1
    with pytest.raises(Forbidden) as refused:
        restricted.whoami()
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    assert refused.value.message == "endpoint not allowed for this api key"
    owner.revoke_key(created["id"])
    with pytest.raises(Unauthorized) as revoked:
        restricted.spaces()
    assert (revoked.value.status, revoked.value.message) == (401, "api key revoked")
    with pytest.raises(NotFound) as missing:
        owner.revoke_key("key_nonexistent")
    assert (missing.value.status, missing.value.code) == (404, "object_not_found")


def test_unknown_key_and_rate_limit(live):
    with pytest.raises(Unauthorized) as unknown:
        Client(live, "sk-" + "A" * 46).whoami()
    assert (unknown.value.code, unknown.value.message) == ("unauthorized", "invalid api key")
    limited = host(live).create_key("Slow", rate_limit={"requests": 1, "per_seconds": 60})
    app = Client(live, limited["api_key"])
    with pytest.raises(RateLimited) as over:
        for _ in range(5):  # two workers count apart: the third call is over in one of them
            app.whoami()
    assert over.value.status == 429 and over.value.code == "rate_limit_exceeded"
    assert over.value.retry_after is not None and 1 <= over.value.retry_after <= 61


def test_verify(live):
    owner = host(live)
    checked = owner.create_key("Checked", allowed_endpoints=["GET /app"])
    verifier = Client(live, owner.create_key("Verifier")["api_key"])
    verdict = verifier.verify(checked["api_key"], "GET", "/app/x")
    assert (verdict["valid"], verdict["code"]) == (True, "VALID")
    assert verifier.verify(checked["api_key"], "POST", "/app/x")["code"] == "FORBIDDEN"
    assert verifier.verify(checked["api_key"], "GET", "/app/public/..;/x")["code"] == "FORBIDDEN"
    assert verifier.verify("sk-nope")["code"] == "NOT_FOUND"


class Failing(BaseHTTPRequestHandler):
    """A server that always answers 503 and counts the requests by method."""

    counts: dict[str, int]

    def fail(self) -> None:
        self.counts[self.command] = self.counts.get(self.command, 0) + 1
        body = b'{"object": "error", "status": 503, "code": "service_unavailable", "message": "x"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = fail

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def failing() -> Iterator[tuple[str, dict[str, int]]]:
    counts: dict[str, int] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Counted", (Failing,), {"counts": counts}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", counts
    server.shutdown()
    server.server_close()


def test_only_safe_requests_are_retried(failing):
    base, counts = failing
    app = Client(base, "sk-x", retries=2)
    for call in (app.whoami, lambda: app.create_key("k"), lambda: app.revoke_key("key_1")):
        with pytest.raises(ApiError) as failed:
            call()
        assert (failed.value.status, failed.value.code) == (503, "service_unavailable")
    assert counts == {"GET": 3, "POST": 1, "DELETE": 3}


def test_a_closed_port_raises_connection_failed():
    app = Client(f"http://127.0.0.1:{free_port()}", "sk-x", timeout=5, retries=1)
    for call in (app.whoami, lambda: app.pair("Nobody Home", lambda challenge_id: "0000")):
        with pytest.raises(ConnectionFailed) as failed:
            call()
        assert isinstance(failed.value, ApiError)
        assert (failed.value.status, failed.value.code) == (0, "connection_failed")
        assert failed.value.timed_out is False and failed.value.body == {}
        assert isinstance(failed.value.__cause__, requests.ConnectionError)
        assert app.base_url in failed.value.message
    assert app.api_key == "sk-x"


class Hanging(BaseHTTPRequestHandler):
    """A server that reads a request, counts it by method and never answers."""

    counts: dict[str, int]
    release: threading.Event

    def hang(self) -> None:
        self.counts[self.command] = self.counts.get(self.command, 0) + 1
        self.release.wait(30)

    do_GET = do_POST = do_DELETE = hang

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def hanging() -> Iterator[tuple[str, dict[str, int]]]:
    counts: dict[str, int] = {}
    release = threading.Event()
    handler = type("Held", (Hanging,), {"counts": counts, "release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", counts
    release.set()
    server.shutdown()
    server.server_close()


def test_a_timeout_raises_connection_failed_and_only_safe_requests_retry(hanging):
    base, counts = hanging
    app = Client(base, "sk-x", timeout=0.3, retries=2)
    for call in (app.whoami, lambda: app.create_key("k"), lambda: app.revoke_key("key_1")):
        with pytest.raises(ConnectionFailed) as failed:
            call()
        assert (failed.value.status, failed.value.code) == (0, "connection_failed")
        assert failed.value.timed_out is True
        assert isinstance(failed.value.__cause__, requests.RequestException)
    # The POST may have been received: it is sent once; GET and DELETE are tried three times.
    assert counts == {"GET": 3, "POST": 1, "DELETE": 3}


def test_the_client_imports_nothing_from_the_server():
    tree = ast.parse((ROOT / "authsvc" / "client.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0] for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }  # fmt: skip
    assert "authsvc" not in imported and "" not in imported
    stdlib = {
        "base64",
        "hashlib",
        "ipaddress",
        "os",
        "secrets",
        "time",
        "collections",
        "typing",
        "urllib",
    }
    assert imported - stdlib == {
        "requests",
        "urllib3",
    }
    assert client_module.DEFAULT_URL == "http://127.0.0.1:31009"
