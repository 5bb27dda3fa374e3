"""Where the instance's server listens: ``authsvc serve`` records it in the instance folder, and
the commands that talk to the server (``authsvc open``, ``pair``, ``status``) read it there."""

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass

from flask import Flask

from .files import FILE_MODE

FILE = "server.json"


@dataclass(frozen=True)
class Recorded:
    """A server's address and its master's process id, as ``authsvc serve`` wrote them."""

    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        """The base URL that reaches it from this machine."""
        return f"http://{reachable_host(self.host)}:{self.port}"

    def is_running(self) -> bool:
        """Whether its master process is still alive."""
        return is_alive(self.pid)


def reachable_host(host: str) -> str:
    """The host to connect to: loopback for a wildcard address, brackets for IPv6."""
    if host in {"0.0.0.0", "::", ""}:  # listening everywhere: this machine is one of them
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def is_alive(pid: int) -> bool:
    """Whether a process with this id exists (perhaps another account's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_instance_path() -> str:
    """The instance folder as the app sees it, without building the app (for client commands)."""
    chosen = os.environ.get("AUTHSVC_INSTANCE_PATH")
    return os.path.abspath(chosen) if chosen else Flask("authsvc").instance_path


def record(instance_path: str, host: str, port: int, pid: int) -> None:
    """Write the address whole, 0600, replacing an earlier one at once."""
    fd, draft = tempfile.mkstemp(dir=instance_path, prefix=f".{FILE}.")
    try:
        with os.fdopen(fd, "w") as written:
            json.dump({"host": host, "port": port, "pid": pid}, written)
        os.chmod(draft, FILE_MODE)
        os.replace(draft, os.path.join(instance_path, FILE))
    except BaseException:
        os.unlink(draft)
        raise


def forget(instance_path: str, pid: int) -> None:
    """Remove the record if it is still this server's (another may have started since)."""
    found = read(instance_path)
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(instance_path, FILE))


def read(instance_path: str) -> Recorded | None:
    """The recorded server, running or not; None when nothing (readable) is recorded."""
    try:
        with open(os.path.join(instance_path, FILE)) as written:
            values = json.load(written)
        return Recorded(str(values["host"]), int(values["port"]), int(values["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(instance_path: str) -> Recorded | None:
    """The recorded server if its master still runs."""
    found = read(instance_path)
    return found if found is not None and found.is_running() else None
