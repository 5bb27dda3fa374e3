"""The OpenAPI document and Swagger UI (SPEC §6), served from local files only."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_server import run_server

DOCUMENT_PATHS = ["/openapi.json", "/schema/", "/docs/openapi.json"]
UI_PATHS = ["/api/docs", "/docs/"]
ASSETS = ["/docs/swagger/js/swagger-ui-bundle.js", "/docs/swagger/css/swagger-ui.css"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.mark.parametrize("path", DOCUMENT_PATHS)
def test_document_is_openapi_31(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Anytype-Version"] == "2025-11-08"
    document = response.json
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "authsvc"
    assert "post" in document["paths"]["/v1/auth/challenges"]
    assert "/openapi.json" not in document["paths"]  # the plumbing is not an operation


def test_yaml_is_the_same_document(client):
    response = client.get("/docs/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert response.headers["Anytype-Version"] == "2025-11-08"
    assert yaml.safe_load(response.get_data(as_text=True)) == client.get("/openapi.json").json


@pytest.mark.parametrize("path", UI_PATHS)
def test_swagger_ui_page(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Anytype-Version"] == "2025-11-08"
    page = response.get_data(as_text=True)
    assert '<script src="/ui/static/docs.js"></script>' in page
    assert "<script>" not in page  # no inline script: the policy forbids it
    assert "//" not in page.replace("http://www.w3.org", "")  # nothing from another host
    for asset in ASSETS:
        assert asset in page


@pytest.mark.parametrize("path", UI_PATHS)
def test_swagger_ui_sends_the_pages_security_headers(client, path):
    headers = client.get(path).headers
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("path", ASSETS)
def test_swagger_assets_are_served_locally(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype in {"text/javascript", "application/javascript", "text/css"}
    assert response.headers["Anytype-Version"] == "2025-11-08"
    response.close()


def test_asset_paths_cannot_escape(client):
    response = client.get("/docs/swagger/../plugins.py")
    assert response.status_code == 404
    assert response.json["code"] == "object_not_found"


@pytest.mark.parametrize("path", [*UI_PATHS, ASSETS[0]])
def test_disable_swagger_docs_hides_the_ui(make_app, path):
    response = make_app(DISABLE_SWAGGER_DOCS=True).test_client().get(path)
    assert response.status_code == 404
    assert response.json["object"] == "error"
    assert response.json["code"] == "object_not_found"
    assert response.headers["Anytype-Version"] == "2025-11-08"


def test_disable_swagger_docs_from_environment(make_app, monkeypatch):
    monkeypatch.setenv("DISABLE_SWAGGER_DOCS", "true")
    client = make_app().test_client()
    assert client.get("/docs/").status_code == 404
    # The document stays public: clients generate code from it.
    assert client.get("/openapi.json").status_code == 200


@pytest.fixture
def live_server(make_app: Any, database_url: str, tmp_path: Path) -> Iterator[str]:
    make_app()  # empties the tables the server's first request fills
    with run_server(database_url, tmp_path) as base:
        yield base


def test_swagger_ui_renders_in_a_real_browser(live_server):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    foreign: list[str] = []

    def local_only(route: Any) -> None:
        """Refuse every request to another host, so the page must work offline."""
        if route.request.url.startswith(live_server):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", local_only)
            page.goto(f"{live_server}/docs/")
            operation = page.locator(".opblock-summary-path", has_text="/v1/auth/challenges")
            operation.first.wait_for(state="visible", timeout=30_000)
            assert page.locator(".opblock").count() > 5
            assert "authsvc" in page.locator(".info .title").inner_text()
        finally:
            browser.close()
    assert foreign == []
