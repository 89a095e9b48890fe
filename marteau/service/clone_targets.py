"""Where a public service's clones of a user's git URL may connect.

A clone runs on the service's own machine, so in public mode it must not be a way
into the service's network (a metadata address, a database port) nor, through git's
error lines, a scanner of it. Before a clone, the URL's host is resolved and every
address must be public (`host_proofs.public_addresses`, with the same
`verify_allow_networks` exceptions as host verification). An http(s) clone is then
pinned to the address checked (`http.curloptResolve`: git asks curl for no second
DNS answer) and follows no redirect (`http.followRedirects=false`: a redirect could
lead anywhere). An ssh or git URL is checked the same way but cannot be pinned: its
name is resolved again by ssh or git, a window documented in docs/service.md.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from marteau.errors import MarteauError
from marteau.service.host_proofs import public_addresses
from marteau.service.settings import Settings

# `user@host:path`, git's scp-like syntax (jobs.check_source accepts it as a git URL)
SCP_LIKE = re.compile(r"^[\w.-]+@(?P<host>[\w.-]+):[^\s]+$")
DEFAULT_PORTS = {"http": 80, "https": 443}


def clone_options(url: str, settings: Settings) -> list[str]:
    """git's global options (`-c name=value` pairs) for cloning `url` on this service:
    none outside public mode or for a file:// URL (admins only); MarteauError when
    the URL's host is not public."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not settings.public or scheme == "file":  # file://: an admin's own machine
        return []
    scp = None if "://" in url else SCP_LIKE.match(url)
    host = scp.group("host") if scp else parts.hostname
    if not host:
        raise MarteauError(f"{url}: no host to clone from")
    addresses = public_addresses(host, settings, f"{url}: git clone")
    if scheme not in DEFAULT_PORTS:
        return []
    port = parts.port or DEFAULT_PORTS[scheme]
    first = addresses[0]
    pinned = f"[{first}]" if ipaddress.ip_address(first).version == 6 else first
    return [
        "-c",
        f"http.curloptResolve={host}:{port}:{pinned}",
        "-c",
        "http.followRedirects=false",
    ]
