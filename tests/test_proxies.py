"""AUTHSVC_TRUSTED_PROXIES: forwarded headers count only when a listed proxy sends them."""

import ipaddress

import pytest

from authsvc import create_app, proxies
from tests import conftest
from tests.conftest import bearer, host_client
from tests.keyhelpers import make_key, owner_id

CLIENT = "192.0.2.2"  # a client on the internet, reaching authsvc directly
PROXY = "10.9.9.9"
INSIDE = "10.1.2.3"  # inside the key's allowed range


def nets(*entries, unix=False):
    return proxies.Trusted(tuple(ipaddress.ip_network(entry) for entry in entries), unix)


@pytest.mark.parametrize(
    ("setting", "parsed"),
    [
        ("", nets()),
        (0, 0),
        ("2", 2),
        (1, 1),
        ("10.9.9.9", nets("10.9.9.9/32")),
        (" 10.9.9.9 , 172.16.0.0/12,::1 ", nets("10.9.9.9/32", "172.16.0.0/12", "::1/128")),
        ("unix", nets(unix=True)),
        (" UNIX ,10.9.9.9", nets("10.9.9.9/32", unix=True)),
    ],
)
def test_setting_forms(setting, parsed):
    assert proxies.parse(setting) == parsed


@pytest.mark.parametrize("setting", ["proxy.example", "10.0.0.0/33", "1,2", "unix:/run/x.sock"])
def test_a_wrong_setting_stops_the_start(database_url, setting):
    with pytest.raises(ValueError, match="AUTHSVC_TRUSTED_PROXIES"):
        create_app(conftest.base_config(database_url, AUTHSVC_TRUSTED_PROXIES=setting))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        (CLIENT, INSIDE, CLIENT),  # not a proxy: its header is ignored
        (PROXY, INSIDE, INSIDE),
        (PROXY, f"{INSIDE}, {CLIENT}", CLIENT),  # the client forged the first entry
        (PROXY, f"{CLIENT}, {PROXY}", CLIENT),  # two listed proxies in a row
        (PROXY, PROXY, PROXY),  # nothing but proxies: the leftmost
        (PROXY, "", PROXY),
    ],
)
def test_the_client_address_recorded(make_app, peer, forwarded, client):
    app = make_app(AUTHSVC_TRUSTED_PROXIES=PROXY)
    host = host_client(app)
    created = host.post(
        "/v1/auth/challenges",
        json={"app_name": "Seen"},
        headers={"X-Forwarded-For": forwarded},
        environ_base={"REMOTE_ADDR": peer},
    )
    assert created.status_code == 201, created.json
    (listed,) = host.get("/v1/pairing/challenges").json["data"]
    assert listed["client_ip"] == client


def whoami(client, secret, peer, forwarded=None):
    headers = bearer(secret)
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return client.get("/v1/auth", headers=headers, environ_base={"REMOTE_ADDR": peer})


@pytest.mark.parametrize("setting", ["", PROXY, f"{PROXY},127.0.0.0/8", "unix"])
def test_a_direct_client_cannot_pass_allowed_ips_by_forging(make_app, setting):
    app = make_app(AUTHSVC_TRUSTED_PROXIES=setting)
    _, secret = make_key(app, owner_id(app), allowed_ips=["10.0.0.0/8"])
    refused = whoami(app.test_client(), secret, CLIENT, INSIDE)
    assert refused.status_code == 403, refused.json
    assert refused.json["message"] == "client address not allowed for this api key"


def test_a_listed_proxy_is_believed(make_app):
    app = make_app(AUTHSVC_TRUSTED_PROXIES=f"{PROXY}/32")
    _, secret = make_key(app, owner_id(app), allowed_ips=["10.0.0.0/8"])
    client = app.test_client()
    assert whoami(client, secret, PROXY, INSIDE).status_code == 200
    assert whoami(client, secret, PROXY, f"{INSIDE}, {CLIENT}").status_code == 403


def test_a_hop_count_keeps_its_meaning(make_app):
    app = make_app(AUTHSVC_TRUSTED_PROXIES="1")
    _, secret = make_key(app, owner_id(app), allowed_ips=["10.0.0.0/8"])
    client = app.test_client()
    assert whoami(client, secret, PROXY, f"{CLIENT}, {INSIDE}").status_code == 200
    assert whoami(client, secret, PROXY, f"{INSIDE}, {CLIENT}").status_code == 403


@pytest.mark.parametrize("setting", ["", PROXY])
def test_forging_does_not_escape_the_pending_cap(make_app, setting):
    app = make_app(AUTHSVC_TRUSTED_PROXIES=setting, AUTHSVC_MAX_PENDING_PER_CLIENT=3)
    client = app.test_client()
    statuses = [
        client.post(
            "/v1/auth/challenges",
            json={"app_name": f"App {i}"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
            environ_base={"REMOTE_ADDR": CLIENT},
        ).status_code
        for i in range(6)
    ]
    assert statuses == [201] * 3 + [429] * 3


def test_a_listed_proxy_counts_each_client_apart(make_app):
    app = make_app(AUTHSVC_TRUSTED_PROXIES=PROXY, AUTHSVC_MAX_PENDING_PER_CLIENT=1)
    client = app.test_client()
    statuses = [
        client.post(
            "/v1/auth/challenges",
            json={"app_name": "App"},
            headers={"X-Forwarded-For": address},
            environ_base={"REMOTE_ADDR": PROXY},
        ).status_code
        for address in ["203.0.113.1", "203.0.113.2", "203.0.113.1"]
    ]
    assert statuses == [201, 201, 429]


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "", CLIENT])
def test_unix_trusts_no_address_at_all(make_app, peer):
    """Every local program reaches 127.0.0.1; only the proxy reaches the socket."""
    app = make_app(AUTHSVC_TRUSTED_PROXIES="unix")
    _, secret = make_key(app, owner_id(app), allowed_ips=["10.0.0.0/8"])
    refused = whoami(app.test_client(), secret, peer, INSIDE)
    assert refused.status_code == 403, refused.json
