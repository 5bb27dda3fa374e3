"""A TCP relay between the app and PostgreSQL that a test can cut and restore: an outage
without touching the machine's database server."""

import contextlib
import selectors
import socket
import threading
from types import TracebackType

CHUNK = 65536


class Relay:
    """Forward a loopback port to ``target``; ``cut()`` drops every connection and refuses new
    ones (as a dead server does), ``restore()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.peers: dict[socket.socket, socket.socket] = {}
        self.held: list[socket.socket] = []  # accepted while stalled, never answered
        self.stalled = False
        self.port = 0
        self.running = True
        self.restore()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def restore(self) -> None:
        """Listen (again) on the relay's port and forward."""
        with self.lock:
            self.stalled = False
            for sock in self.held:
                sock.close()
            self.held.clear()
            if self.listener is not None:
                return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.setblocking(False)
        with self.lock:
            self.port = listener.getsockname()[1]
            self.listener = listener
            self.selector.register(listener, selectors.EVENT_READ)

    def stall(self) -> None:
        """Drop every relayed connection; accept new ones but never answer (a silent host)."""
        with self.lock:
            self.stalled = True
            for sock in list(self.peers):
                self.drop(sock)

    def cut(self) -> None:
        """Close the listener and every relayed connection."""
        with self.lock:
            for sock in self.held:
                sock.close()
            self.held.clear()
            if self.listener is not None:
                self.selector.unregister(self.listener)
                self.listener.close()
                self.listener = None
            for sock in list(self.peers):
                self.drop(sock)

    def drop(self, sock: socket.socket) -> None:
        """Close one relayed pair (called with the lock held)."""
        other = self.peers.pop(sock, None)
        for each in (sock, other):
            if each is not None:
                self.peers.pop(each, None)
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(each)
                each.close()

    def accept(self) -> None:
        assert self.listener is not None
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        if self.stalled:
            self.held.append(client)
            return
        upstream = socket.create_connection(self.target)
        self.peers[client] = upstream
        self.peers[upstream] = client
        for each in (client, upstream):
            each.setblocking(False)
            self.selector.register(each, selectors.EVENT_READ)

    def forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(sock)
            return
        other = self.peers[sock]
        other.setblocking(True)
        try:
            other.sendall(data)
        except OSError:
            self.drop(sock)
        else:
            other.setblocking(False)

    def serve(self) -> None:
        while self.running:
            events = self.selector.select(timeout=0.1)
            with self.lock:
                for selected, _ in events:
                    sock = selected.fileobj
                    if sock is self.listener:
                        self.accept()
                    elif sock in self.peers:
                        self.forward(sock)  # type: ignore[arg-type]

    def close(self) -> None:
        self.cut()
        self.running = False
        self.thread.join()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
