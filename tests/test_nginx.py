"""A real nginx running examples/nginx.conf in front of an echo upstream and a real authsvc."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.keyhelpers import make_key, make_org, make_user
from tests.test_server import ROOT, free_port, run_server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
EXAMPLE = ROOT / "examples" / "nginx.conf"
# The example's ports, replaced by free ones: the only change made to the file.
PORTS = {"proxy": "127.0.0.1:8080", "authsvc": "127.0.0.1:31009", "api": "127.0.0.1:8000"}

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK),
    reason="nginx is not installed: scripts/test installs nginx-light when run as root",
)


class Echo(BaseHTTPRequestHandler):
    """The upstream API: answers with the request line and headers it received, as JSON."""

    seen: list[dict[str, Any]]

    def answer(self) -> None:
        record = {
            "method": self.command,
            "path": self.path,
            "headers": [[name, value] for name, value in self.headers.items()],
        }
        self.seen.append(record)
        body = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not every request."""


@dataclass
class Proxy:
    """nginx's address and what the upstream has received so far."""

    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)

    def request(
        self, method: str, target: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Send the request target byte for byte (requests would normalise dot segments)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


@pytest.fixture
def echo() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The echo upstream on a free loopback port, in a thread."""
    seen: list[dict[str, Any]] = []
    handler = type("RecordingEcho", (Echo,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until nginx accepts connections, or fail with its error log."""
    for _ in range(100):
        if process.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nginx did not start:\n{log.read_text() if log.exists() else ''}")


@pytest.fixture
def proxy(make_app, database_url, tmp_path, echo) -> Iterator[Proxy]:
    """nginx with the shipped example, ports changed, in front of echo and a live authsvc."""
    make_app()  # so that the tables are emptied afterwards
    echo_port, seen = echo
    with run_server(database_url, tmp_path, AUTHSVC_TRUSTED_PROXIES="127.0.0.1") as base:
        port = free_port()
        config = EXAMPLE.read_text()
        for name, address in {
            "proxy": f"127.0.0.1:{port}",
            "authsvc": base.removeprefix("http://"),
            "api": f"127.0.0.1:{echo_port}",
        }.items():
            assert config.count(PORTS[name]) == 1, name
            config = config.replace(PORTS[name], address)
        (tmp_path / "nginx.conf").write_text(config)
        log = tmp_path / "nginx-error.log"
        command = [
            NGINX,
            "-p", str(tmp_path),
            "-c", str(tmp_path / "nginx.conf"),
            "-e", str(log),
            "-g", f"daemon off; pid {tmp_path / 'nginx.pid'};",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process, log)
            yield Proxy(port, seen)
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def public_key(app) -> str:
    """A key that may only GET /app/public (and below)."""
    return make_key(app, make_user(app), allowed_endpoints=["GET /app/public"])[1]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def header(record: dict[str, Any], name: str) -> list[str]:
    """Every value of a header the upstream received, whatever its case."""
    return [value for key, value in record["headers"] if key.lower() == name.lower()]


def test_a_valid_key_reaches_the_api_as_its_owner_only(proxy, public_key):
    forged = {
        **bearer(public_key),
        "X-Auth-User": "root",
        "x-auth-role": "admin",
        "X_Auth_User": "root",
        "X-Auth-Key-Id": "key_forged",
        "X-Auth-Organization": "org_victim",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-For": "203.0.113.9",
    }
    status, _, body = proxy.request("GET", "/app/public/page?x=1", forged)
    assert status == 200, body
    record = json.loads(body)
    assert record["path"] == "/app/public/page?x=1"
    assert header(record, "X-Auth-User") == ["alice"]
    assert header(record, "X-Auth-Role") == ["user"]
    assert header(record, "X-Auth-Key-Id") != ["key_forged"]
    assert len(header(record, "X-Auth-Key-Id")) == 1
    assert header(record, "X-Auth-User-Id")[0].startswith("usr_")
    # The key reaches every organization of its owner: authsvc sends an empty value, which
    # nginx drops, so the upstream sees no X-Auth-Organization at all, forged or not.
    assert header(record, "X-Auth-Organization") == []
    assert header(record, "X_Auth_User") == []
    assert header(record, "Authorization") == []


def test_no_key_is_401_with_the_challenge(proxy):
    status, headers, _ = proxy.request("GET", "/app/public")
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="authsvc"'
    status, headers, _ = proxy.request("GET", "/app/public", bearer("sk-" + "A" * 46))
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="authsvc", error="invalid_token"'
    assert proxy.seen == []


ENDPOINT_RULES = [
    ("GET", "/app/public", 200),
    ("GET", "/app/public/", 200),
    ("GET", "/app/public/a/b", 200),
    ("GET", "/app/admin", 403),
    ("GET", "/app/publicity", 403),
    ("POST", "/app/public", 403),
    ("DELETE", "/app/public", 403),
]


def test_endpoint_and_method_rules(proxy, public_key):
    # One nginx and one authsvc for the whole table: starting them is the slow part.
    for method, target, status in ENDPOINT_RULES:
        before = len(proxy.seen)
        assert proxy.request(method, target, bearer(public_key))[0] == status, (method, target)
        assert len(proxy.seen) == before + (status == 200), (method, target)


# Each of issue 9's bypasses: a request that must never reach the admin upstream.
BYPASSES = [
    ("GET", "/app/admin", {"X-Forwarded-Uri": "/app/public"}),
    ("GET", "/app/admin", {"X-Original-URI": "/app/public"}),
    ("DELETE", "/app/public", {"X-Forwarded-Method": "GET"}),
    ("DELETE", "/app/public", {"X-Original-Method": "GET"}),
    ("GET", "/app/admin", {"X-Forwarded-Uri": "/app/public", "X-Forwarded-Method": "GET"}),
    ("GET", "/app/admin/x%2f..%2f..%2fpublic", {}),
    ("GET", "/app/admin%2f..%2fpublic", {}),
    ("GET", "/app/admin/%252e%252e%252fpublic", {}),
    ("GET", "/app/admin/%2E%2E/public", {}),
    ("GET", "/app/public/..;/admin", {}),
    ("GET", "/app/public/../admin", {}),
    ("GET", "/app/public//admin", {}),
    ("GET", "/app/public/%2e%2e/admin", {}),
    ("GET", "/app/public\\..\\admin", {}),
    ("GET", "/app/public;/../admin", {}),
]


def test_every_bypass_is_refused(proxy, public_key):
    for method, target, extra in BYPASSES:
        status, _, body = proxy.request(method, target, {**bearer(public_key), **extra})
        assert status == 403, (method, target, extra, body)
    assert proxy.seen == []


def test_organization_scope_holds_in_any_spelling(proxy, app):
    user_id = make_user(app)
    mine = make_org(app, "Mine", user_id)
    other = make_org(app, "Other", user_id)
    _, scoped = make_key(app, user_id, organization_id=mine)
    for target, status in [
        (f"/v1/spaces/{mine}/objects", 200),
        (f"/V1/Spaces/{mine.upper()}", 200),
        (f"/V1/spaces/{other}/objects", 403),
        (f"/v1/Spaces/{other}/objects", 403),
        (f"/v1/spaces;/{other}", 403),
        (f"/v1/spaces/{mine}/..%2f{other}", 403),
    ]:
        assert proxy.request("GET", target, bearer(scoped))[0] == status, target
    forged = {**bearer(scoped), "X-Auth-Organization": other}
    status, _, body = proxy.request("GET", f"/v1/spaces/{mine}", forged)
    assert status == 200, body
    assert header(json.loads(body), "X-Auth-Organization") == [mine]  # replaced, not appended


def test_over_the_rate_limit_is_429_at_the_client(proxy, app):
    _, secret = make_key(app, make_user(app), rate_limit={"requests": 2, "per_seconds": 60})
    # Two workers count apart (memory storage): five requests put three on one of them.
    answers = [proxy.request("GET", "/app/x", bearer(secret)) for _ in range(5)]
    statuses = [status for status, _, _ in answers]
    assert set(statuses) == {200, 429}, statuses
    _, headers, body = next(answer for answer in answers if answer[0] == 429)
    assert 1 <= int(headers["Retry-After"]) <= 61
    assert headers["X-RateLimit-Limit"] == "2"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert int(headers["X-RateLimit-Reset"]) > 0
    assert json.loads(body)["code"] == "rate_limit_exceeded"
    assert len(proxy.seen) == statuses.count(200)
