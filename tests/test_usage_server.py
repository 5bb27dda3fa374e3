"""Usage, usage limits, metrics and JSON logs against a real gunicorn with two workers."""

import json
import os
import time
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from authsvc import usage
from tests.conftest import bearer
from tests.test_server import (  # noqa: F401  (server: fixture)
    BIN,
    all_at_once,
    host_headers,
    pair_live,
    run_server,
    server,
)

FLUSH_POLLS = 300  # × 0.1 s: the flush thread writes every second in these tests
SPREAD_TRIES = 400  # fresh connections, until the second worker has taken one


def counting_workers(folder: Path) -> set[str]:
    """The workers (pids) that have written a counter to the metrics folder."""
    return {name.rsplit("_", 1)[1] for name in os.listdir(folder) if name.startswith("counter_")}


def totals(make_app: Any, key_id: str) -> dict[str, int]:
    with make_app().app_context():
        return usage.report(key_id, "day", None)["total"]  # type: ignore[no-any-return]


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by the client's own parser."""
    scraped = requests.get(f"{base}/metrics", headers=host_headers(base), timeout=30)
    assert scraped.status_code == 200, scraped.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }


def test_counts_and_metrics_are_exact_over_both_workers(
    make_app, database_url, redis_url, tmp_path
):
    make_app()
    expected = {"valid": 10, "rate_limited": 3, "usage_exceeded": 0, "forbidden": 4}
    with run_server(
        database_url,
        tmp_path,
        AUTHSVC_RATELIMIT_STORAGE_URI=redis_url,
        AUTHSVC_USAGE_FLUSH_INTERVAL="1",
    ) as base:
        issued = pair_live(base)
        limits = {
            "allowed_endpoints": ["/v1/auth"],
            "rate_limit": {"requests": 10, "per_seconds": 86400},
        }
        patched = requests.patch(
            f"{base}/v1/api-keys/{issued['key_id']}",
            json=limits,
            headers=host_headers(base),
            timeout=30,
        )
        assert patched.status_code == 200, patched.text
        key = bearer(issued["api_key"])
        statuses = [
            requests.get(f"{base}/v1/auth", headers=key, timeout=30).status_code for _ in range(10)
        ]
        statuses += [
            requests.get(f"{base}/v1/spaces", headers=key, timeout=30).status_code for _ in range(4)
        ]
        statuses += [
            requests.get(f"{base}/v1/auth", headers=key, timeout=30).status_code for _ in range(3)
        ]
        assert statuses == [200] * 10 + [403] * 4 + [429] * 3

        # Unknown keys until both workers have counted, so /metrics must sum two files.
        metrics_folder = Path(os.environ["AUTHSVC_INSTANCE_PATH"]) / "metrics"
        unknown = 0
        while len(counting_workers(metrics_folder)) < 2 and unknown < SPREAD_TRIES:
            refused = requests.get(f"{base}/v1/auth", headers=bearer("nope"), timeout=30)
            assert refused.status_code == 401
            unknown += 1
        assert len(counting_workers(metrics_folder)) == 2, os.listdir(metrics_folder)

        metrics = samples(base)
        assert (
            metrics.get(("authsvc_key_verifications_total", (("outcome", "not_found"),)), 0)
            == unknown
        )
        for outcome, count in expected.items():
            name = ("authsvc_key_verifications_total", (("outcome", outcome),))
            assert metrics.get(name, 0) == count, (outcome, metrics)
        assert metrics["authsvc_pairings_total", (("result", "succeeded"),)] == 1
        assert metrics["authsvc_keys_active", ()] == 1
        whoami = 17 + unknown
        assert (
            metrics["authsvc_request_duration_seconds_count", (("endpoint", "whoami"),)] == whoami
        )

        # The flush thread writes within its interval, without a shutdown.
        for _ in range(FLUSH_POLLS):
            if totals(make_app, issued["key_id"]) == expected:
                break
            time.sleep(0.1)
        assert totals(make_app, issued["key_id"]) == expected
    # Stopping the server flushes again: nothing is counted twice.
    assert totals(make_app, issued["key_id"]) == expected


def test_metrics_need_a_session_or_a_manage_key(server):  # noqa: F811
    issued = pair_live(server)  # a pairing key has the api scope only
    assert requests.get(f"{server}/metrics", timeout=30).status_code == 401
    refused = requests.get(f"{server}/metrics", headers=bearer(issued["api_key"]), timeout=30)
    assert refused.status_code == 403
    text = requests.get(f"{server}/metrics", headers=host_headers(server), timeout=30).text
    assert issued["key_id"] not in text and issued["api_key"] not in text


def test_parallel_requests_never_overdraw_a_usage_limit(make_app, database_url, tmp_path):
    make_app()
    with run_server(database_url, tmp_path) as base:
        issued = pair_live(base)
        patched = requests.patch(
            f"{base}/v1/api-keys/{issued['key_id']}",
            json={"usage_limit": {"remaining": 5, "refill": None}},
            headers=host_headers(base),
            timeout=30,
        )
        assert patched.status_code == 200, patched.text
        key = bearer(issued["api_key"])
        answers = all_at_once(
            20, lambda _: requests.get(f"{base}/v1/auth", headers=key, timeout=30)
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] * 5 + [429] * 15
        refusals = {answer.json()["message"] for answer in answers if answer.status_code == 429}
        assert refusals == {"api key usage exhausted"}
    assert totals(make_app, issued["key_id"]) == {
        "valid": 5,
        "rate_limited": 0,
        "usage_exceeded": 15,
        "forbidden": 0,
    }


def test_json_log_lines_parse_and_hold_no_secret(make_app, database_url, tmp_path):
    make_app()
    with run_server(database_url, tmp_path, AUTHSVC_LOG_FORMAT="json") as base:
        legacy = requests.post(f"{base}/v1/auth/display_code?app_name=Legacy", timeout=30)
        challenge_id = legacy.json()["challenge_id"]
        issued = pair_live(base)
        assert requests.get(f"{base}/v1/auth?x=1", headers=bearer(issued["api_key"]), timeout=30).ok
        assert requests.get(f"{base}/v1/nothing", timeout=30).status_code == 404
    (log,) = tmp_path.glob("server-*.log")
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"time", "level", "message"} <= set(line) for line in lines)
    assert any(line["message"].startswith("Booting worker") for line in lines)  # gunicorn's own
    used = [line for line in lines if line.get("path") == "/v1/auth"]
    assert len(used) == 1
    assert used[0]["method"] == "GET" and used[0]["status"] == 200
    assert used[0]["key_id"] == issued["key_id"] and used[0]["user_id"]
    assert used[0]["client_ip"] == "127.0.0.1" and used[0]["duration_ms"] >= 0
    assert any(line.get("path") == "/v1/nothing" and line["status"] == 404 for line in lines)
    assert issued["api_key"] not in text and challenge_id not in text and "x=1" not in text


def serve_two_workers(port: int) -> list[str]:
    """``authsvc serve --workers 2``: the master empties the metrics directory before forking."""
    return [str(BIN / "authsvc"), "serve", "--workers", "2", "--port", str(port)]


def test_authsvc_serve_sums_its_workers_too(make_app, database_url, tmp_path):
    make_app()
    stale = Path(os.environ["AUTHSVC_INSTANCE_PATH"]) / "metrics" / "counter_999999.db"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"left over from an earlier run")
    with run_server(database_url, tmp_path, serve_two_workers) as base:
        assert not stale.exists()  # emptied at start
        issued = pair_live(base)
        key = bearer(issued["api_key"])
        for _ in range(12):
            assert requests.get(f"{base}/v1/auth", headers=key, timeout=30).status_code == 200
        requests.get(f"{base}/v1/auth", headers=bearer("sk-" + "x" * 46), timeout=30)
        metrics = samples(base)
    assert metrics["authsvc_key_verifications_total", (("outcome", "valid"),)] == 12
    assert metrics["authsvc_key_verifications_total", (("outcome", "not_found"),)] == 1
    assert totals(make_app, issued["key_id"])["valid"] == 12
