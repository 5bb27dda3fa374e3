"""The keys page's usage limit field and usage charts, in Chromium on a real gunicorn."""

import time
from pathlib import Path

import requests

from tests.conftest import bearer
from tests.test_browser import (
    UPDATE_SCREENSHOTS,
    Visit,
    chromium,  # noqa: F401  (fixture)
    created_key,
    sync_api,
)
from tests.test_server import run_server

RELOADS = 100  # × 0.2 s: the server writes counts every second here


def test_a_capped_key_s_usage_shows_on_the_keys_page(chromium, make_app, database_url, tmp_path):  # noqa: F811
    make_app()
    with run_server(database_url, tmp_path, AUTHSVC_USAGE_FLUSH_INTERVAL="1") as base:
        visit = Visit(chromium, base)
        visit.log_in()
        page = visit.page
        page.goto(f"{base}/ui/keys")
        page.get_by_label("Name", exact=True).fill("metered bot")
        page.get_by_label("Allowed endpoints", exact=True).fill("/v1/auth")
        page.get_by_label("Usage limit", exact=True).fill("3")
        page.get_by_label("requests, refilled", exact=True).select_option(label="every day")
        key_id, secret = created_key(page, "metered bot")
        statuses = [
            requests.get(f"{base}{path}", headers=bearer(secret), timeout=30).status_code
            for path in ["/v1/auth"] * 5 + ["/v1/spaces"]
        ]
        assert statuses == [200, 200, 200, 429, 429, 403]

        usage = page.locator(f'article.usage-key[data-key-id="{key_id}"]')
        day = usage.locator("figure.usage-chart").first
        for _ in range(RELOADS):
            page.goto(f"{base}/ui/keys")
            if "6 requests" in day.locator(".usage-total").inner_text():
                break
            time.sleep(0.2)
        sync_api.expect(usage.locator(".usage-limit")).to_have_text(
            "Usage limit: 0 left, back to 3 every day"
        )
        for chart, caption in zip(
            usage.locator("figure.usage-chart").all(),
            ["Last 24 hours: 6 requests", "Last 30 days: 6 requests"],
            strict=True,
        ):
            sync_api.expect(chart.locator(".usage-total")).to_have_text(caption)
            counts = {
                outcome.inner_text().rsplit(" ", 1)[0]: outcome.locator(".count").inner_text()
                for outcome in chart.locator(".outcome").all()
            }
            assert counts == {
                "valid": "3",
                "rate limited": "0",
                "usage exceeded": "2",
                "forbidden": "1",
            }
            # One drawn bar holds the hour's (or day's) six requests, in three parts.
            assert chart.locator("svg rect[class^=outcome-]").count() == 3
            assert "valid 3, rate limited 0, usage exceeded 2, forbidden 1" in (
                chart.locator("svg title").last.text_content() or ""
            )
        shot = tmp_path / "usage.png"
        usage.screenshot(path=str(shot))
        if UPDATE_SCREENSHOTS:
            Path(__file__).resolve().parent.parent.joinpath("docs", "usage.png").write_bytes(
                shot.read_bytes()
            )
        visit.fits_phone()
        visit.context.close()
        assert visit.foreign == [] and visit.errors == []
