"""A small site with a login form on 127.0.0.1, and HAR documents, for the recorder tests.

The site: ``/`` links to ``/login`` and pulls an image and a stylesheet;
``POST /login`` checks the password, sets a session cookie and redirects to
``/account``; ``/account`` and ``/orders`` answer 401 without that cookie.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tests.servers import LocalServer, Reply, Request, ok

USER = "alice"
PASSWORD = "s3cr'et\"pw"  # quotes: the conf and the test must carry it as data
HOME = (
    "<html><head><title>Shop</title><link rel='stylesheet' href='/static/site.css'></head>"
    "<body><img src='/static/logo.png'><a id='login' href='/login'>Log in</a></body></html>"
)
LOGIN = (
    "<html><body><form method='post' action='/login'>"
    "<input name='user'><input type='password' name='pw'>"
    "<button type='submit'>Go</button></form></body></html>"
)
ACCOUNT = "<html><body>Welcome {user} <a id='orders' href='/orders'>Orders</a></body></html>"
ORDERS = "<html><body>No order yet</body></html>"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a5c80000000049454e44ae426082"
)


class LoginSite:
    """The site's state: the sessions it handed out, and what the protected pages answered."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.sessions: set[str] = set()
        self.protected: list[tuple[str, int]] = []  # (path, status) of /account and /orders
        self._lock = threading.Lock()
        server.routes.update(
            {
                "/": lambda r: ok(HOME, "text/html"),
                "/login": self.login,
                "/account": lambda r: self.behind_login(r, "/account", ACCOUNT.format(user=USER)),
                "/orders": lambda r: self.behind_login(r, "/orders", ORDERS),
                "/static/logo.png": lambda r: ok(PNG, "image/png"),
                "/static/site.css": lambda r: ok("body { color: #333 }", "text/css"),
            }
        )

    @property
    def url(self) -> str:
        return self.server.url

    def login(self, request: Request) -> Reply:
        if request.method != "POST":
            return ok(LOGIN, "text/html")
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        if form.get("user") != USER or form.get("pw") != PASSWORD:
            return 403, [("Content-Type", "text/plain")], b"bad login"
        token = secrets.token_hex(8)
        with self._lock:
            self.sessions.add(token)
        cookie = ("Set-Cookie", f"session={token}; Path=/")
        return 302, [("Location", "/account"), cookie], b""

    def behind_login(self, request: Request, path: str, page: str) -> Reply:
        cookies = dict(
            part.strip().split("=", 1)
            for part in (request.header("Cookie") or "").split(";")
            if "=" in part
        )
        status = 200 if cookies.get("session") in self.sessions else 401
        with self._lock:
            self.protected.append((path, status))
        if status == 401:
            return 401, [("Content-Type", "text/plain")], b"log in first"
        return ok(page, "text/html")


def entry(
    method: str,
    url: str,
    status: int = 200,
    mime: str = "text/html",
    started: float = 0.0,
    post: dict[str, Any] | None = None,
    **response: Any,
) -> dict[str, Any]:
    """One HAR 1.2 entry, ``started`` seconds after a fixed instant."""
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    moment += datetime.timedelta(seconds=started)
    request: dict[str, Any] = {"method": method, "url": url, "headers": []}
    if post is not None:
        request["postData"] = post
    return {
        "startedDateTime": moment.isoformat(),
        "time": 10,
        "request": request,
        "response": {"status": status, "headers": [], "content": {"mimeType": mime}, **response},
    }


def recorded_calls(source: str) -> list[tuple[str, str]]:
    """The (method, path) of each ``self.get``/``self.post`` a generated test makes."""
    return re.findall(r"self\.(get|post)\(\n\s+server_url \+ '([^']*)'", source)


def form(text: str) -> dict[str, str]:
    """A HAR ``postData`` of an url-encoded form body."""
    return {"mimeType": "application/x-www-form-urlencoded", "text": text}


def write_har(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    return path
