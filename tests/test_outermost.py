"""What Flask's handlers never see still answers in the JSON error shape with the version
header: errors raised after the answer was made, and the requests gunicorn refuses itself."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import VERSION, assert_error
from tests.test_server import server

LONG = 10_000  # characters: over gunicorn's limits on the request line and a header field
__all__ = ["server"]  # the live gunicorn fixture, shared


@contextmanager
def served_in_process(app: Flask) -> Iterator[str]:
    """``app`` behind werkzeug's HTTP server in a thread (a server that, like gunicorn, lets
    an app answer an error after it began answering); yield its URL."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join()


@pytest.mark.parametrize("hook", ["after_request", "teardown_request", "teardown_appcontext"])
def test_an_error_raised_after_the_answer_is_answered_in_the_error_shape(make_app, hook):
    """A hook fails after the view answered (a 404 here): the client gets a JSON 500."""
    app = make_app(PROPAGATE_EXCEPTIONS=False)
    failing = threading.Event()

    def fail(value):
        if failing.is_set():
            raise RuntimeError(f"{hook} failed")
        return value

    getattr(app, hook)(fail)
    with served_in_process(app) as base:
        failing.set()
        refused = requests.get(f"{base}/v1/no-such-thing", timeout=30)
        body = assert_error(refused, 500, "internal_server_error")
        assert body["message"] == "internal server error"
        failing.clear()
        assert requests.get(f"{base}/health", timeout=30).headers["Anytype-Version"] == VERSION


def test_gunicorn_refusals_answer_in_the_error_shape(server):
    """Over gunicorn's limits: the request line (path or query), a header field, the number
    of header fields. Then a request it cannot parse at all."""
    long = "a" * LONG
    for url, headers, status in [
        (f"{server}/v1/{long}", {}, 414),
        (f"{server}/v1/spaces?q={long}", {}, 414),
        (f"{server}/v1/spaces", {"X-Long": long}, 431),
        (f"{server}/v1/spaces", {f"X-Header-{i}": "a" for i in range(200)}, 431),
    ]:
        refused = requests.get(url, headers=headers, timeout=30)
        assert_error(refused, status, "bad_request")

    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(b"GET /health HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert f"Anytype-Version: {VERSION}".encode() in head
    assert b'"code": "bad_request"' in body
