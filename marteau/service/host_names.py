"""Verified hosts' names and proofs' shapes: a host as a user types it, normalised
(IDNA names, IP addresses), the label shown, the URLs and the DNS TXT record that
prove ownership (see `hosts`)."""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass

from marteau.errors import MarteauError

WELL_KNOWN, ROOT, DNS = "well-known", "root", "dns"
METHODS = (WELL_KNOWN, ROOT, DNS)  # the order of preference when several succeed
DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
TXT_PREFIX = "marteau-verification="


@dataclass(frozen=True)
class Target:
    """Where a job sends its load: host (lower case, IPs normalised) and port."""

    host: str
    port: int


def normal_name(name: str, field: str, text: str) -> str:
    """A DNS name in lower-case ASCII (IDNA) or a normalised IP address."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    name = name.lower().rstrip(".")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise MarteauError(f"{field} {text!r}: not a valid host name") from None
    labels = name.split(".")
    if not name or len(name) > 253 or not all(DNS_LABEL.match(label) for label in labels):
        raise MarteauError(
            f"{field} {text!r}: expected a DNS name (letters, digits, hyphens, dots) or an IP address"
        )
    if labels[-1].isdigit():
        raise MarteauError(f"{field} {text!r}: not a valid IP address")
    return name


def parse_host(text: str, field: str = "host") -> tuple[str, int | None]:
    """`HOST`, `HOST:PORT`, `IPv6` or `[IPv6]:PORT` -> (host, port or None)."""
    raw = text
    text = text.strip()
    if not text:
        raise MarteauError(f"{field}: give a host name such as example.org or example.org:8080")
    if "://" in text or any(c in text for c in "/?#@ \t\r\n\0"):
        raise MarteauError(
            f"{field} {raw!r}: expected HOST or HOST:PORT, without a scheme, a path or spaces"
        )
    port_text = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise MarteauError(f"{field} {raw!r}: expected [IPv6] or [IPv6]:PORT")
        port_text = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise MarteauError(f"{field} {raw!r}: {host!r} is not an IPv6 address") from None
    elif text.count(":") > 1:
        host = text  # a bare IPv6 address; with a port it takes brackets
    elif ":" in text:
        host, port_text = text.split(":")
    else:
        host = text
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise MarteauError(f"{field} {raw!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    return normal_name(host, field, raw), port


def host_label(host: str, port: int | None) -> str:
    """HOST or HOST:PORT, IPv6 in brackets: the form shown and given to `--allow-host`."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def new_token() -> str:
    """192 random bits, URL-safe (it goes in a URL path and a TXT record)."""
    return secrets.token_urlsafe(24)


def proof_urls(host: str, port: int | None, token: str) -> dict[str, list[str]]:
    """The URLs the HTTP methods fetch, https first."""
    bases = [f"{scheme}://{host_label(host, port)}" for scheme in ("https", "http")]
    return {
        WELL_KNOWN: [f"{base}/.well-known/marteau/{token}" for base in bases],
        ROOT: [f"{base}/{token}" for base in bases],
    }


def dns_record(host: str, token: str) -> tuple[str, str]:
    return f"_marteau.{host}", f"{TXT_PREFIX}{token}"
