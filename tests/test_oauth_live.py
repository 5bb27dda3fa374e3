"""An off-the-shelf OAuth library pairs with a real server (2 gunicorn workers), and racing
polls of one device code yield one key, on SQLite and PostgreSQL."""

import subprocess
import time
from pathlib import Path

import pytest
import requests
from requests_oauth2client import BearerToken, OAuth2Client
from requests_oauth2client.exceptions import (
    AccessDenied,
    AuthorizationPending,
    ExpiredToken,
    SlowDown,
)
from sqlalchemy import func, select

from authsvc.client import BadRequest, Client
from authsvc.extensions import db
from authsvc.models import ApiKey
from tests import test_server
from tests.test_server import BIN, ROOT, all_at_once, host_headers

server = test_server.server  # the live gunicorn fixture, shared
RACERS = 12
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
README = Path(__file__).resolve().parent.parent / "README.md"


def library_client(base: str, client_id: str = "Library App") -> OAuth2Client:
    """What an app does knowing only the server's address (plain http on loopback: testing).

    The library's discovery skips ``device_authorization_endpoint``; it is passed on by hand.
    """
    url = f"{base}/.well-known/oauth-authorization-server"
    document = requests.get(url, timeout=30).json()
    return OAuth2Client.from_discovery_endpoint(
        url,
        issuer=base,
        client_id=client_id,
        testing=True,
        device_authorization_endpoint=document["device_authorization_endpoint"],
    )


def decide(base: str, user_code: str, action: str = "approve") -> requests.Response:
    return requests.post(
        f"{base}/v1/pairing/device",
        json={"user_code": user_code, "action": action},
        headers=host_headers(base),
        timeout=30,
    )


def test_a_library_pairs_calls_the_api_introspects_and_logs_out(server):
    client = library_client(server)
    started = client.authorize_device()
    assert started.verification_uri == f"{server}/ui/device"
    with pytest.raises(AuthorizationPending):
        client.device_code(started)
    with pytest.raises(SlowDown):  # again at once: sooner than the interval
        client.device_code(started)
    assert decide(server, started.user_code).json()["status"] == "approved"

    # The interval has grown to 10 s; a new device code shows the approved path without waiting.
    fresh = client.authorize_device()
    assert decide(server, fresh.user_code.lower()).status_code == 200
    token = client.device_code(fresh)
    assert isinstance(token, BearerToken)
    assert requests.get(f"{server}/v1/auth", auth=token, timeout=30).status_code == 200

    verdict = client.introspect_token(token, requests_kwargs={"headers": host_headers(server)})
    assert verdict["active"] is True
    assert verdict["client_id"] == "Library App"
    assert client.revoke_access_token(token) is True
    gone = requests.get(f"{server}/v1/auth", auth=token, timeout=30)
    assert (gone.status_code, gone.json()["message"]) == (401, "api key revoked")
    after = client.introspect_token(token, requests_kwargs={"headers": host_headers(server)})
    assert after == {"active": False}


def test_a_library_hears_the_denial(server):
    client = library_client(server, "Denied App")
    started = client.authorize_device()
    assert decide(server, started.user_code, "deny").json()["status"] == "denied"
    with pytest.raises(AccessDenied):
        client.device_code(started)


def race_polls(base: str, approve: bool) -> list[requests.Response]:
    """Start a device authorization, approve it or not, then poll it from 12 threads at once."""
    started = requests.post(
        f"{base}/oauth/device_authorization", data={"client_id": "Racer"}, timeout=30
    ).json()
    if approve:
        assert decide(base, started["user_code"]).status_code == 200
    form = {"grant_type": GRANT, "device_code": started["device_code"], "client_id": "Racer"}
    return all_at_once(
        RACERS, lambda _: requests.post(f"{base}/oauth/token", data=form, timeout=60)
    )


def test_racing_polls_pass_the_interval_once(server):
    answers = race_polls(server, approve=False)
    errors = sorted(answer.json()["error"] for answer in answers)
    assert errors == ["authorization_pending"] + ["slow_down"] * (RACERS - 1), errors


def test_racing_polls_of_one_device_code_yield_one_key(server, make_app):
    answers = race_polls(server, approve=True)

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [400] * (RACERS - 1), [answer.text for answer in answers]
    errors = {answer.json()["error"] for answer in answers if answer.status_code == 400}
    assert errors <= {"slow_down", "invalid_grant"}, errors
    with make_app().app_context():
        issued = select(func.count()).where(ApiKey.created_via == "device")
        assert db.session.scalar(issued) == 1


def readme_example() -> str:
    """The Python example of the README's section on OAuth libraries."""
    section = README.read_text().split("## Pairing with any OAuth library", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_pairs_as_written(server):
    def person(*words: object) -> None:
        """Stands in for the person who reads the printed code and approves it on the host."""
        assert decide(server, str(words[-1])).status_code == 200

    namespace: dict[str, object] = {"print": person}
    exec(readme_example().replace("http://127.0.0.1:31009", server), namespace)
    token = namespace["token"]
    assert isinstance(token, BearerToken)
    assert requests.get(f"{server}/v1/auth", auth=token, timeout=30).status_code == 200


class StopPolling(Exception):
    """Ends a client's polling from its wait, once the test has seen enough."""


def test_the_python_client_pairs_the_oauth_way(server):
    waits: list[float] = []
    app = Client(server)
    key = app.pair_device(
        "Client App",
        show=lambda started: decide(server, started["user_code"]),  # the person approves
        wait=waits.append,
    )
    assert waits == [5.0]
    assert app.whoami()["key"]["created_via"] == "device"
    assert Client(server, key).whoami()["key"]["name"] == "Client App"


def test_the_python_client_polls_politely_and_hears_a_denial(server):
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            raise StopPolling

    with pytest.raises(StopPolling):
        Client(server).pair_device("Patient App", show=lambda started: None, wait=wait)
    assert waits == [5.0, 5.0, 10.0]  # pending, then slow_down: 5 s more

    with pytest.raises(BadRequest) as denied:
        Client(server).pair_device(
            "Denied App",
            show=lambda started: decide(server, started["user_code"], "deny"),
            wait=lambda seconds: None,
        )
    assert (denied.value.code, denied.value.message) == (
        "access_denied",
        "the host denied the request",
    )


def test_authsvc_pair_device_from_the_shell(server):
    process = subprocess.Popen(
        [str(BIN / "authsvc"), "pair", "--app", "Shell Device", "--device", "--url", server],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = [process.stderr.readline() for _ in range(3)]
    assert lines[1] == f"On the host, open {server}/ui/device\n"
    user_code = lines[2].split()[-1]
    assert decide(server, user_code).status_code == 200
    out, err = process.communicate(timeout=60)  # one poll after the 5 s interval
    assert process.returncode == 0, err
    key = out.strip()
    assert key.startswith("sk-") and key not in err
    assert Client(server, key).whoami()["key"]["created_via"] == "device"


EXPIRY_POLLS = 60  # × 0.5 s: far beyond a 2 s life


def test_a_device_code_expires_on_a_real_server(make_app, database_url, tmp_path):
    """A short challenge life on a live server: the library hears expired_token, never a key.

    A real server's clock cannot be frozen, so this waits (boundedly) for the 2 s to pass.
    """
    make_app()
    with test_server.run_server(database_url, tmp_path, AUTHSVC_CHALLENGE_TTL="2") as base:
        client = library_client(base, "Short-Lived App")
        started = client.authorize_device()
        for _ in range(EXPIRY_POLLS):
            try:
                client.device_code(started)
            except (AuthorizationPending, SlowDown):
                time.sleep(0.5)
                continue
            except ExpiredToken:
                break
            pytest.fail("a key was issued for a request nobody approved")
        else:
            pytest.fail("the device code never expired")
        # Approving it now is too late: the code is no longer pending.
        assert decide(base, started.user_code).status_code == 404
