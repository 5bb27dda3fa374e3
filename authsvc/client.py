"""A Python client for authsvc: pair an app with the host, then use its key.

    from authsvc.client import Client

    client = Client()  # AUTHSVC_URL (default http://127.0.0.1:31009), AUTHSVC_API_KEY
    key = client.pair("My Script", lambda challenge_id: input("Code shown by the host: "))
    print(client.whoami()["user"]["username"])

This module needs only ``requests``: it is the API as an app developer sees it.
"""

import base64
import hashlib
import ipaddress
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import parse_url
from urllib3.util.retry import Retry

DEFAULT_URL = "http://127.0.0.1:31009"
# Only requests that change nothing, or change nothing more when repeated, are retried; a POST
# (which may create a key or spend a pairing attempt) never is.
RETRIED_METHODS = frozenset({"GET", "HEAD", "DELETE"})
RETRIED_STATUSES = frozenset({502, 503, 504})
PAGE_SIZE = 1000
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_SECONDS = 5


class ApiError(Exception):
    """An error answer from authsvc: ``status``, ``code`` and ``message`` of its error body."""

    def __init__(
        self, status: int, code: str, message: str, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}


class InsecureURL(ValueError):
    """A plain ``http://`` address of another machine: the key would cross the network readable."""


class UnexpectedAnswer(ApiError):
    """An answer that is not authsvc's: not JSON, or without the fields it must have (``code``
    ``"unexpected_answer"``); is the URL an authsvc?"""


class BadRequest(ApiError):
    """400: the request was refused as it is (a wrong pairing code, invalid fields)."""


class Unauthorized(ApiError):
    """401: no key, or one that is unknown, revoked, disabled or expired."""


class Forbidden(ApiError):
    """403: the key is valid but may not do this."""


class NotFound(ApiError):
    """404: no such object, or it belongs to someone else."""


class Gone(ApiError):
    """410: the challenge expired, was used, denied or burned."""


class ConnectionFailed(ApiError):
    """No answer at all: the connection was refused or dropped, or it timed out.

    ``status`` is 0 (as for a failed ``fetch`` in a browser: no HTTP status was received),
    ``code`` is ``"connection_failed"``, ``body`` is empty; the ``requests`` exception is chained
    as ``__cause__``, and ``timed_out`` tells a timeout from a refused or lost connection.
    """

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(0, "connection_failed", message)
        self.timed_out = timed_out


class RateLimited(ApiError):
    """429: over a rate limit; ``retry_after`` is the number of seconds to wait, if known."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        body: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(status, code, message, body)
        self.retry_after = retry_after


LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: ``localhost`` or a loopback address (IPv4, IPv6, or
    IPv4 in IPv6); a name that merely starts with one (``127.0.0.1.example.com``) is not."""
    host = host.strip("[]").lower()
    if host.rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def check_transport(base_url: str, allow_insecure: bool) -> None:
    """Refuse plain ``http://`` to another machine unless the caller allows it."""
    parsed = parse_url(base_url)  # as requests parses it, so the host checked is the host used
    if (parsed.scheme or "http").lower() != "http" or allow_insecure:
        return
    if not is_loopback(parsed.host or ""):
        raise InsecureURL(
            f"refusing plain http:// to {parsed.host}: keys and codes would cross the network "
            "unencrypted; use https://, or pass allow_insecure=True"
        )


ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    410: Gone,
}


def error_from(response: requests.Response) -> ApiError:
    """The ApiError for an error answer, from its JSON body when it has one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    # OAuth's endpoints answer {"error", "error_description"}; the rest {"code", "message"}.
    code = str(body.get("code") or body.get("error") or "")
    message = str(body.get("message") or body.get("error_description") or unexpected(response))
    if response.status_code == 429:
        retry_after = str(response.headers.get("Retry-After", body.get("retry_after")))
        seconds = int(retry_after) if retry_after.isdigit() else None
        return RateLimited(response.status_code, code, message, body, seconds)
    kind = ERRORS.get(response.status_code, ApiError)
    return kind(response.status_code, code, message, body)


def unexpected(response: requests.Response) -> str:
    """Why an answer is not one of authsvc's, for a person to read."""
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    return (
        f"{response.request.method} {response.url} answered {response.status_code} "
        f"{response.reason or ''} with {kind}, not authsvc's JSON: is this authsvc's address?"
    ).replace("  ", " ")


def is_timeout(error: requests.RequestException) -> bool:
    """A timeout, even one that requests reports as a ConnectionError after spent retries.

    urllib3's refused connection (NewConnectionError) descends from its timeout: not one.
    """
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(reason, NewConnectionError):
        return False
    return isinstance(error, requests.Timeout) or isinstance(reason, Urllib3Timeout)


def pkce_pair() -> tuple[str, str]:
    """A secret verifier and its challenge: base64url SHA-256 without padding."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Client:
    """authsvc over HTTP. ``api_key`` may also be a session token (for managing keys).

    Plain ``http://`` is refused (:class:`InsecureURL`) unless the server is this machine or
    ``allow_insecure=True``. Whitespace around the key (a pasted newline) is dropped.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        *,
        retries: int = 2,
        allow_insecure: bool = False,
    ) -> None:
        self.base_url = (base_url or os.environ.get("AUTHSVC_URL") or DEFAULT_URL).strip()
        self.base_url = self.base_url.rstrip("/")
        check_transport(self.base_url, allow_insecure)
        key = api_key if api_key is not None else os.environ.get("AUTHSVC_API_KEY")
        self.api_key = (key or "").strip() or None
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            allowed_methods=RETRIED_METHODS,
            status_forcelist=RETRIED_STATUSES,
            backoff_factor=0.2,
            raise_on_status=False,
            respect_retry_after_header=False,  # a 429 is the caller's to handle
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, api_key={'set' if self.api_key else None})"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        authenticated: bool = True,
    ) -> Any:
        """Call the API; the decoded JSON answer, None for 204, or an ApiError raised.

        A connection that could not be opened is retried for any method (nothing was sent); a
        lost answer or a read timeout only for the methods in ``RETRIED_METHODS``. When the
        retries are spent, :class:`ConnectionFailed` is raised.
        """
        headers = {"Accept": "application/json"}
        if authenticated and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers=headers,
                timeout=self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            timed_out = is_timeout(error)
            what = "timed out" if timed_out else "failed"
            raise ConnectionFailed(
                f"{method} {self.base_url}{path} {what}: {error}", timed_out=timed_out
            ) from error
        if response.status_code >= 400:
            raise error_from(response)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            raise UnexpectedAnswer(
                response.status_code, "unexpected_answer", unexpected(response)
            ) from None

    def field(self, answer: Any, name: str) -> str:
        """A string field of a success answer, or UnexpectedAnswer."""
        value = answer.get(name) if isinstance(answer, dict) else None
        if not isinstance(value, str) or not value:
            raise UnexpectedAnswer(
                200,
                "unexpected_answer",
                f"{self.base_url} answered without {name!r}: is this authsvc's address?",
            )
        return value

    def pair(
        self,
        app_name: str,
        code_callback: Callable[[str], str | int],
        *,
        on_wrong_code: Callable[[int], None] | None = None,
    ) -> str:
        """Pair with the host: ``code_callback(challenge_id)`` returns the code the person reads.

        The challenge is bound to a secret verifier, so only this process can redeem it. The
        new key is kept for the next calls and returned; it is shown only this once. A wrong
        code raises BadRequest (``body["attempts_left"]``), unless ``on_wrong_code`` is given:
        then, while the challenge has attempts left, ``on_wrong_code(attempts_left)`` is called
        and the code asked for again.
        """
        verifier, challenge = pkce_pair()
        created = self.request(
            "POST",
            "/v1/auth/challenges",
            json={"app_name": app_name, "code_challenge": challenge},
            authenticated=False,
        )
        challenge_id = self.field(created, "challenge_id")
        while True:
            code = code_callback(challenge_id)
            try:
                issued = self.request(
                    "POST",
                    "/v1/auth/api_keys",
                    json={
                        "challenge_id": challenge_id,
                        "code": code if isinstance(code, int) else str(code).strip(),  # padded
                        "code_verifier": verifier,
                    },
                    authenticated=False,
                )
            except BadRequest as error:
                attempts_left = error.body.get("attempts_left")
                if on_wrong_code is None or error.message != "invalid code":
                    raise
                if not isinstance(attempts_left, int) or attempts_left < 1:
                    raise
                on_wrong_code(attempts_left)
                continue
            self.api_key = self.field(issued, "api_key")
            return self.api_key

    def pair_device(
        self,
        app_name: str,
        show: Callable[[dict[str, Any]], None] | None = None,
        wait: Callable[[float], None] = time.sleep,
    ) -> str:
        """Pair the OAuth way (RFC 8628): the person types the code this app shows.

        ``show`` gets the device authorization (``user_code``, ``verification_uri``,
        ``verification_uri_complete``…); by default it prints the code and the link. Then the
        token endpoint is polled politely: every ``interval`` seconds, 5 more after each
        ``slow_down``, until the host decides. A denial or expiry raises :class:`BadRequest`
        with ``code`` ``access_denied`` or ``expired_token``. The key is kept and returned.
        """
        started = self.request(
            "POST", "/oauth/device_authorization", json={"client_id": app_name}, authenticated=False
        )
        (show or print_device_prompt)(started)
        interval = float(started.get("interval") or SLOW_DOWN_SECONDS)
        poll = {
            "grant_type": DEVICE_GRANT,
            "device_code": started["device_code"],
            "client_id": app_name,
        }
        while True:
            wait(interval)
            try:
                issued = self.request("POST", "/oauth/token", json=poll, authenticated=False)
            except BadRequest as error:
                if error.code == "slow_down":
                    interval += SLOW_DOWN_SECONDS
                elif error.code != "authorization_pending":
                    raise
                continue
            self.api_key = str(issued["access_token"])
            return self.api_key

    def whoami(self) -> dict[str, Any]:
        """``{"authenticated", "key", "user"}`` for the current key."""
        return self.request("GET", "/v1/auth/whoami")

    def spaces(self) -> list[dict[str, Any]]:
        """The organizations (Anytype spaces) the key may reach."""
        return list(self.pages("/v1/spaces"))

    def list_keys(self) -> list[dict[str, Any]]:
        """The caller's keys, newest first, without secrets (needs ``manage`` or a session)."""
        return list(self.pages("/v1/api-keys"))

    def create_key(self, name: str, **fields: Any) -> dict[str, Any]:
        """A new key; its secret is in ``["api_key"]``, this once. Fields as in the API."""
        return self.request("POST", "/v1/api-keys", json={**fields, "name": name})

    def revoke_key(self, key_id: str) -> None:
        """Revoke one of the caller's keys at once."""
        self.request("DELETE", f"/v1/api-keys/{quote(key_id, safe='')}")

    def verify(
        self, key: str, method: str | None = None, path: str | None = None
    ) -> dict[str, Any]:
        """Check a key an app server received (needs ``verify_keys``); always a verdict."""
        body: dict[str, Any] = {"key": key}
        if method is not None:
            body["method"] = method
        if path is not None:
            body["path"] = path
        return self.request("POST", "/v1/keys/verify", json=body)

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, fetching page after page."""
        offset = 0
        while True:
            page = self.request("GET", path, params={"offset": offset, "limit": PAGE_SIZE})
            yield from page["data"]
            if not page["pagination"]["has_more"]:
                return
            offset += len(page["data"])


def print_device_prompt(started: dict[str, Any]) -> None:
    """Tell the person where to approve this app, and with which code."""
    print(f"Open {started['verification_uri']} and enter the code {started['user_code']}")
    print(f"(or open {started['verification_uri_complete']})")
