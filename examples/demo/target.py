"""The demo target: a small web shop served on 127.0.0.1.

It stands in for "your web service" in the README's first command and in
the tests: HTML pages with a stylesheet and an image (FunkLoad auto-loads
them), a JSON API, a login form that sets a session cookie and redirects,
and a search page. Run `python target.py --port 8080`; it prints its URL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PRODUCTS = [{"id": i, "name": f"Hammer {i}", "price": 10 + i} for i in range(1, 51)]
STYLE = b"body { font-family: sans-serif; }"
# The smallest valid PNG: one transparent pixel.
LOGO = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082"
)
PAGE = """<html><head><title>{title}</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><img src="/static/logo.png" alt="logo"><h1>{title}</h1>{content}</body></html>"""


class ShopHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle plus the
    # client's delayed ACK add 40 ms to every response.
    disable_nagle_algorithm = True
    sessions: set[str] = set()

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: a load test would flood the terminal."""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self, title: str, content: str, status: int = 200) -> None:
        self._send(
            status, PAGE.format(title=title, content=content).encode(), "text/html; charset=utf-8"
        )

    def _session(self) -> str | None:
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        session = cookie.get("session")
        return session.value if session and session.value in self.sessions else None

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/":
            self._page("Marteau demo shop", '<a href="/search?q=hammer">Search</a>')
        elif url.path == "/static/style.css":
            self._send(200, STYLE, "text/css")
        elif url.path == "/static/logo.png":
            self._send(200, LOGO, "image/png")
        elif url.path == "/api/products":
            page = int(query.get("page", ["1"])[0])
            items = PRODUCTS[(page - 1) * 10 : page * 10]
            self._send(200, json.dumps({"page": page, "items": items}).encode(), "application/json")
        elif url.path == "/search":
            term = query.get("q", [""])[0].lower()
            found = [p["name"] for p in PRODUCTS if term in p["name"].lower()]
            self._page("Search results", "<ul>" + "".join(f"<li>{n}</li>" for n in found) + "</ul>")
        elif url.path == "/account":
            if self._session():
                self._page("Your account", "<p>Welcome back, demo</p>")
            else:
                self._send(302, b"", "text/plain", {"Location": "/login"})
        elif url.path == "/login":
            self._page("Log in", '<form method="post" action="/login"><input name="user"></form>')
        else:
            self._page("Not found", "", status=404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if urlsplit(self.path).path == "/login" and form.get("password") == ["demo"]:
            session = secrets.token_hex(8)
            self.sessions.add(session)
            self._send(
                302,
                b"",
                "text/plain",
                {"Location": "/account", "Set-Cookie": f"session={session}; Path=/"},
            )
        else:
            self._page("Log in failed", "", status=403)

    do_HEAD = do_GET


def serve(port: int) -> ThreadingHTTPServer:
    """Bind the demo shop to 127.0.0.1:port (0 picks a free port)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", port), ShopHandler)
    httpd.daemon_threads = True
    return httpd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=8080, help="port on 127.0.0.1 (0: any free port)"
    )
    httpd = serve(parser.parse_args().port)
    print(f"Demo target listening on http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()


if __name__ == "__main__":
    main()
