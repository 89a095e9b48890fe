"""Proving a verified host: resolve its name, fetch the token from each of its
addresses (every way at once, redirects bounded, bodies capped) or read its DNS TXT
record. In public mode only public addresses are reached, and a failure says no more
than `NOT_PROVEN` (see `hosts`)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, cast

from marteau import __version__
from marteau.errors import MarteauError
from marteau.service.host_names import (
    DNS,
    METHODS,
    TXT_PREFIX,
    dns_record,
    is_ip,
    normal_name,
    parse_host,
    proof_urls,
)
from marteau.service.settings import Settings

CHECK_TIMEOUT = 5.0  # seconds for one way of proving (all redirects included)
MAX_BODY = 4096  # bytes read of a proof's HTTP body: a token is 32 characters
MAX_REDIRECTS = 3
USER_AGENT = f"Marteau/{__version__} (host verification)"
# public mode: the one outcome of every failed check (the reason is logged)
NOT_PROVEN = (
    "not proven: no URL served the token and no TXT record held it (a public service "
    "does not tell why a check failed)"
)
NOT_PUBLIC = ("loopback", "private", "link_local", "multicast", "reserved", "unspecified")
# one log for verified hosts, whichever module writes (an operator filters on it)
log = logging.getLogger("marteau.service.hosts")


class ProofFailed(Exception):
    """One way of proving failed; its message is the reason (logged in public mode)."""


def _same(name: str, host: str) -> bool:
    try:
        return normal_name(name, "redirect", name) == host
    except MarteauError:
        return False


def _read_capped(response: Any, deadline: float) -> bytes:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_BODY or time.monotonic() > deadline:
            break
    return body


def _fetch_token(
    url: str,
    host: str,
    token: str,
    timeout: float,
    address: str,
    settings: Settings | None = None,
) -> None:
    """GET `url` from `address` (one the name resolved to: the request names the host,
    TLS checks its certificate, nothing is resolved again); redirects are followed only
    on the same host, so to the same address, checked again at each hop in public mode.
    ProofFailed unless the body (stripped) is the token."""
    import httpx

    deadline = time.monotonic() + timeout
    first = url if address == host else f"{url} (at {address})"
    with httpx.Client(follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProofFailed(f"{first}: no answer within {timeout:g}s")
            if settings is not None and settings.public:
                check_public([address], settings)
            logical = httpx.URL(url)
            extensions = {"sni_hostname": host} if logical.scheme == "https" else {}
            headers = {"User-Agent": USER_AGENT, "Host": logical.netloc.decode("ascii")}
            try:
                with client.stream(
                    "GET",
                    logical.copy_with(host=address),
                    headers=headers,
                    extensions=extensions,
                    timeout=left,
                ) as response:
                    if response.is_redirect:
                        target = logical.join(response.headers.get("location", ""))
                        if target.scheme not in ("http", "https") or not _same(target.host, host):
                            raise ProofFailed(f"{first}: redirected to another host ({target})")
                        url = str(target)
                        continue
                    if response.status_code != 200:
                        raise ProofFailed(f"{first}: HTTP {response.status_code}")
                    body = _read_capped(response, deadline)
            except httpx.HTTPError as exc:
                raise ProofFailed(f"{first}: {type(exc).__name__}: {exc or 'failed'}") from None
            if body.strip() == token.encode():
                return
            raise ProofFailed(f"{first}: the body is not the token")
    raise ProofFailed(f"{first}: more than {MAX_REDIRECTS} redirects")


def _resolver(dns_server: str, timeout: float) -> Any:
    """dnspython's resolver: the system's, or `dns_server` (HOST[:PORT]) alone."""
    import dns.resolver

    if not dns_server:
        resolver = dns.resolver.Resolver()
    else:
        host, port = parse_host(dns_server, "dns_server")
        if not is_ip(host):
            try:
                found = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0]
                host = cast(str, found)  # AF_INET(6): a text address
            except OSError as exc:
                raise ProofFailed(f"DNS: dns_server {dns_server!r}: {exc}") from None
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port or 53
    resolver.timeout = resolver.lifetime = timeout
    return resolver


def _dns_token(host: str, token: str, dns_server: str, timeout: float) -> None:
    """ProofFailed unless a TXT record of `_marteau.HOST` is `marteau-verification=<token>`."""
    import dns.exception
    import dns.resolver

    name, expected = dns_record(host, token)
    if is_ip(host):
        raise ProofFailed(
            "DNS: an IP address has no TXT record of its own; serve the token over HTTP"
        )
    try:
        answer = _resolver(dns_server, timeout).resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        raise ProofFailed(f"DNS: no TXT record {name}") from None
    except dns.exception.DNSException as exc:
        raise ProofFailed(f"DNS: {name}: {exc}") from None
    texts = [b"".join(rdata.strings).decode("utf-8", "replace").strip() for rdata in answer]
    if expected not in texts:
        raise ProofFailed(f"DNS: the TXT records of {name} do not hold {TXT_PREFIX}<token>")


def not_public(address: str, settings: Settings) -> str | None:
    """What makes `address` one a public service's checks must not reach (loopback,
    private, ...; an IPv4 address inside an IPv6 one counts as itself), or None; the
    networks of `verify_allow_networks` are reachable."""
    ip = ipaddress.ip_address(address)
    if any(ip.version == net.version and ip in net for net in settings.allowed_networks):
        return None
    inner: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        inner += [a for a in (ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())) if a]
    for one in inner:
        kinds = [kind.replace("_", "-") for kind in NOT_PUBLIC if getattr(one, f"is_{kind}")]
        if kinds or not one.is_global:
            return f"{address}: a {', '.join(kinds) or 'non-global'} address"
    return None


def check_public(addresses: list[str], settings: Settings) -> None:
    """ProofFailed unless every one of `addresses` is public (see `not_public`)."""
    refused = [why for why in (not_public(a, settings) for a in addresses) if why]
    if refused:
        raise ProofFailed("; ".join(refused) + ": a public service checks public addresses only")


def public_addresses(host: str, settings: Settings, what: str) -> list[str]:
    """The addresses `host` resolves to now, each public (see `not_public`); else one
    MarteauError text, whatever the reason (logged): `what` a public service does for a
    user (a clone of their URL) must not reach, or map, the service's own network."""
    try:
        addresses = resolve(host, settings)
        check_public(addresses, settings)
    except ProofFailed as exc:
        log.warning("%s refused: %s", what, exc)
        raise MarteauError(
            f"{what}: {host} is not a public host (a public service reaches public addresses only)"
        ) from None
    return addresses


def resolve(host: str, settings: Settings, timeout: float = CHECK_TIMEOUT) -> list[str]:
    """The addresses `host` resolves to now, sorted (an IP address: itself), asking
    `dns_server` when set, else the system's resolver. ProofFailed when there is none."""
    import dns.exception
    import dns.resolver

    if is_ip(host):
        return [host]
    found: set[str] = set()
    if not settings.dns_server:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ProofFailed(f"{host}: the name does not resolve ({exc})") from None
        found = {str(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in infos}
    else:
        resolver = _resolver(settings.dns_server, timeout)
        for kind in ("A", "AAAA"):
            try:
                answer = resolver.resolve(host, kind, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as exc:
                raise ProofFailed(f"{host}: the name does not resolve ({exc})") from None
            found.update(str(ipaddress.ip_address(rdata.address)) for rdata in answer)
    if not found:
        raise ProofFailed(f"{host}: the name has no address")
    return sorted(found, key=lambda ip: (":" in ip, ipaddress.ip_address(ip).packed))


def prove(
    host: str,
    port: int | None,
    token: str,
    settings: Settings,
    addresses: list[str],
    timeout: float = CHECK_TIMEOUT,
) -> tuple[str | None, str]:
    """(method, "") for the preferred method that proves ownership now, or (None, why
    each failed). An HTTP method proves only if every one of `addresses` serves the
    token. All attempts run at once."""
    attempts: list[tuple[str, str, Callable[[], None]]] = []
    for method, urls in proof_urls(host, port, token).items():
        for address in addresses:
            for url in urls:
                fetch = partial(_fetch_token, url, host, token, timeout, address, settings)
                attempts.append((method, address, fetch))
    attempts.append((DNS, "", lambda: _dns_token(host, token, settings.dns_server, timeout)))

    def attempt(check: Callable[[], None]) -> str | None:
        try:
            check()
        except ProofFailed as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        errors = list(pool.map(attempt, [check for _method, _address, check in attempts]))
    proven = {
        (method, address)
        for (method, address, _check), error in zip(attempts, errors, strict=True)
        if error is None
    }
    for method in METHODS:
        needed = [""] if method == DNS else addresses
        if needed and all((method, address) in proven for address in needed):
            return method, ""
    return None, "; ".join(e for e in errors if e)
