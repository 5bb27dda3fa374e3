"""examples/traefik.yml, applied as Traefik's ForwardAuth applies it, to the real app.

Traefik is not packaged for Debian, so ForwardAuth's documented steps are replayed here from the
example's own settings: only ``authRequestHeaders`` go to authsvc, X-Forwarded-Method/-Uri are
set from the real request (``trustForwardHeader: false``), a 2xx copies ``authResponseHeaders``
onto the upstream request over any the client sent, any other answer goes back as it is.
"""

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.keyhelpers import make_key, make_user
from tests.test_server import ROOT

EXAMPLE = ROOT / "examples" / "traefik.yml"
CLIENT_IP = "192.0.2.10"


@pytest.fixture
def app(make_app):
    """authsvc as the example says to run it: behind one proxy."""
    return make_app(AUTHSVC_TRUSTED_PROXIES="127.0.0.1")


@pytest.fixture
def middleware() -> dict[str, Any]:
    config = yaml.safe_load(EXAMPLE.read_text())["http"]
    assert config["routers"]["api"]["middlewares"] == ["authsvc"]
    assert config["services"]["api"]["loadBalancer"]["servers"] == [
        {"url": "http://127.0.0.1:8000"}
    ]
    forward = config["middlewares"]["authsvc"]["forwardAuth"]
    assert urlsplit(forward["address"]).netloc == "127.0.0.1:31009"
    return forward  # type: ignore[no-any-return]


def through_traefik(
    client: FlaskClient, forward: dict[str, Any], method: str, target: str, headers: dict[str, str]
) -> tuple[TestResponse, dict[str, str] | None]:
    """authsvc's answer, and the headers the upstream would get (None when refused)."""
    passed = {name.lower() for name in forward.get("authRequestHeaders", [])}
    sent = {name: value for name, value in headers.items() if name.lower() in passed}
    if not forward["trustForwardHeader"]:
        sent.update(
            {
                "X-Forwarded-Method": method,
                "X-Forwarded-Uri": target,
                "X-Forwarded-Host": "api.localhost",
                "X-Forwarded-Proto": "http",
                "X-Forwarded-For": CLIENT_IP,
            }
        )
    answer = client.get(urlsplit(forward["address"]).path, headers=sent)
    if not 200 <= answer.status_code < 300:
        return answer, None
    copied = {name.lower() for name in forward["authResponseHeaders"]}
    upstream = {name: value for name, value in headers.items() if name.lower() not in copied}
    for name in forward["authResponseHeaders"]:
        if name in answer.headers:
            upstream[name] = answer.headers[name]
    return answer, upstream


@pytest.fixture
def public_key(app) -> str:
    """A key for GET /app/public, from the client's network only."""
    return make_key(
        app, make_user(app), allowed_endpoints=["GET /app/public"], allowed_ips=["192.0.2.0/24"]
    )[1]


def test_the_owner_reaches_the_api_and_forged_identity_is_replaced(app, middleware, public_key):
    forged = {
        "Authorization": f"Bearer {public_key}",
        "x-auth-user": "root",
        "X-Auth-Role": "admin",
    }
    answer, upstream = through_traefik(
        app.test_client(), middleware, "GET", "/app/public/x?y=1", forged
    )
    assert answer.status_code == 200 and upstream is not None
    assert upstream["X-Auth-User"] == "alice" and upstream["X-Auth-Role"] == "user"
    assert "x-auth-user" not in upstream


@pytest.mark.parametrize(
    ("method", "target", "extra"),
    [
        ("GET", "/app/admin", {"X-Original-URI": "/app/public"}),
        ("GET", "/app/admin", {"X-Forwarded-Uri": "/app/public"}),
        ("DELETE", "/app/public", {"X-Original-Method": "GET"}),
        ("GET", "/app/public/..;/admin", {}),
        ("GET", "/app/admin%2f..%2fpublic", {}),
    ],
)
def test_bypasses_are_refused(app, middleware, public_key, method, target, extra):
    headers = {"Authorization": f"Bearer {public_key}", **extra}
    answer, upstream = through_traefik(app.test_client(), middleware, method, target, headers)
    assert answer.status_code == 403 and upstream is None


def test_refusals_reach_the_client_as_authsvc_gave_them(app, middleware):
    missing, _ = through_traefik(app.test_client(), middleware, "GET", "/app/x", {})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="authsvc"'
    _, secret = make_key(app, make_user(app), rate_limit={"requests": 1, "per_seconds": 60})
    headers = {"Authorization": f"Bearer {secret}"}
    client = app.test_client()
    assert through_traefik(client, middleware, "GET", "/app/x", headers)[0].status_code == 200
    limited, _ = through_traefik(client, middleware, "GET", "/app/x", headers)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
