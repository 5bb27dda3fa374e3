"""One scenario under wrk: the request it makes, the run, and the figures read from its output."""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .output import say

WRK_THREADS = 2
WRK_CONNECTIONS = 16
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
TIME = r"([\d.]+)(us|ms|s|m|h)"
# Each wrk thread takes every WRK_THREADS-th key of the file, from a start given as a share of
# the file (a script argument): the warm-up sends the first half, the measured run the second.
KEY_CYCLE = """
local path, threads, created = {path}, {threads}, 0
local keys, index = {{}}, 0
function setup(thread)
  thread:set("id", created)
  created = created + 1
end
function init(args)
  for line in io.lines(path) do keys[#keys + 1] = line end
  index = math.floor(#keys * tonumber(args[1] or "0")) + id
end
function request()
  wrk.headers["Authorization"] = "Bearer " .. keys[index % #keys + 1]
  index = index + threads
  return wrk.format()
end
"""


@dataclass
class Scenario:
    name: str
    method: str
    path: str
    expected: int  # the status every request should get
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    key_file: Path | None = None  # a key per request, in turn, in place of the header's
    connections: int = WRK_CONNECTIONS


@dataclass
class Figures:
    """One row of the table."""

    name: str
    per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    expected: int = 200


def find_wrk() -> str:
    """wrk's path; installed with apt-get when missing and root, else exit 2."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        say("wrk is missing: install the Debian package (sudo apt-get install -y wrk)")
        sys.exit(2)
    say("wrk is missing: apt-get install -y wrk")
    if subprocess.run(["apt-get", "install", "-y", "wrk"], check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        say("could not install wrk")
        sys.exit(2)
    return found


def check(base: str, scenario: Scenario) -> None:
    """One request first: the scenario measures what it says it does."""
    answer = requests.request(
        scenario.method, base + scenario.path, headers=scenario.headers, json=scenario.body
    )
    if answer.status_code != scenario.expected:
        raise SystemExit(
            f"{scenario.name}: expected {scenario.expected}, got {answer.status_code}:"
            f" {answer.text[:300]}"
        )
    if scenario.body is not None and answer.json().get("valid") is not True:
        raise SystemExit(f"{scenario.name}: the key did not verify: {answer.text[:300]}")


def milliseconds(value: str, unit: str) -> float:
    return float(value) * UNITS[unit]


def parse_wrk(name: str, output: str, expected: int) -> Figures:
    """req/s, p50, p99, counts from ``wrk --latency`` output."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"{name}: cannot read wrk's output ({pattern}):\n{output}")
        return match

    p50, p99 = find(rf"^\s*50%\s+{TIME}\s*$"), find(rf"^\s*99%\s+{TIME}\s*$")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Figures(
        name=name,
        per_second=float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=milliseconds(p50.group(1), p50.group(2)),
        p99_ms=milliseconds(p99.group(1), p99.group(2)),
        requests=int(find(r"(\d+) requests in").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        expected=expected,
    )


def lua_script(scenario: Scenario) -> str | None:
    """What the headers of the command line cannot say: a body, a key per request."""
    parts = []
    if scenario.body is not None:
        parts.append(
            f'wrk.method = "{scenario.method}"\n'
            f"wrk.body = [[{json.dumps(scenario.body)}]]\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    if scenario.key_file is not None:
        path = json.dumps(str(scenario.key_file))  # a JSON string is a Lua string here
        parts.append(KEY_CYCLE.format(path=path, threads=WRK_THREADS))
    return "".join(parts) or None


def wrk_command(
    wrk: str, base: str, scenario: Scenario, duration: int, scratch: Path, warm_up: bool
) -> list[str]:
    command = [wrk, f"-t{WRK_THREADS}", f"-c{scenario.connections}", f"-d{duration}s", "--latency"]
    for name, value in scenario.headers.items():
        command += ["-H", f"{name}: {value}"]
    script = lua_script(scenario)
    if script is not None:
        path = scratch / "scenario.lua"
        path.write_text(script)
        command += ["-s", str(path)]
    command.append(base + scenario.path)
    if scenario.key_file is not None:
        command += ["--", "0" if warm_up else "0.5"]
    return command


def run_wrk(
    wrk: str, base: str, scenario: Scenario, duration: int, scratch: Path, warm_up: bool = False
) -> Figures:
    """wrk on one scenario for ``duration`` seconds; its figures."""
    command = wrk_command(wrk, base, scenario, duration, scratch, warm_up)
    say(f"wrk {duration} s: {scenario.name}{' (warm-up, not counted)' if warm_up else ''}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed on {scenario.name}:\n{done.stdout}{done.stderr}")
    return parse_wrk(scenario.name, done.stdout, scenario.expected)
