"""The server's workers: how many by default, and how much memory each one costs."""

import os
import re
from pathlib import Path

import pytest
import requests

from authsvc import address, server
from tests.test_server import run_server, serve_command

PSS_LIMIT_MIB = 60  # issue 21: proportional memory per worker, shared pages split


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 2), (3, 3), (4, 4), (8, 4), (64, 4)])
def test_one_worker_per_core_at_most_four(cores, workers):
    assert server.default_workers(cores) == workers


def test_this_machine_gets_a_worker_per_core_up_to_four():
    assert server.default_workers() == min(os.cpu_count() or 1, 4)


def pss_mib(pid: int) -> float:
    """The process's proportional set size: its own pages, and its share of shared ones."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
    assert match, rollup
    return int(match.group(1)) / 1024


def workers_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="Linux's /proc only")
def test_each_worker_of_authsvc_serve_stays_under_60_mib(make_app, database_url, tmp_path):
    make_app()
    with run_server(database_url, tmp_path, serve_command) as base:
        created = requests.post(f"{base}/v1/auth/challenges", json={"app_name": "Memory"})
        assert created.status_code == 201
        for _ in range(40):  # both workers answer
            assert requests.get(f"{base}/openapi.json", timeout=10).status_code == 200
        recorded = address.read(os.environ["AUTHSVC_INSTANCE_PATH"])
        assert recorded is not None
        workers = workers_of(recorded.pid)
        assert len(workers) == 2
        sizes = [pss_mib(worker) for worker in workers]
        print(f"PSS per worker: {', '.join(f'{size:.1f} MiB' for size in sizes)}")
        assert max(sizes) <= PSS_LIMIT_MIB, sizes
