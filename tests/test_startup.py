"""``authsvc serve`` as a person starts it: private files, its recorded address (found by open,
status and pair), a busy port refused at once, a restart after its master was killed."""

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from authsvc.address import FILE as ADDRESS_FILE
from authsvc.server import CONTROL_SOCKET
from tests.test_server import (
    BIN,
    ROOT,
    free_port,
    host_code,
    host_headers,
    run_server,
    server_environment,
    spawn,
    wait_until_up,
)

AUTHSVC = str(BIN / "authsvc")


@pytest.fixture
def instance(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An instance folder of the test's own, for the server and every command."""
    folder = tmp_path / "instance"
    monkeypatch.setenv("AUTHSVC_INSTANCE_PATH", str(folder))
    return folder


@pytest.fixture
def served_database(database_url: str, make_app, instance: Path) -> str:
    """The test database; SQLite in the instance folder, as the default start keeps it."""
    make_app()  # empties the tables afterwards
    if database_url.startswith("sqlite"):
        return f"sqlite:///{instance / 'authsvc.sqlite3'}"
    return database_url


def serve_command(port: int) -> list[str]:
    return [AUTHSVC, "serve", "--workers", "2", "--port", str(port)]


def authsvc(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run an ``authsvc`` command as a person does, in the server's environment."""
    return subprocess.run(
        [AUTHSVC, *args],
        cwd=ROOT,
        env=server_environment(database_url),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def modes(folder: Path) -> dict[str, int]:
    """The permission bits of the folder and of everything in it."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for entry in folder.iterdir():
        found[entry.name] = stat.S_IMODE(entry.lstat().st_mode)
    return found


def assert_private(folder: Path) -> None:
    """The folder is 0700, and nothing in it is open to the group or to others."""
    found = modes(folder)
    assert found["."] == 0o700, found
    assert all(mode & 0o077 == 0 for mode in found.values()), {k: oct(v) for k, v in found.items()}


def wait_for_control_socket(instance: Path) -> Path:
    """gunicorn opens its control socket just after the first workers start."""
    control = instance / CONTROL_SOCKET
    for _ in range(300):
        if control.exists():
            break
        threading.Event().wait(0.1)
    assert stat.S_ISSOCK(control.stat().st_mode)  # its own, not ~/.gunicorn/gunicorn.ctl
    return control


def write_through(base: str) -> None:
    """A request in each worker (most likely) that writes, so the workers open the database."""
    for index in range(4):
        created = requests.post(
            f"{base}/v1/auth/challenges", json={"app_name": f"Files {index}"}, timeout=30
        )
        assert created.status_code == 201, created.text


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_fresh_start_keeps_its_files_private(served_database, instance, tmp_path, umask):
    def under_umask(port: int) -> list[str]:
        return ["sh", "-c", f"umask {umask:03o} && exec {' '.join(serve_command(port))}"]

    with run_server(served_database, tmp_path, under_umask, JWT_SECRET="") as base:
        write_through(base)
        wait_for_control_socket(instance)
        found = modes(instance)
        assert_private(instance)
    expected = {"jwt_secret", "owner_token", ADDRESS_FILE, CONTROL_SOCKET}
    if served_database.startswith("sqlite"):
        expected |= {"authsvc.sqlite3", "authsvc.sqlite3-wal", "authsvc.sqlite3-shm"}
    assert expected <= set(found), found


def test_a_start_on_an_earlier_versions_files_makes_them_private(
    served_database, instance, tmp_path
):
    with run_server(served_database, tmp_path, serve_command, JWT_SECRET="") as base:
        write_through(base)
    # As an earlier version left them: a 0755 folder, 0644 files, a WAL still in use.
    os.chmod(instance, 0o755)
    for entry in instance.iterdir():
        os.chmod(entry, 0o644)
    old = os.umask(0o022)
    try:
        held = None
        if served_database.startswith("sqlite"):
            held = sqlite3.connect(instance / "authsvc.sqlite3")
            held.execute("PRAGMA journal_mode=WAL")
            held.execute("CREATE TABLE IF NOT EXISTS earlier (id INTEGER)")
            held.commit()
            assert stat.S_IMODE((instance / "authsvc.sqlite3-wal").stat().st_mode) == 0o644
        with run_server(served_database, tmp_path, serve_command, JWT_SECRET="") as base:
            write_through(base)
            assert_private(instance)
        if held is not None:
            held.close()
    finally:
        os.umask(old)


def recorded(instance: Path) -> dict[str, int | str]:
    return json.loads((instance / ADDRESS_FILE).read_text())  # type: ignore[no-any-return]


def test_open_status_and_pair_find_the_server_where_it_listens(served_database, instance, tmp_path):
    with run_server(served_database, tmp_path, serve_command) as base:
        port = int(base.rsplit(":", 1)[1])
        assert recorded(instance)["port"] == port
        opened = authsvc(served_database, "open")
        assert opened.returncode == 0, opened.stderr
        assert opened.stdout.startswith(f"{base}/ui/login#token="), opened.stdout
        assert requests.get(opened.stdout.split("#")[0], timeout=30).status_code == 200
        chosen = authsvc(served_database, "open", "--port", "8080")
        assert chosen.stdout.startswith("http://127.0.0.1:8080/ui/login"), chosen.stdout
        status = authsvc(served_database, "status")
        assert f"server: {base} (pid {recorded(instance)['pid']})" in status.stdout
        assert json.loads(authsvc(served_database, "status", "--json").stdout)["server"] == {
            "url": base,
            "pid": recorded(instance)["pid"],
        }
        pairing = subprocess.Popen(
            [AUTHSVC, "pair", "--app", "Finder"],  # no --url
            cwd=ROOT,
            env={
                k: v for k, v in server_environment(served_database).items() if k != "AUTHSVC_URL"
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        challenge_id = wait_for_challenge(base, "Finder")
        out, err = pairing.communicate(host_code(base, challenge_id) + "\n", timeout=60)
        assert pairing.returncode == 0, err
        assert f"Asking {base} to pair" in err and out.startswith("sk-")
    assert not (instance / ADDRESS_FILE).exists()  # a stopped server forgets its address
    after = authsvc(served_database, "open")
    assert after.stdout.startswith("http://127.0.0.1:31009/ui/login")
    assert "no running server" in after.stderr
    assert "server: not running" in authsvc(served_database, "status").stdout


def wait_for_challenge(base: str, app_name: str) -> str:
    """The id of the app's challenge once it arrived (the app's command runs alongside)."""
    for _ in range(300):
        listing = requests.get(
            f"{base}/v1/pairing/challenges", headers=host_headers(base), timeout=30
        ).json()["data"]
        ids = [c["challenge_id"] for c in listing if c["app_name"] == app_name]
        if ids:
            return str(ids[0])
        threading.Event().wait(0.1)
    pytest.fail(f"no challenge for {app_name!r} arrived")


def test_a_second_serve_on_a_busy_port_says_so_at_once(served_database, instance, tmp_path):
    with run_server(served_database, tmp_path, serve_command) as base:
        port = base.rsplit(":", 1)[1]
        second = authsvc(served_database, "serve", "--port", port)
        pid = recorded(instance)["pid"]
    assert second.returncode == 1
    assert second.stderr.count("\n") == 1 and second.stdout == "", second.stderr
    assert f"authsvc (pid {pid}, this instance's server) already listens on 127.0.0.1:{port}" in (
        second.stderr
    )
    assert "`authsvc open`" in second.stderr and "--port" in second.stderr
    assert "Connection in use" not in second.stderr


def test_a_port_held_by_another_program_is_named_as_such(served_database, instance):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        refused = authsvc(served_database, "serve", "--port", port)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"another program already listens on 127.0.0.1:{port}" in refused.stderr
    assert "`authsvc open`" in refused.stderr and "--port" in refused.stderr


def worker_pids(master: int) -> set[int]:
    """The master's children, from /proc."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def is_running(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


@contextmanager
def keep_alive_load(base: str) -> Iterator[None]:
    """Four clients sending requests on kept-alive connections, until the block ends."""
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                session.get(f"{base}/health", timeout=5)
            except requests.RequestException:
                session = requests.Session()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def wait_until_serving(instance: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``process`` recorded itself as the instance's server (it has bound the port)."""
    for _ in range(600):
        if process.poll() is not None:
            break
        if (instance / ADDRESS_FILE).exists() and recorded(instance)["pid"] == process.pid:
            return
        threading.Event().wait(0.1)
    pytest.fail(f"the second server never took the port:\n{log.read_text()}")


def test_a_killed_master_does_not_block_its_restart(served_database, instance, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "first.log"
    with log.open("wb") as output:
        first = spawn(serve_command(port), served_database, output)
        try:
            wait_until_up(base, first, log)
            control = wait_for_control_socket(instance)
        except BaseException:
            first.kill()
            first.wait()
            raise
    assert f"Control socket listening at {control}" in log.read_text()
    orphans = worker_pids(first.pid)
    assert len(orphans) == 2
    with keep_alive_load(base):
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        for _ in range(150):  # they notice within a second, answer for two more, then exit
            if not any(is_running(pid) for pid in orphans):
                break
            threading.Event().wait(0.1)
        assert not any(is_running(pid) for pid in orphans)
        log = tmp_path / "second.log"
        with log.open("wb") as output:
            second = spawn(serve_command(port), served_database, output)
            try:
                wait_until_serving(instance, second, log)
                wait_until_up(base, second, log)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=60)
    text = log.read_text()
    assert "Connection in use" not in text and "Traceback" not in text, text


def test_serve_waits_for_the_workers_of_a_killed_server_to_let_go(
    served_database, instance, tmp_path
):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs: the killed master's
    with socket.socket() as orphans:  # what its workers still hold for a moment
        orphans.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        orphans.bind(("127.0.0.1", 0))
        orphans.listen()
        port = orphans.getsockname()[1]
        instance.mkdir(mode=0o700, exist_ok=True)
        (instance / ADDRESS_FILE).write_text(
            json.dumps({"host": "127.0.0.1", "port": port, "pid": gone.pid})
        )
        log = tmp_path / "restart.log"
        with log.open("w") as output:
            restart = subprocess.Popen(
                serve_command(port),
                cwd=ROOT,
                env=server_environment(served_database),
                stdout=output,
                stderr=subprocess.PIPE,
                text=True,
            )
        assert restart.stderr is not None
        waiting = restart.stderr.readline()
        assert f"waiting for the workers of a stopped authsvc (pid {gone.pid})" in waiting
    try:
        wait_until_serving(instance, restart, log)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200
    finally:
        restart.terminate()
        restart.communicate(timeout=60)
