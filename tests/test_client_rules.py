"""The client's rules: no plain http to another machine, a key without its whitespace, answers
that are not authsvc's reported as such (by the client and by ``authsvc pair``), a wrong code
typed again."""

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from authsvc.client import ApiError, BadRequest, Client, InsecureURL, UnexpectedAnswer
from tests import test_server
from tests.conftest import wrong_code
from tests.test_cli_integrations import code_for, start_pair
from tests.test_server import ROOT, host_code, pair_live

live = test_server.server  # a live gunicorn, on the test database

REFUSED = [
    "http://example.com",
    "HTTP://EXAMPLE.COM:31009",
    "http://127.0.0.1.example.com",
    "http://localhost.example.com",
    "http://127.0.0.1@example.com",  # the user-info trick: the host is example.com
    "http://user:pw@10.0.0.1:31009/",
    "http://[::ffff:10.0.0.1]",
    "http://0x7f000001",  # not a loopback address to ipaddress: refused, the safe side
    " http://192.168.1.20:31009 ",
]
ALLOWED = [
    "http://127.0.0.1:31009",
    "http://127.8.9.10",
    "http://localhost:31009/",
    "http://LOCALHOST.",
    "http://[::1]:31009",
    "http://[::ffff:127.0.0.1]",
    "https://example.com",
]


@pytest.mark.parametrize("url", REFUSED)
def test_plain_http_to_another_machine_is_refused(url, monkeypatch):
    with pytest.raises(InsecureURL, match="allow_insecure=True"):
        Client(url, "sk-x")
    monkeypatch.setenv("AUTHSVC_URL", url)
    with pytest.raises(InsecureURL):
        Client()
    assert Client(url, "sk-x", allow_insecure=True).base_url == url.strip().rstrip("/")


@pytest.mark.parametrize("url", ALLOWED)
def test_this_machine_and_https_need_no_permission(url):
    assert Client(url, "sk-x").base_url == url.rstrip("/")


def test_pair_refuses_plain_http_to_another_machine_in_one_line():
    refused = subprocess.run(
        [str(test_server.BIN / "authsvc"), "pair", "--app", "X", "--url", "http://example.com"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "refusing plain http:// to example.com" in refused.stderr
    assert "--allow-insecure" in refused.stderr


def test_whitespace_around_a_key_is_dropped(live, monkeypatch):
    secret = pair_live(live)["api_key"]
    assert Client(live, f"  {secret}\n").whoami()["authenticated"] is True
    monkeypatch.setenv("AUTHSVC_API_KEY", f"\t{secret} \r\n")
    assert Client(live).api_key == secret
    assert Client(live).whoami()["authenticated"] is True
    assert Client(live, " \n").api_key is None


ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "html": (200, "text/html", b"<html><body>Welcome to nginx!</body></html>"),
    "html-500": (500, "text/html", b"<h1>Internal Server Error</h1>"),
    "text": (201, "text/plain", b"created"),
    "list": (201, "application/json", b"[1, 2]"),
    "no-field": (201, "application/json", b'{"id": "x"}'),
    "empty": (200, "application/json", b""),
}


class Stranger(BaseHTTPRequestHandler):
    """A server that is not authsvc: every request gets the answer chosen by its name."""

    answer: tuple[int, str, bytes]

    def reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, kind, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = reply

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(params=list(ANSWERS))
def stranger(request) -> Iterator[str]:
    handler = type("Chosen", (Stranger,), {"answer": ANSWERS[request.param]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_answer_that_is_not_authsvcs_is_reported_not_raised_raw(stranger):
    app = Client(stranger, retries=0)
    with pytest.raises(ApiError) as failed:
        app.pair("Lost App", lambda challenge_id: "1234")
    assert "authsvc" in failed.value.message
    if failed.value.status < 400:
        assert isinstance(failed.value, UnexpectedAnswer)
    paired = subprocess.run(
        [str(test_server.BIN / "authsvc"), "pair", "--app", "Lost App", "--url", stranger],
        cwd=ROOT,
        input="1234\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert paired.returncode == 1 and paired.stdout == ""
    assert "Traceback" not in paired.stderr
    (error,) = [line for line in paired.stderr.splitlines() if line.startswith("Error:")]
    assert "is this authsvc's address?" in error, paired.stderr


def test_a_wrong_code_can_be_typed_again(live):
    typing = start_pair(live, "Retyped")
    code = code_for(live, "Retyped")
    wrong = wrong_code(code)
    out, err = typing.communicate(f"{wrong}\n{wrong}\n{code}\n", timeout=60)
    assert typing.returncode == 0, err
    assert "Wrong code: 4 attempts left; type it again." in err
    assert "Wrong code: 3 attempts left; type it again." in err
    assert out.startswith("sk-") and Client(live, out).whoami()["key"]["name"] == "Retyped"


def test_the_client_asks_again_only_when_told_to(live):
    asked: list[str] = []
    told: list[int] = []

    def read_code(challenge_id: str) -> str:
        asked.append(challenge_id)
        code = host_code(live, challenge_id)
        return code if len(asked) > 1 else wrong_code(code)

    key = Client(live).pair("Told", read_code, on_wrong_code=told.append)
    assert told == [4] and len(asked) == 2 and len(set(asked)) == 1
    assert Client(live, key).whoami()["key"]["name"] == "Told"
    asked.clear()
    with pytest.raises(BadRequest) as wrong:
        Client(live).pair("Untold", read_code)
    assert wrong.value.body["attempts_left"] == 4 and len(asked) == 1
