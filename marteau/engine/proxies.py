"""Proxies and host:port text, shared by the HTTP client and the host guard.

The client sends through `$http_proxy`/`$https_proxy`; the guard allows those
proxies' own addresses (`--allow-host` pins the target, the proxy is how it is
reached). Both read the variables the same way, here.
"""

from __future__ import annotations

import base64
import os
from urllib.parse import unquote

from marteau.errors import MarteauError


class Proxy:
    """A proxy from the environment: where to connect, and its Proxy-Authorization."""

    __slots__ = ("host", "port", "auth")

    def __init__(self, host: str, port: int, auth: str | None) -> None:
        self.host = host
        self.port = port
        self.auth = auth


def env_value(name: str) -> str:
    """A proxy variable's value, lower-case name first (curl's and requests' order)."""
    return (os.environ.get(name) or os.environ.get(name.upper()) or "").strip()


def parse_proxy(variable: str, value: str) -> Proxy | None:
    """Read a proxy variable: ``host:port`` or ``http://[user:pass@]host:port[/]``."""
    if not value:
        return None
    rest = value.split("://", 1)[1] if "://" in value else value
    rest = rest.split("/", 1)[0]
    userinfo, _, hostport = rest.rpartition("@")
    try:
        host, port = split_hostport(hostport, 80)
    except ValueError:
        raise MarteauError(f"Bad proxy in ${variable}: {value!r} (expected host:port)") from None
    if not host:
        raise MarteauError(f"Bad proxy in ${variable}: {value!r} (expected host:port)")
    auth = None
    if userinfo:
        user, _, password = userinfo.partition(":")
        token = f"{unquote(user)}:{unquote(password)}".encode()
        auth = "Basic " + base64.b64encode(token).decode("ascii")
    return Proxy(host, port, auth)


def split_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    """Split ``host[:port]`` or ``[v6]:port``; raise ValueError on a bad port."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(hostport)
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(hostport)
        port_text = rest[1:]
    else:
        host, sep, port_text = hostport.rpartition(":")
        if not sep:
            host, port_text = hostport, ""
    if not port_text:
        return host.lower(), default_port
    if not port_text.isdigit():
        raise ValueError(hostport)
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(hostport)
    return host.lower(), port
