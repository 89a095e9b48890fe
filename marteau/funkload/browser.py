"""The browser behind `FunkLoadTestCase`: what FunkLoad's patched webunit did.

One `Browser` per virtual user wraps one `HTTPClient` (kept across
iterations, so keep-alive connections survive `clearContext`).  It builds
each request's headers in webunit's order, keeps cookies, Basic auth and the
extra headers, decodes gzip when the test asked for it and finds the images
and stylesheets of an HTML page.  Redirects, logging and outcome rules are
the test case's job (they need its counters).

Hot path: a plain GET costs one cached URL lookup, a short header list, the
client call and a `HTTPResponse` whose body, headers and HTML checks are all
lazy.  Nothing here formats a log line or compiles a regex per request.
"""

from __future__ import annotations

import base64
import calendar
import gzip
import html
import os
import re
import ssl
import time
from email.utils import parsedate_tz
from http.cookies import CookieError, Morsel
from typing import Any
from urllib.parse import urljoin, urlsplit

from marteau.engine.http import HTTPClient
from marteau.funkload.response import HTTPResponse

# webunit's default ok codes for images and stylesheets.
LINK_OK_CODES = (200, 301, 302)
_NOT_SENT = frozenset(("deleted", '"deleted"', "null"))
_URL_CACHE_SIZE = 1024
# Headers whose presence changes the browser's behaviour (gzip decoding, no Host).
_FLAG_HEADERS = frozenset(("accept-encoding", "host"))
# Their name lengths: tests set User-Agent and Referer on every iteration, and a
# length check spares those a lower-cased copy of the name.
_FLAG_LENGTHS = frozenset(len(name) for name in _FLAG_HEADERS)


class UrlInfo:
    """What the browser needs from one URL, computed once per URL and cached."""

    __slots__ = (
        "url",
        "connect_url",
        "protocol",
        "server",
        "port",
        "host",
        "cookie_host",
        "path",
        "path_query",
        "secure",
        "proxied",
    )

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.protocol = parts.scheme.lower() or "http"
        self.secure = self.protocol == "https"
        default_port = 443 if self.secure else 80
        hostname = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
        self.port = port or default_port
        # webunit's quirk: localhost is reached (and announced) as 127.0.0.1, and
        # its cookies are kept and sent under 127.0.0.1 too, so that a session
        # opened on localhost survives an absolute redirect built from the Host.
        server = "127.0.0.1" if hostname == "localhost" else hostname
        self.server = server
        shown = f"[{server}]" if ":" in server else server
        self.host = shown if self.port == default_port else f"{shown}:{self.port}"
        self.cookie_host = server
        path = parts.path or "/"
        self.path = path
        self.path_query = f"{path}?{parts.query}" if parts.query else path
        self.proxied = False  # set by the browser that caches this (its proxy settings)
        if server != hostname:
            netloc = parts.netloc.rpartition("@")
            auth = netloc[0] + "@" if netloc[1] else ""
            self.connect_url = f"{self.protocol}://{auth}{self.host}{self.path_query}"
        else:
            self.connect_url = url.partition("#")[0]


def _parse_expires(text: str) -> float | None:
    """Cookie ``expires`` as an epoch (webunit's format, then RFC 1123 and friends)."""
    text = text.strip()
    try:
        return calendar.timegm(time.strptime(text, "%a, %d-%b-%Y %H:%M:%S %Z"))
    except ValueError:
        pass
    parsed = parsedate_tz(text.replace("-", " "))
    if parsed is None:
        return None
    return calendar.timegm(parsed[:9]) - (parsed[9] or 0)


_link_tag_re: re.Pattern[str] | None = None
_attr_re: re.Pattern[str] | None = None


def _link_regexes() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Compiled on the first HTML page that needs them, then kept."""
    global _link_tag_re, _attr_re
    if _link_tag_re is None or _attr_re is None:
        _link_tag_re = re.compile(r"<(img|link|base)\b([^>]*)>", re.I)
        _attr_re = re.compile(r"""([^\s=/>"']+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.S)
    return _link_tag_re, _attr_re


def _attributes(text: str, attr_re: re.Pattern[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in attr_re.finditer(text):
        name = match.group(1).lower()
        if name not in found:
            value = match.group(2)
            if value is None:
                value = match.group(3) if match.group(3) is not None else match.group(4)
            found[name] = html.unescape(value)
    return found


def page_links(body: str, page_url: str) -> list[tuple[str, str]]:
    """``[(kind, absolute url)]`` for the page's ``<img src>`` and ``<link href>``.

    Resolved against ``<base href>`` when there is one; only absolute
    http(s) URLs are kept, each once, in document order.
    """
    tag_re, attr_re = _link_regexes()
    if "<!--" in body:
        body = re.sub(r"<!--.*?-->", "", body, flags=re.S)
    base = page_url
    links: list[tuple[str, str]] = []
    seen: set[str] = set()
    for match in tag_re.finditer(body):
        tag = match.group(1).lower()
        attributes = _attributes(match.group(2), attr_re)
        if tag == "base":
            if "href" in attributes and base is page_url:
                base = urljoin(page_url, attributes["href"].strip())
            continue
        target = attributes.get("src" if tag == "img" else "href", "").strip()
        if not target:
            continue
        absolute = urljoin(base, target).partition("#")[0]
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        if absolute not in seen:
            seen.add(absolute)
            links.append(("image" if tag == "img" else "link", absolute))
    return links


class Browser:
    """One virtual user's web state: webunit's ``WebTestCase`` as FunkLoad used it."""

    def __init__(self, client: HTTPClient | None = None) -> None:
        self.client = client or HTTPClient()
        self._tls_client: HTTPClient | None = None
        self._urls: dict[str, UrlInfo] = {}
        self._proxied: dict[tuple[str, str], bool] = {}
        self.debug_headers = False
        self.clear_context()

    def clear_context(self) -> None:
        """Cookies, auth, caches, history and extra headers back to empty."""
        self.cookies: dict[str, dict[str, dict[str, Morsel]]] = {}
        self._expiry: dict[tuple[str, str, str], float] = {}
        self.authinfo: str | bytes | None = None
        self.extra_headers: list[list[str]] = []
        self.images: dict[str, int] = {}
        self.css: dict[str, int] = {}
        self.history: list[Any] = []
        self.gzip = False
        self._user_host = False
        self.key_file: str | None = None
        self.cert_file: str | None = None

    def close(self) -> None:
        self.client.close()
        if self._tls_client is not None:
            self._tls_client.close()

    # -- headers -----------------------------------------------------------------

    def set_header(self, key: str, value: str | None) -> None:
        """Replace the first header named ``key`` (case-sensitive) or append; None deletes."""
        headers = self.extra_headers
        for index, pair in enumerate(headers):
            if pair[0] == key:
                if value is None:
                    del headers[index]
                else:
                    pair[1] = value
                break
        else:
            if value is not None:
                headers.append([key, value])
        if len(key) in _FLAG_LENGTHS and key.lower() in _FLAG_HEADERS:
            self._headers_changed()

    def add_header(self, key: str, value: str) -> None:
        self.extra_headers.append([key, value])
        if len(key) in _FLAG_LENGTHS and key.lower() in _FLAG_HEADERS:
            self._headers_changed()

    def clear_headers(self) -> None:
        self.extra_headers = []
        self._headers_changed()

    def _headers_changed(self) -> None:
        gzip_on = False
        user_host = False
        for key, value in self.extra_headers:
            low = key.lower()
            if low == "accept-encoding":
                gzip_on = str(value).strip().lower() == "gzip"
            elif low == "host":
                user_host = True
        self.gzip = gzip_on
        self._user_host = user_host

    def set_key_and_certificate(self, key_file: str | None, cert_file: str | None) -> None:
        self.key_file, self.cert_file = key_file, cert_file
        if self._tls_client is not None:
            self._tls_client.close()
            self._tls_client = None

    # -- one request ---------------------------------------------------------------

    def url_info(self, url: str) -> UrlInfo:
        info = self._urls.get(url)
        if info is None:
            info = UrlInfo(url)
            info.proxied = self._proxy_for(info)
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[url] = info
        return info

    def fetch(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> HTTPResponse:
        """Send one request with webunit's headers; store cookies from the answer."""
        info = self._urls.get(url)
        if info is None:
            info = self.url_info(url)
        headers: list[tuple[str, str]] = []
        if body is not None:
            if content_type:
                headers.append(("Content-type", content_type))
            headers.append(("Content-length", str(len(body))))
        if self.authinfo:
            auth = self.authinfo
            if isinstance(auth, bytes):
                auth = auth.decode("ascii")
            headers.append(("Authorization", "Basic " + auth.strip()))
        if not self._user_host and not info.proxied:
            headers.append(("Host", info.host))
        for key, value in self.extra_headers:
            headers.append((key, value))
        if self.cookies:
            cookie = self.cookie_header(info)
            if cookie:
                headers.append(("Cookie", cookie))
        if self.debug_headers:  # FunkLoad's lines, as its patched webunit printed them
            for key, value in headers:
                print(f"Putting header -- {key}: {value}")
        client = self.client
        if info.secure and (self.key_file or self.cert_file):
            client = self._client_with_certificate()
        raw = client.request(method, info.connect_url, headers, body)
        raw_body = None
        if self.gzip and raw.body:
            encoding = raw.header("content-encoding")
            if encoding and encoding.strip().lower() == "gzip":
                raw_body = gzip.decompress(raw.body)
        for key, value in raw.headers:
            if len(key) == 10 and key.lower() == "set-cookie":
                self.store_cookie(value, info)
        return HTTPResponse(
            raw, info.protocol, info.server, info.port, info.path_query, self.cookies, raw_body
        )

    def _proxy_for(self, info: UrlInfo) -> bool:
        """Whether a plain-HTTP proxy carries this request (then no Host header: quirk).

        Decided once per URL, when `url_info` caches it, not per request.
        """
        if info.secure:
            return False
        key = (info.protocol, info.server)
        proxied = self._proxied.get(key)
        if proxied is None:
            proxy = os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY")
            proxied = bool(proxy and proxy.strip()) and not _no_proxy(info.server, info.port)
            self._proxied[key] = proxied
        return proxied

    def _client_with_certificate(self) -> HTTPClient:
        if self._tls_client is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.load_cert_chain(self.cert_file or self.key_file, self.key_file)  # type: ignore[arg-type]
            self._tls_client = HTTPClient(ssl_context=context)
        return self._tls_client

    # -- cookies -------------------------------------------------------------------

    def cookie_header(self, info: UrlInfo) -> str:
        """``a=1; b=2;`` for the cookies this URL gets (domain, path, secure, expiry)."""
        host = info.cookie_host
        path = info.path
        now = 0.0
        items: list[str] = []
        for domain, paths in self.cookies.items():
            if not host.endswith(domain):
                continue
            for cookie_path, morsels in paths.items():
                if not path.startswith(cookie_path):
                    continue
                for name, morsel in list(morsels.items()):
                    value = morsel.value
                    if value in _NOT_SENT:
                        continue
                    if morsel["secure"] and not info.secure:
                        continue
                    if self._expiry:
                        expires = self._expiry.get((domain, cookie_path, name))
                        if expires is not None:
                            now = now or time.time()
                            if expires <= now:
                                del morsels[name]
                                continue
                    items.append(f"{name}={value};")
        return " ".join(items)

    def store_cookie(self, header: str, info: UrlInfo) -> None:
        """Keep one ``Set-Cookie`` value under ``cookies[domain][path][name]``."""
        first, _, rest = header.partition(";")
        name, sep, value = first.partition("=")
        name = name.strip()
        if not sep or not name:
            return
        value = value.strip()
        morsel: Morsel[str] = Morsel()
        try:
            morsel.set(name, value, value)
        except CookieError:  # a name Morsel rejects: keep it anyway, as webunit did
            morsel._key, morsel._value, morsel._coded_value = name, value, value  # type: ignore[attr-defined]
        max_age: str | None = None
        expires: str | None = None
        for attribute in rest.split(";"):
            key, _, attr_value = attribute.partition("=")
            key = key.strip().lower()
            attr_value = attr_value.strip()
            if key == "domain":
                morsel["domain"] = attr_value
            elif key == "path":
                morsel["path"] = attr_value
            elif key == "max-age":
                morsel["max-age"] = max_age = attr_value
            elif key == "expires":
                morsel["expires"] = expires = attr_value
            elif key == "secure":
                morsel["secure"] = True
            elif key == "httponly":
                morsel["httponly"] = True
            elif key == "comment":
                morsel["comment"] = attr_value
            elif key == "version":
                morsel["version"] = attr_value
        domain = (morsel["domain"] or info.cookie_host).lstrip(".").lower()
        if not info.cookie_host.endswith(domain):
            return  # a cookie for another site
        path = morsel["path"]
        if not path:
            request_path = info.path
            if len(request_path) > 2 and request_path.endswith("/"):
                path = request_path[:-1]
            else:
                path = "/"
        deadline: float | None = None
        if max_age is not None:
            try:
                deadline = time.time() + int(max_age)
            except ValueError:
                deadline = None
        elif expires is not None:
            deadline = _parse_expires(expires)
        cookie_key = (domain, path, name)
        if deadline is not None and deadline <= time.time():
            morsels = self.cookies.get(domain, {}).get(path)
            if morsels is not None:
                morsels.pop(name, None)
            self._expiry.pop(cookie_key, None)
            return
        self.cookies.setdefault(domain, {}).setdefault(path, {})[name] = morsel
        if deadline is not None:
            self._expiry[cookie_key] = deadline
        else:
            self._expiry.pop(cookie_key, None)

    # -- basic auth ----------------------------------------------------------------

    def set_basic_auth(self, login: str, password: str) -> None:
        token = f"{login}:{password}".encode()
        self.authinfo = base64.b64encode(token).decode("ascii")

    def clear_basic_auth(self) -> None:
        self.authinfo = None


def _no_proxy(host: str, port: int) -> bool:
    """``no_proxy`` as the HTTP client reads it."""
    value = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    for entry in value.split(","):
        entry = entry.strip().lstrip(".").lower()
        if not entry:
            continue
        if entry == "*" or entry == host or entry == f"{host}:{port}" or host.endswith("." + entry):
            return True
    return False
