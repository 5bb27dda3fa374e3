"""Where a worker's time goes, scenario by scenario: ``python -m bench.profile`` (``make profile``).

Starts ``authsvc serve --workers 1`` on a temporary instance (SQLite, or ``--database URL``,
WIPED first, as bench/http.py does) and drives each scenario of bench/scenarios.py with wrk
while py-spy samples the worker (``--rate`` Hz, raw collapsed stacks). For each scenario it
prints the functions of authsvc and the libraries under it (Flask, werkzeug, SQLAlchemy,
limits, the database drivers, json) with the largest inclusive share of the samples, and each
one's own (self) share. gunicorn's loop and the threading frames under every stack say nothing
and are left out.

py-spy sees Python frames only: time in C (sqlite3, hashlib, a socket) counts as its Python
caller's own time. Threads waiting (on the database, for a request) are not sampled, so the
shares are of CPU time, not of latency. The profiler slows the worker: compare shares, not
req/s, with ``make bench``.
"""

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .http import BIN, WARM_UP, prepared, running_server
from .pss import workers
from .scenarios import scenarios
from .seeding import seed
from .wrk import Figures, Scenario, check, find_wrk, run_wrk

PACKAGES = {
    *("authsvc", "flask", "flask_openapi3", "flask_sqlalchemy", "werkzeug", "pydantic"),
    *("sqlalchemy", "limits", "sqlite3", "psycopg", "redis", "json"),
}
# authsvc's gunicorn glue: gunicorn's own loop runs under these frames.
GLUE = {"authsvc/server.py", "authsvc/worker.py", "authsvc/cli/serving.py"}
# Leaf frames of threads blocked in C that py-spy does not take for idle: gunicorn's threads
# waiting for a request or an event. Their samples are dropped, not shared out.
WAITS = {
    "_worker (concurrent/futures/thread.py)",
    "Condition.wait (threading.py)",
    "EpollSelector.select (selectors.py)",
}
ELSEWHERE = 4  # the largest own shares outside PACKAGES, named on one line
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")


@dataclass
class Profile:
    """Sample counts: in all, per frame anywhere on the stack, per frame on top of it; and the
    waiting samples left out of them."""

    samples: int
    waiting: int
    inclusive: Counter[str]
    own: Counter[str]


def find_py_spy() -> str:
    """py-spy's path, from the virtualenv or PATH; exit 2 when missing."""
    found = BIN / "py-spy"
    if found.exists():
        return str(found)
    on_path = shutil.which("py-spy")
    if on_path is None:
        raise SystemExit("py-spy is missing: pip install py-spy (make profile does)")
    return on_path


def read_profile(path: Path) -> Profile:
    """py-spy's raw output: one ``frame;frame;… count`` line per distinct stack."""
    profile = Profile(0, 0, Counter(), Counter())
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        if frames[-1] in WAITS:
            profile.waiting += samples
            continue
        profile.samples += samples
        profile.inclusive.update(dict.fromkeys(frames, samples))  # recursion counted once
        profile.own[frames[-1]] += samples
    return profile


def ours(frame: str) -> bool:
    """A frame of authsvc or of a library it calls, not of gunicorn or threading."""
    match = FRAME.match(frame)
    return match is not None and any(part in PACKAGES for part in Path(match["file"]).parts[:-1])


def report(name: str, figures: Figures, profile: Profile, top: int) -> str:
    """The ``top`` frames of ours by inclusive share, then the largest own shares: of ours
    (the hot spots under the call chain), and elsewhere."""
    if not profile.samples:
        return f"== {name}: no samples"
    share = 100 / profile.samples

    def row(frame: str) -> str:
        return (
            f"{profile.inclusive[frame] * share:7.1f}  {profile.own[frame] * share:6.1f}  {frame}"
        )

    inclusive = [frame for frame, _ in profile.inclusive.most_common() if ours(frame)]
    own = [frame for frame, _ in profile.own.most_common() if ours(frame)]
    elsewhere = [frame for frame, _ in profile.own.most_common() if not ours(frame)]
    return "\n".join(
        [
            f"== {name}: {profile.samples:,} samples ({profile.waiting:,} waiting, left out),"
            f" {figures.per_second:,.0f} req/s under py-spy",
            f"{'incl %':>7}  {'self %':>6}  function (file)",
            *map(row, inclusive[:top]),
            "   ···  by own share:",
            *map(row, own[: top // 2]),
            "   ···  own share elsewhere (gunicorn, threads, sockets):",
            *map(row, elsewhere[:ELSEWHERE]),
        ]
    )


def profiled(
    wrk: str,
    spy: str,
    base: str,
    scenario: Scenario,
    worker: int,
    folder: Path,
    args: argparse.Namespace,
) -> tuple[Figures, Profile]:
    """wrk on the scenario while py-spy samples the worker; wrk runs a second longer, so it
    covers the whole sampling."""
    output = folder / "profile.txt"
    command = [
        *(spy, "record", "--pid", str(worker), "--rate", str(args.rate)),
        *("--duration", str(args.duration), "--format", "raw", "--nolineno"),
        *("--output", str(output)),
        *(["--gil"] if args.gil else []),
    ]
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        figures = run_wrk(wrk, base, scenario, args.duration + 1, folder)
        _, errors = sampler.communicate(timeout=30)
    finally:
        if sampler.poll() is None:
            sampler.kill()
            sampler.wait()
    if sampler.returncode != 0:
        raise SystemExit(f"py-spy failed on {scenario.name}:\n{errors.decode()}")
    return figures, read_profile(output)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="--database WIPES the database it is given."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario [10]")
    parser.add_argument("--keys", type=int, default=100, help="keys in the table [100]")
    parser.add_argument("--rate", type=int, default=100, help="samples per second [100]")
    parser.add_argument("--top", type=int, default=15, help="functions per scenario [15]")
    parser.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)"
    )
    parser.add_argument("--only", help="the scenarios whose name holds this text")
    parser.add_argument("--database", help="PostgreSQL URL; ITS SCHEMA public IS DROPPED FIRST")
    parser.add_argument("--redis", help="rate-limit storage, e.g. redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    wrk, spy = find_wrk(), find_py_spy()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with prepared(args.database, args.redis) as instance:
        seed(instance.app, args.keys)
        with running_server(instance.folder, instance.environment, 1) as (base, process):
            (worker,) = workers(process.pid)
            for scenario in scenarios(instance.fixtures):
                if args.only and args.only not in scenario.name:
                    continue
                check(base, scenario)
                run_wrk(wrk, base, scenario, WARM_UP, instance.folder, warm_up=True)
                figures, profile = profiled(wrk, spy, base, scenario, worker, instance.folder, args)
                print(report(scenario.name, figures, profile, args.top), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
