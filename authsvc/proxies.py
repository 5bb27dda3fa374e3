"""Which proxies' forwarded headers to believe (``AUTHSVC_TRUSTED_PROXIES``).

A list of addresses and CIDR ranges trusts ``X-Forwarded-For``/``-Proto``/``-Host`` only from a
direct peer in that list, as gunicorn's ``forwarded_allow_ips`` does; a client that reaches
authsvc directly cannot pose as another address. A bare number keeps its older meaning: that
many proxies in front, whoever the peer is (werkzeug's ProxyFix). Empty trusts nobody.
"""

import ipaddress
from collections.abc import Iterable
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse(setting: Any) -> int | list[Network]:
    """A hop count, or the trusted networks; ValueError names what is wrong."""
    if isinstance(setting, int):
        return setting
    text = str(setting or "").strip()
    if text.isdigit():
        return int(text)
    networks = []
    for entry in filter(None, (item.strip() for item in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"AUTHSVC_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR range"
                " (give a comma-separated list of them, or a number of proxies)"
            ) from None
    return networks


def is_trusted(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether ``address`` lies in one of the trusted networks."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str, networks: list[Network]) -> str:
    """The address of whoever reached the first trusted proxy.

    Entries are appended by each proxy, so walk from the right past trusted proxies: the first
    untrusted entry is the client (anything left of it may be forged by that client).
    """
    chain = [peer, *reversed([item.strip() for item in forwarded_for.split(",") if item.strip()])]
    for address in chain:
        if not is_trusted(address, networks):
            return address
    return chain[-1]  # every hop is a trusted proxy: the leftmost is as far as we can see


class TrustedProxies:
    """WSGI middleware applying forwarded headers sent by a trusted direct peer."""

    def __init__(self, app: Any, networks: list[Network]) -> None:
        self.app = app
        self.networks = networks

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer = environ.get("REMOTE_ADDR", "")
        if is_trusted(peer, self.networks):
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR", "")
            environ["REMOTE_ADDR"] = client_address(peer, forwarded_for, self.networks)
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
    elif isinstance(trusted, list) and trusted:
        app.wsgi_app = TrustedProxies(app.wsgi_app, trusted)  # type: ignore[method-assign]
