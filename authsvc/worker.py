"""gunicorn's threaded worker, answering the requests gunicorn refuses itself in the JSON shape
and letting go of the port at once when its master dies.

gunicorn refuses some requests before the app sees them: a request line or header fields over
its limits (414, 431), a request it cannot parse (400). It would answer an HTML page; this
worker answers like the app answers every error, in the JSON error shape with the version
header.
"""

import json
import socket
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http
from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker

from .errors import error_body
from .wire import ANYTYPE_VERSION

ORPHAN_GRACE = 2  # seconds an orphaned worker gives the requests it is answering
MESSAGE_LIMIT = 200  # characters of gunicorn's own description, which quotes the request
# Refusals that are not a plain 400 (as gunicorn answers them).
STATUSES: dict[type[Exception], tuple[HTTPStatus, str]] = {
    http.LimitRequestLine: (HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long"),
    http.LimitRequestHeaders: (
        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request header fields too large or too many",
    ),
    http.ExpectationFailed: (HTTPStatus.EXPECTATION_FAILED, "expectation failed"),
    http.UnsupportedTransferCoding: (HTTPStatus.NOT_IMPLEMENTED, "unsupported transfer coding"),
    http.ForbiddenProxyRequest: (HTTPStatus.FORBIDDEN, "proxy request forbidden"),
}
# Faults of the answer, not of the request.
OUR_FAULTS = (http.InvalidResponseHeader, http.InvalidResponseHeaderName, http.ConfigurationProblem)


def describe(error: Exception) -> tuple[HTTPStatus, str]:
    """The status and message for an error gunicorn raised while reading or answering."""
    if isinstance(error, http.ParseException) and not isinstance(error, OUR_FAULTS):
        for kind, answer in STATUSES.items():
            if isinstance(error, kind):
                return answer
        return HTTPStatus.BAD_REQUEST, f"malformed request: {str(error)[:MESSAGE_LIMIT]}"
    return HTTPStatus.INTERNAL_SERVER_ERROR, "internal server error"


def http_answer(status: HTTPStatus, message: str) -> bytes:
    """A whole HTTP/1.1 answer in the error shape; the connection closes after it."""
    body = json.dumps(error_body(status, message)).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Anytype-Version: {ANYTYPE_VERSION}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ThreadWorker(GunicornThreadWorker):
    """``gthread``, with gunicorn's own error pages in the JSON error shape.

    A worker whose master was killed (``kill -9``) closes its listening sockets as soon as it
    notices (within a second), so a new ``authsvc serve`` can take the port, then finishes what
    it is answering for at most ``ORPHAN_GRACE`` seconds and exits.
    """

    def is_parent_alive(self) -> bool:
        if super().is_parent_alive():
            return True
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()
        self.cfg.set("graceful_timeout", min(self.cfg.graceful_timeout, ORPHAN_GRACE))
        return False

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: Exception) -> None:
        status, message = describe(exc)
        if status == HTTPStatus.INTERNAL_SERVER_ERROR:
            self.log.exception("error handling a request", exc_info=exc)
        else:
            self.log.warning("invalid request from %s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, http_answer(status, message))
        except OSError:
            self.log.debug("failed to send an error answer")
