"""Which proxies' forwarded headers to believe (``AUTHSVC_TRUSTED_PROXIES``).

A list of addresses and CIDR ranges trusts ``X-Forwarded-For``/``-Proto``/``-Host`` only from a
direct peer in that list, as gunicorn's ``forwarded_allow_ips`` does; a client that reaches
authsvc directly cannot pose as another address. The entry ``unix`` trusts a peer that came
through gunicorn's Unix socket (``authsvc serve --unix-socket``), which only the accounts its
file mode admits can reach; unlike ``127.0.0.1`` it is not every local program. A bare number
keeps its older meaning: that many proxies in front, whoever the peer is (werkzeug's ProxyFix).
Empty trusts nobody.
"""

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNIX = "unix"


@dataclass(frozen=True)
class Trusted:
    """The direct peers whose forwarded headers count: networks, and the Unix socket or not."""

    networks: tuple[Network, ...] = ()
    unix: bool = False

    def __bool__(self) -> bool:
        return bool(self.networks) or self.unix


def parse(setting: Any) -> int | Trusted:
    """A hop count, or the trusted peers; ValueError names what is wrong."""
    if isinstance(setting, int):
        return setting
    text = str(setting or "").strip()
    if text.isdigit():
        return int(text)
    entries = [item.strip() for item in text.split(",") if item.strip()]
    networks = []
    for entry in entries:
        if entry.lower() == UNIX:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"AUTHSVC_TRUSTED_PROXIES: {entry!r} is not an IP address, a CIDR range or"
                f" {UNIX!r} (give a comma-separated list of them, or a number of proxies)"
            ) from None
    return Trusted(tuple(networks), any(entry.lower() == UNIX for entry in entries))


def is_trusted(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether ``address`` lies in one of the trusted networks."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str, networks: Iterable[Network]) -> str:
    """The address of whoever reached the first trusted proxy; ``peer`` is a trusted one.

    Entries are appended by each proxy, so walk from the right past trusted proxies: the first
    untrusted entry is the client (anything left of it may be forged by that client).
    """
    chain = [item.strip() for item in reversed(forwarded_for.split(",")) if item.strip()]
    for address in chain:
        if not is_trusted(address, networks):
            return address
    # Every hop is a trusted proxy: the leftmost is as far as we can see.
    return chain[-1] if chain else peer


def through_unix_socket(environ: dict[str, Any]) -> bool:
    """Whether gunicorn accepted this request on a Unix socket (no other server says so)."""
    connection = environ.get("gunicorn.socket")
    return isinstance(connection, socket.socket) and connection.family == socket.AF_UNIX


def peer_is_trusted(environ: dict[str, Any], trusted: Trusted) -> bool:
    """Whether the direct peer speaks for the client: by the socket it came on, or its address."""
    if through_unix_socket(environ):
        return trusted.unix
    return is_trusted(environ.get("REMOTE_ADDR"), trusted.networks)


class TrustedProxies:
    """WSGI middleware applying forwarded headers sent by a trusted direct peer."""

    def __init__(self, app: Any, trusted: Trusted) -> None:
        self.app = app
        self.trusted = trusted

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if peer_is_trusted(environ, self.trusted):
            peer = environ.get("REMOTE_ADDR", "")
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR", "")
            environ["REMOTE_ADDR"] = client_address(peer, forwarded_for, self.trusted.networks)
            proto = last_value(environ.get("HTTP_X_FORWARDED_PROTO"))
            if proto in {"http", "https"}:
                environ["wsgi.url_scheme"] = proto
            host = last_value(environ.get("HTTP_X_FORWARDED_HOST"))
            if host:
                environ["HTTP_HOST"] = host
        return self.app(environ, start_response)


def last_value(header: str | None) -> str:
    """The entry the nearest proxy added to a comma-separated forwarded header."""
    return (header or "").split(",")[-1].strip()


def init_app(app: Flask) -> None:
    """Wrap the WSGI app according to the setting."""
    trusted = parse(app.config["AUTHSVC_TRUSTED_PROXIES"])
    if isinstance(trusted, int) and trusted:
        hops = trusted
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    elif isinstance(trusted, Trusted) and trusted:
        app.wsgi_app = TrustedProxies(app.wsgi_app, trusted)  # type: ignore[method-assign]
