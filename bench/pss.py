"""A server's workers and their memory, from /proc.

RSS counts every page a worker maps, the pages it shares with the master and its sibling
workers (code imported before the fork) included. PSS divides each shared page among the
processes that map it: the sum over all processes is what the machine really spends, so PSS
is the fair figure per worker.
"""

import re
import subprocess
from pathlib import Path


def workers(pid: int) -> list[int]:
    """The children of the gunicorn master ``pid``: its workers."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return sorted(int(child) for child in found.stdout.split())


def kib_field(path: Path, name: str) -> float:
    """The ``name: N kB`` line of a /proc file, in MiB; nan when absent."""
    match = re.search(rf"^{name}:\s+(\d+) kB", path.read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")


def pss_mib(pid: int) -> float:
    """Proportional set size: the process's private pages plus its share of shared ones."""
    return kib_field(Path(f"/proc/{pid}/smaps_rollup"), "Pss")


def rss_mib(pid: int) -> float:
    """Resident set size: every page mapped, shared ones counted in full."""
    return kib_field(Path(f"/proc/{pid}/status"), "VmRSS")
