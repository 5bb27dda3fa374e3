"""The request gate (SPEC §1): Host check, cross-site refusal and CORS, tried as an attacker."""

import pytest
from werkzeug.datastructures import Headers

from authsvc import create_app, sessions
from authsvc.gate import judge
from tests.keyhelpers import counts

# The contract's messages, spelled out: a changed text in the product must fail here.
CROSS_ORIGIN_REFUSED = "cross-origin request refused"
HOST_REFUSED = "host not allowed: add it to AUTHSVC_ALLOWED_HOSTS"

HOSTS_SERVED = [
    "127.0.0.1",
    "127.0.0.1:31009",
    "127.1.2.3:80",
    "[::1]:31009",
    "[::1]",
    "localhost",
    "LOCALHOST:31009",
    "localhost.",
    "localhost.:31009",
    "app.localhost",
    "a.b.localhost:8080",
    "192.168.1.20:31009",
    "0.0.0.0",
]
HOSTS_REFUSED = [
    "attacker.example",
    "attacker.example:31009",
    "localhost.attacker.example",
    "127.0.0.1.nip.io",
    "localhost:abc",
    "[::1",
    "[::1]x",
    "evil.example/.localhost",
    "",
    "localhost@evil.example",
    "notlocalhost",
]


def verdict(headers: dict[str, str], method: str = "GET", path: str = "/v1/auth", **lists):
    return judge(
        Headers(headers),
        method,
        path,
        "http",
        lists.get("hosts", []),
        lists.get("origins", []),
    )


@pytest.mark.parametrize("host", HOSTS_SERVED)
def test_host_served(host):
    assert verdict({"Host": host}).refusal is None


@pytest.mark.parametrize("host", HOSTS_REFUSED)
def test_host_refused(host):
    assert verdict({"Host": host}).refusal == HOST_REFUSED


def test_listed_hosts_and_the_wildcard():
    assert verdict({"Host": "auth.example.com:443"}, hosts=["Auth.Example.com"]).refusal is None
    assert verdict({"Host": "auth.example.com."}, hosts=["auth.example.com"]).refusal is None
    assert verdict({"Host": "other.example.com"}, hosts=["auth.example.com"]).refusal
    assert verdict({"Host": "anything.example"}, hosts=["*"]).refusal is None


ORIGINS_REFUSED = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame elsewhere
    {"Origin": "null", "Sec-Fetch-Site": "same-site"},  # another port's opaque frame
    {"Origin": "http://127.0.0.1:8080"},  # another port on this very machine
    {"Origin": "https://127.0.0.1:31009"},  # another scheme
    {"Origin": "http://localhost:31009"},  # another name for it
    {"Origin": "http://127.0.0.1:31009.evil.example"},
    {"Origin": "garbage"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://127.0.0.1:31009", "Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},  # to the JSON API
]


@pytest.mark.parametrize("headers", ORIGINS_REFUSED)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
def test_cross_site_refused(headers, method):
    answer = verdict({"Host": "127.0.0.1:31009", **headers}, method)
    assert answer.refusal == CROSS_ORIGIN_REFUSED


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, scripts, apps: no Origin, no Sec-Fetch-Site
        {"Origin": "http://127.0.0.1:31009"},
        {"Origin": "HTTP://127.0.0.1:31009", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
        # The pages' own form posted under Referrer-Policy: no-referrer.
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_same_origin_and_non_browser_pass(headers):
    answer = verdict({"Host": "127.0.0.1:31009", **headers}, "POST")
    assert answer.refusal is None and not answer.cross_origin


def test_default_ports_are_the_same_origin():
    assert verdict({"Host": "localhost", "Origin": "http://localhost:80"}).refusal is None


@pytest.mark.parametrize("path", ["/ui/", "/ui/keys", "/docs/", "/api/docs", "/"])
def test_links_to_the_web_pages_open(path):
    navigation = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert verdict({"Host": "localhost", **navigation}, "GET", path).refusal is None
    framed = {**navigation, "Sec-Fetch-Dest": "iframe"}
    assert verdict({"Host": "localhost", **framed}, "GET", path).refusal
    assert verdict({"Host": "localhost", **navigation}, "POST", path).refusal


def test_listed_origins_get_cors_without_credentials():
    listed = verdict(
        {
            "Host": "127.0.0.1:31009",
            "Origin": "http://localhost:3000",
            "Sec-Fetch-Site": "same-site",
        },
        origins=["http://localhost:3000"],
    )
    assert listed.refusal is None and listed.cors_origin == "http://localhost:3000"
    assert listed.cross_origin
    assert (
        verdict({"Host": "127.0.0.1", "Origin": "null"}, origins=["null"]).refusal
        == CROSS_ORIGIN_REFUSED
    )
    assert verdict(
        {"Host": "127.0.0.1", "Origin": "http://localhost:3000/"}, origins=["http://localhost:3000"]
    ).refusal


def test_a_listed_origin_never_passes_a_foreign_host():
    """The Host check comes first: listing an origin never serves a rebinding attacker."""
    origin = "http://localhost:3000"
    refused = verdict({"Host": "attacker.example", "Origin": origin}, origins=[origin])
    assert refused.refusal == HOST_REFUSED
    assert refused.cors_origin is None


# --- through the app --------------------------------------------------------------------------

HOST_ENDPOINTS = [
    ("get", "/"),
    ("get", "/health"),
    ("get", "/openapi.json"),
    ("post", "/v1/auth/challenges"),
    ("post", "/v1/auth/api_keys"),
    ("get", "/v1/pairing/challenges"),
    ("get", "/v1/settings"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/nothing-here"),
]


@pytest.mark.parametrize(("method", "path"), HOST_ENDPOINTS)
def test_foreign_host_refused_before_anything_else(app, client, method, path):
    before = counts(app)
    response = getattr(client, method)(
        path, json={"app_name": "x"}, headers={"Host": "attacker.example:31009"}
    )
    assert response.status_code == 403
    assert response.json == {
        "object": "error",
        "status": 403,
        "code": "forbidden",
        "message": HOST_REFUSED,
    }
    assert response.headers["Anytype-Version"] == "2025-11-08"
    assert counts(app) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:8080"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_refused_for_reads_and_writes(app, client, headers):
    before = counts(app)
    for method, path in HOST_ENDPOINTS:
        response = getattr(client, method)(
            path, json={"app_name": "x", "name": "x"}, headers=headers
        )
        assert (response.status_code, response.json["message"]) == (403, CROSS_ORIGIN_REFUSED)
        assert "AUTHSVC_CORS_ORIGINS" in response.json["hint"]
    text = client.post(
        "/v1/system/enable-multi-user",
        data='{"username": "attacker", "password": "pw"}',
        content_type="text/plain",
        headers=headers,
    )
    assert (text.status_code, text.json["message"]) == (403, CROSS_ORIGIN_REFUSED)
    assert counts(app) == before
    assert client.get("/v1/settings").json["pairing_enabled"] is True


def test_same_origin_browser_request_passes(client):
    response = client.get(
        "/v1/settings", headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    )
    assert response.status_code == 200


def test_cors_preflight_and_answer_for_a_listed_origin(make_app):
    app = make_app(AUTHSVC_CORS_ORIGINS=["http://localhost:3000"])
    client = app.test_client()
    origin = {"Origin": "http://localhost:3000"}
    preflight = client.options(
        "/v1/auth",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    allowed = preflight.headers["Access-Control-Allow-Headers"]
    assert {"Authorization", "Content-Type", "Anytype-Version"} <= set(allowed.split(", "))
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    answer = client.post("/v1/auth/challenges", json={"app_name": "Web app"}, headers=origin)
    assert answer.status_code == 201
    assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert "Origin" in answer.headers["Vary"]
    unlisted = client.options(
        "/v1/auth",
        headers={"Origin": "http://localhost:4000", "Access-Control-Request-Method": "GET"},
    )
    assert unlisted.status_code == 403
    assert "Access-Control-Allow-Origin" not in unlisted.headers


def test_listed_origin_never_rides_on_the_cookie(make_app):
    """A browser app authenticates with a key: the host's cookie does not count from elsewhere."""
    app = make_app(AUTHSVC_CORS_ORIGINS=["http://localhost:3000"])
    client = app.test_client()
    started = client.post("/v1/session", json={"password": sessions.owner_password(app)}).json
    page = {"X-CSRF-Token": started["csrf_token"]}
    assert client.get("/v1/settings", headers=page).status_code == 200  # the page, same origin
    from_app = {**page, "Origin": "http://localhost:3000"}
    assert client.get("/v1/settings", headers=from_app).status_code == 401
    assert client.get("/ui/keys", headers=from_app).status_code == 401  # nor a page


def test_env_lists_are_read(monkeypatch):
    monkeypatch.setenv("AUTHSVC_ALLOWED_HOSTS", "auth.example.com, other.example")
    monkeypatch.setenv("AUTHSVC_CORS_ORIGINS", "http://localhost:3000")
    app = create_app({"TESTING": True, "JWT_SECRET": "a-test-secret-123"})
    assert app.config["AUTHSVC_ALLOWED_HOSTS"] == ["auth.example.com", "other.example"]
    assert app.config["AUTHSVC_CORS_ORIGINS"] == ["http://localhost:3000"]


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("[::1]:31009", 200),
        ("127.0.0.1:8080", 200),
        ("localhost", 200),
        ("app.localhost.", 200),
        ("api.example.com", 200),
        ("API.example.com.", 200),
        ("evil.example", 403),
    ],
)
@pytest.mark.parametrize("path", ["/", "/health"])
def test_served_hosts_through_the_app(make_app, host, status, path):
    """The Host check as the app applies it: the header the client really sends decides."""
    app = make_app(AUTHSVC_ALLOWED_HOSTS=["api.example.com"])
    response = app.test_client().get(path, headers={"Host": host})
    assert response.status_code == status, (host, response.json)
    assert response.request.headers["Host"] == host  # the test client sent this very Host
    if status == 403:
        assert response.json["code"] == "forbidden"
        assert response.json["message"] == HOST_REFUSED
        assert HOST_REFUSED == "host not allowed: add it to AUTHSVC_ALLOWED_HOSTS"


def test_the_gate_runs_before_any_limit_counts(make_app):
    """Refused foreign-host requests never spend the challenge limit of the real apps."""
    app = make_app(AUTHSVC_CHALLENGE_RATE_LIMIT="2 per minute")
    app_client = app.test_client()
    for _ in range(3):
        refused = app_client.post(
            "/v1/auth/challenges", json={"app_name": "x"}, headers={"Host": "evil.example"}
        )
        assert (refused.status_code, refused.json["message"]) == (403, HOST_REFUSED)
    for _ in range(2):
        created = app_client.post("/v1/auth/challenges", json={"app_name": "real app"})
        assert created.status_code == 201, created.json
    assert app_client.post("/v1/auth/challenges", json={"app_name": "x"}).status_code == 429
