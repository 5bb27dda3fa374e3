"""The device flow's host side in Chromium: the pairing page lists the request, /ui/device
approves it from the code the app shows, and the app's OAuth library gets its key."""

from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.conftest import bearer
from tests.test_browser import (  # noqa: F401  (base, chromium, visit: fixtures)
    LIVE_WITHIN_MS,
    base,
    chromium,
    owner_token,
    visit,
)
from tests.test_oauth_live import library_client

sync_api = pytest.importorskip("playwright.sync_api")


def test_a_device_request_is_approved_on_the_device_page(visit: Any, base: str) -> None:  # noqa: F811
    visit.log_in()
    client = library_client(base, "<b>Kiosk</b>")
    started = client.authorize_device()
    card = visit.card("<b>Kiosk</b>")
    card.wait_for(timeout=LIVE_WITHIN_MS)
    assert card.locator(".code").is_hidden()
    assert card.locator(".device-note").is_visible()
    visit.fits_phone()

    visit.page.goto(started.verification_uri_complete)
    visit.shown()
    page = visit.page
    assert page.get_by_label("Code").input_value() == started.user_code
    page.get_by_role("button", name="Continue").click()
    request = page.locator("#device-request")
    request.wait_for()
    assert request.locator(".app-name").inner_text() == "<b>Kiosk</b>"  # text, not markup
    assert request.locator(".client-ip").inner_text() == "127.0.0.1"
    assert "python-requests" in request.locator(".user-agent").inner_text()
    assert request.locator(".scope").inner_text() == "api"
    page.get_by_label("Allowed endpoints").fill("/v1/auth")
    page.get_by_label("Expires").select_option(label="In 7 days")
    visit.fits_phone()
    page.get_by_role("button", name="Approve").click()
    sync_api.expect(page.locator("#notice")).to_have_text("Approved: <b>Kiosk</b>.")

    token = client.device_code(started)
    headers = bearer(token.access_token)
    assert requests.get(f"{base}/v1/auth", headers=headers, timeout=30).status_code == 200
    key = requests.get(f"{base}/v1/auth", headers=headers, timeout=30).json()["key"]
    assert (key["created_via"], key["allowed_endpoints"]) == ("device", ["/v1/auth"])
    assert key["expires_at"] is not None


def test_a_wrong_code_and_a_denial_on_the_device_page(visit: Any, base: str) -> None:  # noqa: F811
    visit.log_in()
    client = library_client(base, "Unwanted Device")
    started = client.authorize_device()
    page = visit.page
    page.goto(f"{base}/ui/device")
    visit.shown()
    page.get_by_label("Code").fill("bcdf bcdf")
    page.get_by_role("button", name="Continue").click()
    sync_api.expect(page.locator("#notice")).to_have_text("no device request has this code")
    assert page.locator("#device-request").is_hidden()
    page.get_by_label("Code").fill(started.user_code.lower().replace("-", " "))
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Deny").click()
    sync_api.expect(page.locator("#notice")).to_have_text("Denied: Unwanted Device.")
    from requests_oauth2client.exceptions import AccessDenied

    with pytest.raises(AccessDenied):
        client.device_code(started)


@pytest.mark.parametrize(
    ("next_page", "landing"),
    [
        ("//evil.example/ui/", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("/ui//evil.example", "/ui/"),
        ("/ui/\\\\evil.example", "/ui/"),
        ("/ui/keys", "/ui/keys"),
    ],
)
def test_login_returns_only_to_a_page_of_its_own(visit: Any, base: str, next_page, landing) -> None:  # noqa: F811
    query = urlencode({"next": next_page})
    visit.page.goto(f"{base}/ui/login?{query}")
    visit.page.get_by_label("Password").fill(owner_token())
    visit.page.get_by_role("button", name="Log in").click()
    visit.page.wait_for_url(f"{base}{landing}")


def test_a_device_link_survives_the_login(visit: Any, base: str) -> None:  # noqa: F811
    client = library_client(base, "Phone")
    started = client.authorize_device()
    visit.page.goto(started.verification_uri_complete)  # not logged in yet
    visit.page.wait_for_url(f"{base}/ui/login?*")
    visit.page.get_by_label("Password").fill(owner_token())
    visit.page.get_by_role("button", name="Log in").click()
    visit.page.wait_for_url(started.verification_uri_complete)
    visit.shown()
    assert visit.page.get_by_label("Code").input_value() == started.user_code
